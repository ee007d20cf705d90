//! Label selectors (`injection.selector`), label pairs and namespace globs, as the config
//! parses them. A selector that parses keeps its text and evaluates on any label set; one
//! whose text is only white space matches everything; a pair prints back as given; a glob that
//! parses holds only a-z, 0-9, '-', '*' and '?' and matches by the usual rules.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use meshkeeper::config::{Glob, LabelPair, LabelSelector};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    let labels: BTreeMap<&str, &str> = [("env", "prod"), ("app", "web"), ("istio.io/rev", "asm-1"), ("e", "")].into();
    match LabelSelector::try_from(s.to_string()) {
        Ok(sel) => {
            assert_eq!(sel.as_str(), s);
            let _ = sel.matches(|k| labels.get(k).copied());
            if s.trim().is_empty() {
                assert!(sel.matches(|_| None), "an empty selector matches everything");
            }
        }
        Err(e) => assert!(!e.is_empty() && !s.trim().is_empty(), "{s:?}: {e:?}"),
    }
    if let Ok(p) = s.parse::<LabelPair>() {
        assert_eq!(p.to_string(), s);
    }
    if let Ok(g) = Glob::try_from(s.to_string()) {
        assert!(s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '*' | '?')));
        // A glob matches itself read as a name when it holds no wildcard, and "*" everything.
        if !s.contains(['*', '?']) {
            assert!(g.matches(s));
        }
        let _ = g.matches("kube-system");
    }
});
