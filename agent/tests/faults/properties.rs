//! Scenario "9 properties" (issue 13, point 9): property tests for every parser of the agent.
//! Image references, namespace globs, label pairs, label selectors (the config's strings and
//! the webhooks' matchLabels/matchExpressions), maintenance windows, quantities, Kubernetes
//! versions and ranges, CA bundles and config values.
//!
//! Each property is run by proptest's `TestRunner` for a fixed number of cases from a
//! deterministic seed (`FAULTS_PROPTEST_SEED`, a u64; `FAULTS_PROPTEST_CASES` overrides every
//! count, to run longer), on a blocking thread, one parser after the other (one core: the other
//! is left to a scenario running beside this one). Each parser gives one row: how many cases
//! passed, or the minimal input proptest shrank a failure to.
//!
//! A property says what the output must be, checked against a reference written here apart
//! from the agent's code (a recursive glob matcher, exact integer arithmetic for quantities, a
//! per-day interval check for windows, a label evaluator per the Kubernetes docs), and every
//! parser is also fed arbitrary text: a panic fails a property like a wrong answer does.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::time::Instant;

use futures::future::BoxFuture;
use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestError, TestRng, TestRunner};
use serde_json::{Value, json};

use crate::table::Row;

const SCENARIO: &str = "9 properties";
/// "meshkeep".
const DEFAULT_SEED: u64 = 0x6d65_7368_6b65_6570;

/// One parser's properties: what is generated, the property in a few words, and the check.
struct Property {
    what: &'static str,
    expected: &'static str,
    check: fn(&mut Ctx),
}

fn properties() -> Vec<Property> {
    vec![
        Property {
            what: "image references",
            expected: "tag, digest and repository read back as built; injector image has its tag",
            check: image_references,
        },
        Property {
            what: "namespace globs",
            expected: "accepted iff a-z0-9-*?; matches as a reference matcher does",
            check: globs,
        },
        Property {
            what: "label pairs",
            expected: "valid key=value round-trips; each kind of invalid one is refused",
            check: label_pairs,
        },
        Property {
            what: "label selectors",
            expected: "matches exactly the label sets the reference evaluation says",
            check: label_selectors,
        },
        Property {
            what: "webhook selectors",
            expected: "matchLabels/matchExpressions evaluate as the API server does",
            check: webhook_selectors,
        },
        Property {
            what: "maintenance windows",
            expected: "HH:MM round-trips; contains/next_open agree with a per-day check",
            check: maintenance_windows,
        },
        Property {
            what: "quantities",
            expected: "parse_quantity equals the exact value, 0 for what is not a quantity",
            check: quantities,
        },
        Property {
            what: "Kubernetes versions",
            expected: "ranges round-trip; gitVersion parses; precheck's verdict is min <= v <= max",
            check: kubernetes_versions,
        },
        Property {
            what: "CA bundles",
            expected: "the certificates in the bundle, in order; junk is Invalid, never a panic",
            check: ca_bundles,
        },
        Property {
            what: "config values",
            expected: "YAML scalar or env value per key: loads as given, or an error naming the key",
            check: config_values,
        },
    ]
}

/// The scenario: every property on one blocking thread, one row each.
pub fn run() -> BoxFuture<'static, Vec<Row>> {
    Box::pin(async move {
        let seed =
            std::env::var("FAULTS_PROPTEST_SEED").ok().and_then(|s| s.trim().parse().ok()).unwrap_or(DEFAULT_SEED);
        let cases = std::env::var("FAULTS_PROPTEST_CASES").ok().and_then(|s| s.trim().parse().ok());
        eprintln!("faults: properties with FAULTS_PROPTEST_SEED={seed}");
        tokio::task::spawn_blocking(move || {
            properties().iter().enumerate().map(|(i, p)| check(p, seed, i as u64, cases)).collect()
        })
        .await
        .expect("the properties' thread")
    })
}

fn check(p: &Property, seed: u64, index: u64, cases: Option<u32>) -> Row {
    let mut ctx = Ctx { seed, row: index, next: 0, scale: cases, total: 0, failures: Vec::new() };
    let start = Instant::now();
    (p.check)(&mut ctx);
    let secs = start.elapsed().as_secs_f64();
    let (observed, pass) = if ctx.failures.is_empty() {
        (format!("{} cases passed ({secs:.1} s)", ctx.total), true)
    } else {
        (format!("FAILED with FAULTS_PROPTEST_SEED={seed}: {}", ctx.failures.join(" | ")), false)
    };
    Row::check(SCENARIO, &format!("random {} ({} cases)", p.what, ctx.total), p.expected, observed, pass)
}

/// Runs the sub-properties of one row, each with its own runner seeded from (seed, row, n).
struct Ctx {
    seed: u64,
    row: u64,
    next: u64,
    /// `FAULTS_PROPTEST_CASES`: every sub-property's count.
    scale: Option<u32>,
    total: u32,
    /// One line per failed sub-property: its name, why, and the minimal input.
    failures: Vec<String>,
}

impl Ctx {
    fn prop<S: Strategy>(
        &mut self,
        name: &str,
        cases: u32,
        strategy: S,
        test: impl Fn(S::Value) -> Result<(), TestCaseError>,
    ) where
        S::Value: Debug,
    {
        let cases = self.scale.unwrap_or(cases);
        self.next += 1;
        let config = Config {
            cases,
            failure_persistence: None,
            max_shrink_iters: 4096,
            max_shrink_time: 10_000,
            ..Config::default()
        };
        let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes(self.seed, self.row, self.next));
        let mut runner = TestRunner::new_with_rng(config, rng);
        self.total += cases;
        match runner.run(&strategy, test) {
            Ok(()) => {}
            Err(TestError::Fail(reason, input)) => {
                self.failures.push(format!("{name}: {reason}; minimal input: {input:?}"))
            }
            Err(TestError::Abort(reason)) => self.failures.push(format!("{name}: aborted: {reason}")),
        }
    }
}

/// 32 bytes for ChaCha from (seed, row, n), by splitmix64.
fn seed_bytes(seed: u64, row: u64, n: u64) -> [u8; 32] {
    let mut x = seed ^ row.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ n.wrapping_mul(0xc2b2_ae3d_27d4_eb4f);
    let mut out = [0u8; 32];
    for chunk in out.chunks_mut(8) {
        x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        chunk.copy_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    out
}

/// Arbitrary text: mostly from the characters the parser cares about, sometimes any Unicode.
fn text(alphabet: &'static str) -> BoxedStrategy<String> {
    prop_oneof![4 => alphabet, 1 => any::<String>()].boxed()
}

// === image references ===

#[derive(Debug, Clone)]
struct ImageRef {
    /// host and optional port
    registry: Option<(String, Option<u16>)>,
    path: Vec<String>,
    tag: Option<String>,
    digest: Option<String>,
}

impl ImageRef {
    fn repository(&self) -> String {
        let mut s = String::new();
        if let Some((host, port)) = &self.registry {
            s.push_str(host);
            if let Some(p) = port {
                s.push_str(&format!(":{p}"));
            }
            s.push('/');
        }
        s.push_str(&self.path.join("/"));
        s
    }

    fn without_digest(&self) -> String {
        match &self.tag {
            Some(t) => format!("{}:{t}", self.repository()),
            None => self.repository(),
        }
    }

    fn text(&self) -> String {
        match &self.digest {
            Some(d) => format!("{}@{d}", self.without_digest()),
            None => self.without_digest(),
        }
    }
}

fn image_ref() -> impl Strategy<Value = ImageRef> {
    let host = prop_oneof![
        Just("localhost".to_string()),
        "[a-z0-9]{1,8}(\\.[a-z0-9]{1,8}){1,3}",
        "[a-z0-9]{1,6}-[a-z0-9]{1,6}\\.(io|com|dev)",
    ];
    let registry = proptest::option::of((host, proptest::option::of(1u16..)));
    let component = "[a-z0-9]{1,8}([._-][a-z0-9]{1,6}){0,2}";
    let tag = "[A-Za-z0-9_][A-Za-z0-9_.-]{0,24}";
    let digest = "sha256:[0-9a-f]{64}";
    (registry, prop::collection::vec(component, 1..4), proptest::option::of(tag), proptest::option::of(digest))
        .prop_map(|(registry, path, tag, digest)| ImageRef { registry, path, tag, digest })
}

/// The tag as the reference reads it: after the first ':' of the last '/'-part of what comes
/// before the first '@', if not empty.
fn reference_tag(s: &str) -> Option<&str> {
    let name = &s[..s.find('@').unwrap_or(s.len())];
    let last = &name[name.rfind('/').map_or(0, |i| i + 1)..];
    let colon = last.find(':')?;
    Some(&last[colon + 1..]).filter(|t| !t.is_empty())
}

fn image_references(ctx: &mut Ctx) {
    use meshkeeper::cache::image_tag;
    use meshkeeper::cache::injector::{image_of, proxy_version, without_digest};
    use meshkeeper::checks::reinjection::classify::Expected;

    ctx.prop("built references", 2000, (image_ref(), "[0-9][a-z0-9.-]{0,10}"), |(r, other_tag)| {
        let text = r.text();
        prop_assert_eq!(image_tag(&text), r.tag.as_deref(), "tag of {}", text);
        prop_assert_eq!(proxy_version(&text), r.tag.as_deref().unwrap_or("unknown"));
        prop_assert_eq!(without_digest(&text), r.without_digest());
        let Some(tag) = &r.tag else { return Ok(()) };
        // The injector's values: {hub}/{proxy.image}:{tag}, or a whole image in proxy.image.
        let repo = r.repository();
        if let Some((hub, name)) = repo.rsplit_once('/') {
            let values = json!({"global": {"hub": format!("{hub}/"), "tag": tag, "proxy": {"image": name}}});
            prop_assert_eq!(image_of(&values), Some(format!("{hub}/{name}:{tag}")), "hub + image + tag");
            let values = json!({"global": {"hub": "other.example/hub", "tag": tag, "proxy": {"image": repo}}});
            prop_assert_eq!(image_of(&values), Some(format!("{repo}:{tag}")), "a whole image without a tag");
            let own = format!("{repo}:{other_tag}");
            let values = json!({"global": {"hub": "other.example/hub", "tag": tag, "proxy": {"image": own}}});
            prop_assert_eq!(image_of(&values), Some(own), "a whole image keeps its own tag");
        }
        // reinjection.expected_proxy_version: an image (has '/' or ':') or a tag.
        let image = r.without_digest();
        let expected = Expected::from(&image, None);
        if image.contains('/') || image.contains(':') {
            prop_assert_eq!(&expected, &Expected::Image(image.clone()));
        }
        prop_assert_eq!(expected.version(), Some(tag.as_str()));
        prop_assert_eq!(Expected::from(tag, None), Expected::Tag(tag.clone()));
        Ok(())
    });
    ctx.prop("arbitrary text", 2000, text("[a-z0-9:/@._-]{0,40}"), |s| {
        let nd = without_digest(&s);
        prop_assert!(s.starts_with(nd) && !nd.contains('@'));
        prop_assert_eq!(nd.len() == s.len(), !s.contains('@'));
        prop_assert_eq!(image_tag(&s), reference_tag(&s));
        prop_assert_eq!(proxy_version(&s), reference_tag(&s).unwrap_or("unknown"));
        Ok(())
    })
}

// === namespace globs ===

/// The reference: `*` any run, `?` one character, anything else itself; the whole text.
fn reference_glob(p: &[u8], t: &[u8]) -> bool {
    match p.split_first() {
        None => t.is_empty(),
        Some((b'*', rest)) => (0..=t.len()).any(|i| reference_glob(rest, &t[i..])),
        Some((b'?', rest)) => !t.is_empty() && reference_glob(rest, &t[1..]),
        Some((c, rest)) => t.first() == Some(c) && reference_glob(rest, &t[1..]),
    }
}

fn glob_char_ok(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '*' | '?')
}

fn globs(ctx: &mut Ctx) {
    use meshkeeper::config::Glob;

    ctx.prop("arbitrary patterns", 1500, text("[a-z0-9*?A-Z_. -]{0,12}"), |s| {
        let accepted = !s.is_empty() && s.chars().all(glob_char_ok);
        match Glob::try_from(s.clone()) {
            Ok(g) => {
                prop_assert!(accepted, "accepted {:?}", s);
                prop_assert_eq!(g.as_str(), s.as_str());
                let back: Glob = serde_json::from_value(serde_json::to_value(&g).unwrap()).unwrap();
                prop_assert_eq!(back, g);
            }
            Err(e) => {
                prop_assert!(!accepted, "refused {:?}: {}", s, e);
                if let Some(bad) = s.chars().find(|c| !glob_char_ok(*c)) {
                    prop_assert!(e.contains(&format!("{bad:?}")), "{} does not name {:?}", e, bad);
                }
            }
        }
        Ok(())
    });
    // A pattern made from a name (runs replaced by '*', characters by '?') matches that name.
    let from_name = ("[a-z0-9-]{1,20}", prop::collection::vec((0u8..4, 0usize..4), 1..10));
    ctx.prop("patterns made from a name", 1500, from_name, |(name, ops)| {
        let chars: Vec<char> = name.chars().collect();
        let (mut pattern, mut i) = (String::new(), 0);
        for (op, n) in ops.iter().cycle().take(chars.len() + ops.len()) {
            if i >= chars.len() {
                break;
            }
            let n = (*n).min(chars.len() - i);
            match op {
                0 => pattern.push('*'),
                1 => pattern.extend(std::iter::repeat_n('?', n.max(1))),
                _ => pattern.extend(&chars[i..i + n.max(1)]),
            }
            i += if *op == 0 { n } else { n.max(1) };
        }
        pattern.extend(&chars[i.min(chars.len())..]);
        let g = Glob::try_from(pattern.clone()).map_err(TestCaseError::fail)?;
        prop_assert!(g.matches(&name), "{} does not match {}", pattern, name);
        Ok(())
    });
    ctx.prop("pattern against text", 3000, ("[ab*?-]{1,8}", "[ab-]{0,10}"), |(p, t)| {
        let g = Glob::try_from(p.clone()).map_err(TestCaseError::fail)?;
        prop_assert_eq!(g.matches(&t), reference_glob(p.as_bytes(), t.as_bytes()), "{} vs {}", p, t);
        Ok(())
    })
}

// === label pairs ===

/// A DNS subdomain as the API server checks it (the reference, from the Kubernetes docs).
fn ref_dns_subdomain(s: &str) -> bool {
    let label = |l: &str| {
        let c: Vec<char> = l.chars().collect();
        (1..=63).contains(&c.len())
            && c.iter().all(|x| x.is_ascii_lowercase() || x.is_ascii_digit() || *x == '-')
            && c[0] != '-'
            && c[c.len() - 1] != '-'
    };
    s.len() <= 253 && s.split('.').all(label)
}

/// A label name: at most 63 of [A-Za-z0-9_.-], alphanumeric at both ends.
fn ref_label_name(s: &str) -> bool {
    let c: Vec<char> = s.chars().collect();
    (1..=63).contains(&c.len())
        && c.iter().all(|x| x.is_ascii_alphanumeric() || matches!(x, '_' | '.' | '-'))
        && c[0].is_ascii_alphanumeric()
        && c[c.len() - 1].is_ascii_alphanumeric()
}

fn ref_label_key(k: &str) -> bool {
    match k.split_once('/') {
        Some((prefix, name)) => ref_dns_subdomain(prefix) && ref_label_name(name),
        None => ref_label_name(k),
    }
}

fn ref_label_value(v: &str) -> bool {
    v.is_empty() || ref_label_name(v)
}

fn label_name() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => "[A-Za-z0-9]([A-Za-z0-9_.-]{0,10}[A-Za-z0-9])?",
        1 => "[a-z][a-z0-9]{62}",
    ]
}

fn label_key() -> impl Strategy<Value = String> {
    let prefix = prop::collection::vec("[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?", 1..4).prop_map(|l| l.join("."));
    (proptest::option::of(prefix), label_name()).prop_map(|(p, n)| match p {
        Some(p) => format!("{p}/{n}"),
        None => n,
    })
}

fn label_value() -> impl Strategy<Value = String> {
    prop_oneof![1 => Just(String::new()), 6 => label_name()]
}

fn label_pairs(ctx: &mut Ctx) {
    use meshkeeper::config::LabelPair;

    ctx.prop("valid pairs", 1500, (label_key(), label_value(), 0u8..10), |(k, v, corrupt)| {
        let text = format!("{k}={v}");
        let p: LabelPair = text.parse().map_err(TestCaseError::fail)?;
        prop_assert_eq!(&p, &LabelPair::new(&k, &v));
        prop_assert_eq!(p.to_string(), text.clone());
        let back: LabelPair = serde_json::from_value(serde_json::to_value(&p).unwrap()).unwrap();
        prop_assert_eq!(back, p);
        // Each kind of damage is refused.
        let (pk, name) = match k.split_once('/') {
            Some((p, n)) => (Some(p), n),
            None => (None, k.as_str()),
        };
        let with_prefix = |p: &str| format!("{p}/{name}={v}");
        let bad = match corrupt {
            0 => format!("-{k}={v}"),
            1 => format!("{}/{}={v}", pk.unwrap_or("x"), "n".repeat(64)),
            2 => with_prefix(&format!("{}X", pk.unwrap_or("x"))),
            3 => format!("{k}={v} x"),
            4 => format!("{k}{v}").replace('=', ""),
            5 => with_prefix(&format!("{}..a", pk.unwrap_or("x"))),
            6 => format!("={v}"),
            7 => format!("{k}={}", "v".repeat(64)),
            8 => with_prefix(&"a.".repeat(127)),
            _ => format!("{k}=-{v}"),
        };
        prop_assert!(bad.parse::<LabelPair>().is_err(), "accepted damaged {:?}", bad);
        Ok(())
    });
    ctx.prop("arbitrary text", 1500, text("[a-zA-Z0-9=/._ -]{0,20}"), |s| {
        match s.parse::<LabelPair>() {
            Ok(p) => {
                prop_assert!(ref_label_key(&p.key) && ref_label_value(&p.value), "accepted {:?}", s);
                prop_assert_eq!(p.to_string(), s);
            }
            Err(e) => {
                let valid = s.split_once('=').is_some_and(|(k, v)| ref_label_key(k) && ref_label_value(v));
                prop_assert!(!valid, "refused valid {:?}: {}", s, e);
            }
        }
        Ok(())
    })
}

// === label selectors (injection.selector) ===

const KEYS: &[&str] = &["app", "env", "istio.io/rev", "team", "a.b-c_d", "example.com/tier", "x"];
const VALUES: &[&str] = &["", "prod", "a", "b", "v1.2", "x_y", "Z-9"];

#[derive(Debug, Clone)]
enum Req {
    /// key, value, written `==`
    Eq(String, String, bool),
    NotEq(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

fn req() -> impl Strategy<Value = Req> {
    let k = || select(KEYS).prop_map(|s| s.to_string());
    let v = || select(VALUES).prop_map(|s| s.to_string());
    let set = || prop::collection::vec(v(), 1..4);
    prop_oneof![
        (k(), v(), any::<bool>()).prop_map(|(k, v, d)| Req::Eq(k, v, d)),
        (k(), v()).prop_map(|(k, v)| Req::NotEq(k, v)),
        (k(), set()).prop_map(|(k, s)| Req::In(k, s)),
        (k(), set()).prop_map(|(k, s)| Req::NotIn(k, s)),
        k().prop_map(Req::Exists),
        k().prop_map(Req::NotExists),
    ]
}

/// The selector text, with optional spaces (bit i of `sp` puts one at place i).
fn render(r: &Req, sp: u16) -> String {
    let s = |i: u32| if sp & (1 << i) != 0 { " " } else { "" };
    let set = |vals: &[String]| {
        let inner: Vec<String> =
            vals.iter().enumerate().map(|(i, v)| format!("{}{v}{}", s(8 + i as u32), s(12))).collect();
        format!("{}({}{}){}", s(3), s(4), inner.join(","), s(5))
    };
    match r {
        Req::Eq(k, v, double) => format!("{}{k}{}{}{}{v}{}", s(0), s(1), if *double { "==" } else { "=" }, s(2), s(3)),
        Req::NotEq(k, v) => format!("{}{k}{}!={}{v}{}", s(0), s(1), s(2), s(3)),
        Req::In(k, vals) => format!("{}{k} {}in{}", s(0), s(1), set(vals)),
        Req::NotIn(k, vals) => format!("{}{k} {}notin{}", s(0), s(1), set(vals)),
        Req::Exists(k) => format!("{}{k}{}", s(0), s(1)),
        Req::NotExists(k) => format!("{}!{}{k}{}", s(0), s(1), s(2)),
    }
}

/// Kubernetes' semantics: `!=` and `notin` also match a missing key.
fn reference_match(reqs: &[Req], labels: &BTreeMap<String, String>) -> bool {
    reqs.iter().all(|r| match r {
        Req::Eq(k, v, _) => labels.get(k) == Some(v),
        Req::NotEq(k, v) => labels.get(k) != Some(v),
        Req::In(k, vs) => labels.get(k).is_some_and(|x| vs.contains(x)),
        Req::NotIn(k, vs) => !labels.get(k).is_some_and(|x| vs.contains(x)),
        Req::Exists(k) => labels.contains_key(k),
        Req::NotExists(k) => !labels.contains_key(k),
    })
}

fn label_sets() -> impl Strategy<Value = Vec<BTreeMap<String, String>>> {
    let one = prop::collection::btree_map(
        select(KEYS).prop_map(|s| s.to_string()),
        select(VALUES).prop_map(|s| s.to_string()),
        0..5,
    );
    prop::collection::vec(one, 4)
}

fn label_selectors(ctx: &mut Ctx) {
    use meshkeeper::config::LabelSelector;

    let built = (prop::collection::vec((req(), any::<u16>()), 0..5), label_sets());
    ctx.prop("built selectors", 2000, built, |(reqs, sets)| {
        let text: Vec<String> = reqs.iter().map(|(r, sp)| render(r, *sp)).collect();
        let text = text.join(",");
        let sel = LabelSelector::try_from(text.clone()).map_err(TestCaseError::fail)?;
        prop_assert_eq!(sel.as_str(), text.as_str());
        let reqs: Vec<Req> = reqs.into_iter().map(|(r, _)| r).collect();
        for labels in &sets {
            let got = sel.matches(|k| labels.get(k).map(String::as_str));
            prop_assert_eq!(got, reference_match(&reqs, labels), "{:?} on {:?}", text, labels);
        }
        let from_serde: LabelSelector =
            serde_json::from_value(json!(text)).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(from_serde, sel);
        Ok(())
    });
    // A selector with one requirement damaged is refused, and the error names the damage.
    let damaged = (prop::collection::vec(req(), 0..3), 0usize..4, 0u8..4);
    ctx.prop("damaged selectors", 1000, damaged, |(reqs, at, how)| {
        let mut parts: Vec<String> = reqs.iter().map(|r| render(r, 0)).collect();
        let (bad, named) = match how {
            0 => ("-bad=x".to_string(), "-bad"),
            1 => ("env in prod".to_string(), "env in prod"),
            2 => ("env=not valid".to_string(), "not valid"),
            _ => ("a b c".to_string(), "a b c"),
        };
        parts.insert(at.min(parts.len()), bad);
        let text = parts.join(",");
        match LabelSelector::try_from(text.clone()) {
            Ok(_) => prop_assert!(false, "accepted {:?}", text),
            Err(e) => prop_assert!(e.contains(named), "{:?}: {} does not name {:?}", text, e, named),
        }
        Ok(())
    });
    ctx.prop("arbitrary text", 2000, text("[a-z=!(), ]{0,24}"), |s| {
        if let Ok(sel) = LabelSelector::try_from(s.clone()) {
            prop_assert_eq!(sel.as_str(), s.as_str());
            if s.trim().is_empty() {
                prop_assert!(sel.matches(|_| None), "the empty selector matches everything");
            }
        } else {
            prop_assert!(!s.trim().is_empty(), "refused an empty selector");
        }
        Ok(())
    })
}

// === webhook selectors ===

fn webhook_selectors(ctx: &mut Ctx) {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
    use meshkeeper::cache::Selector;

    let s = || select(KEYS).prop_map(|s| s.to_string());
    let v = || select(VALUES).prop_map(|s| s.to_string());
    let op = select(vec!["In", "NotIn", "Exists", "DoesNotExist", "Bogus"]);
    let expression = (s(), op, proptest::option::of(prop::collection::vec(v(), 0..3)));
    let selector = (
        proptest::option::of(prop::collection::btree_map(s(), v(), 0..3)),
        proptest::option::of(prop::collection::vec(expression, 0..4)),
    );
    ctx.prop("matchLabels and matchExpressions", 2000, (selector, label_sets()), |((ml, me), sets)| {
        let k8s = LabelSelector {
            match_labels: ml.clone(),
            match_expressions: me.as_ref().map(|es| {
                es.iter()
                    .map(|(k, op, vals)| LabelSelectorRequirement {
                        key: k.clone(),
                        operator: op.to_string(),
                        values: vals.clone(),
                    })
                    .collect()
            }),
        };
        let sel = Selector::from_k8s(&k8s);
        prop_assert_eq!(
            sel.is_empty(),
            ml.as_ref().is_none_or(|m| m.is_empty()) && me.as_ref().is_none_or(|e| e.is_empty())
        );
        for labels in &sets {
            let want = ml.iter().flatten().all(|(k, v)| labels.get(k) == Some(v))
                && me.iter().flatten().all(|(k, op, vals)| {
                    let vals = vals.clone().unwrap_or_default();
                    match *op {
                        "In" => labels.get(k).is_some_and(|x| vals.contains(x)),
                        "NotIn" => !labels.get(k).is_some_and(|x| vals.contains(x)),
                        "Exists" => labels.contains_key(k),
                        "DoesNotExist" => !labels.contains_key(k),
                        _ => false,
                    }
                });
            prop_assert_eq!(sel.matches(labels), want, "{:?} on {:?}", sel, labels);
            prop_assert_eq!(sel.matches_with(|k| labels.get(k).map(String::as_str)), want);
        }
        Ok(())
    })
}

// === maintenance windows ===

const DAY: i64 = 86_400;

fn hhmm(m: u16) -> String {
    format!("{:02}:{:02}", m / 60, m % 60)
}

/// Inside iff, for the day `t` falls on or the day before, that day is listed (or none is) and
/// `t` lies in [day + start, day + end), `end` taken on the next day when it is not after `start`.
fn reference_contains(days: &[meshkeeper::config::Weekday], start: u16, end: u16, t: i64) -> bool {
    use meshkeeper::config::Weekday;
    let today = t.div_euclid(DAY);
    [today - 1, today].into_iter().any(|d| {
        let weekday = Weekday::ALL[(d + 3).rem_euclid(7) as usize]; // 1970-01-01 was a Thursday
        let end = if end > start { end } else { end + 1440 };
        let (open, close) = (d * DAY + i64::from(start) * 60, d * DAY + i64::from(end) * 60);
        (days.is_empty() || days.contains(&weekday)) && open <= t - t.rem_euclid(60) && t < close
    })
}

fn window() -> impl Strategy<Value = (Vec<meshkeeper::config::Weekday>, u16, u16)> {
    use meshkeeper::config::Weekday;
    let minute = prop_oneof![3 => 0u16..=1440, 1 => select(vec![0u16, 60, 120, 1380, 1439, 1440])];
    (prop::collection::vec(select(Weekday::ALL.to_vec()), 0..4), minute.clone(), minute)
}

fn instant(start: u16, end: u16) -> impl Strategy<Value = i64> {
    let day = -20_000i64..40_000; // 1915 .. 2079
    prop_oneof![
        (day.clone(), 0..DAY).prop_map(|(d, s)| d * DAY + s),
        // Right at the edges, where an off-by-one shows.
        (day, select(vec![start, end]), -130i64..130).prop_map(|(d, m, delta)| d * DAY + i64::from(m) * 60 + delta),
    ]
}

fn maintenance_windows(ctx: &mut Ctx) {
    use meshkeeper::config::{MaintenanceWindow, TimeOfDay};

    let parse = |m: u16| TimeOfDay::try_from(hhmm(m)).map_err(TestCaseError::fail);
    ctx.prop("times of day", 1441, 0u16..=1440, |m| {
        let t = parse(m)?;
        prop_assert_eq!(t, TimeOfDay(m));
        prop_assert_eq!(String::from(t), hhmm(m));
        Ok(())
    });
    let tod = prop_oneof!["[0-9+: -]{0,6}", "[0-9]{2}:[0-9]{2}", "[+-]?[0-9]{1,2}:[+-]?[0-9]{1,2}", any::<String>()];
    ctx.prop("arbitrary times of day", 2000, tod, |s| {
        if let Ok(t) = TimeOfDay::try_from(s.clone()) {
            // Only the canonical HH:MM is a time of day: whatever parses prints back as given.
            prop_assert_eq!(String::from(t), s.clone(), "accepted {:?}", s);
            prop_assert!(t.0 <= 1440);
        }
        Ok(())
    });
    let with_instant = window().prop_flat_map(|w| {
        let (start, end) = (w.1, w.2);
        (Just(w), instant(start, end))
    });
    ctx.prop("contains", 3000, with_instant, |((days, start, end), t)| {
        let yaml = format!(
            "days: [{}]\nstart: \"{}\"\nend: \"{}\"\n",
            days.iter()
                .map(|d| serde_json::to_value(d).unwrap().as_str().unwrap().to_string())
                .collect::<Vec<_>>()
                .join(", "),
            hhmm(start),
            hhmm(end)
        );
        let w: MaintenanceWindow = serde_yaml::from_str(&yaml).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&w, &MaintenanceWindow { days: days.clone(), start: TimeOfDay(start), end: TimeOfDay(end) });
        prop_assert_eq!(w.contains(t), reference_contains(&days, start, end, t), "{} at {}", yaml, t);
        Ok(())
    });
    let with_instant = window().prop_flat_map(|w| {
        let (start, end) = (w.1, w.2);
        (Just(w), instant(start, end))
    });
    ctx.prop("next_open", 500, with_instant, |((days, start, end), t)| {
        let w = MaintenanceWindow { days: days.clone(), start: TimeOfDay(start), end: TimeOfDay(end) };
        let first = t - t.rem_euclid(60);
        let want = (0..=7 * 24 * 60).map(|m| first + m * 60).find(|x| reference_contains(&days, start, end, *x));
        prop_assert_eq!(w.next_open(t), want, "{:?} from {}", w, t);
        Ok(())
    })
}

// === quantities ===

const SUFFIXES: &[(&str, u32, i32)] = &[
    // (suffix, power of 1024, power of 10)
    ("", 0, 0),
    ("n", 0, -9),
    ("u", 0, -6),
    ("m", 0, -3),
    ("k", 0, 3),
    ("M", 0, 6),
    ("G", 0, 9),
    ("T", 0, 12),
    ("P", 0, 15),
    ("E", 0, 18),
    ("Ki", 1, 0),
    ("Mi", 2, 0),
    ("Gi", 3, 0),
    ("Ti", 4, 0),
    ("Pi", 5, 0),
    ("Ei", 6, 0),
];

/// A quantity read by the grammar (`[+-]? digits [. digits] suffix`, at least one digit, the
/// suffix SI, binary SI or `e`/`E` and a signed integer): (negative, digits, decimals, 1024s, 10s).
fn reference_quantity(s: &str) -> Option<(bool, String, usize, u32, i32)> {
    let s = s.trim();
    let (neg, rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
    let (int, rest) = rest.split_at(int_len);
    let (frac, rest) = match rest.strip_prefix('.') {
        Some(r) => {
            let n = r.bytes().take_while(u8::is_ascii_digit).count();
            r.split_at(n)
        }
        None => ("", rest),
    };
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    let (k, e) = match SUFFIXES.iter().find(|(suffix, ..)| *suffix == rest) {
        Some((_, k, e)) => (*k, *e),
        None => {
            let exp = rest.strip_prefix(['e', 'E'])?;
            let digits = exp.strip_prefix(['+', '-']).unwrap_or(exp);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            (0, exp.parse::<i32>().ok()?)
        }
    };
    Some((neg, format!("{int}{frac}"), frac.len(), k, e))
}

/// The exact value times `scale` as (numerator, denominator), when it fits in u128.
fn exact(q: &(bool, String, usize, u32, i32), scale: u32) -> Option<(bool, u128, u128)> {
    let (neg, digits, decimals, k, e) = q;
    let digits = digits.trim_start_matches('0');
    if digits.len() > 30 {
        return None;
    }
    let m: u128 = if digits.is_empty() { 0 } else { digits.parse().ok()? };
    let ten = |n: i64| -> Option<u128> { 10u128.checked_pow(u32::try_from(n).ok()?) };
    let exp10 = i64::from(*e) - *decimals as i64;
    let num = m.checked_mul(1024u128.checked_pow(*k)?)?.checked_mul(u128::from(scale))?;
    let (num, den) = if exp10 >= 0 { (num.checked_mul(ten(exp10)?)?, 1) } else { (num, ten(-exp10)?) };
    Some((*neg, num, den))
}

fn check_quantity(s: &str, scale: u32, got: i64) -> Result<(), TestCaseError> {
    let Some(q) = reference_quantity(s) else {
        prop_assert_eq!(got, 0, "{:?} is not a quantity", s);
        return Ok(());
    };
    let Some((neg, num, den)) = exact(&q, scale) else { return Ok(()) };
    let value = num as f64 / den as f64;
    if value >= 9.0e18 {
        return Ok(()); // at i64's edge: saturates
    }
    let value = if neg { -value } else { value };
    // Rounded to the nearest integer; f64's rounding may tip a tie, never more.
    let slack = 0.5 + value.abs() * 1e-12;
    prop_assert!((got as f64 - value).abs() <= slack, "{:?} x {}: got {}, exact {}", s, scale, got, value);
    Ok(())
}

fn quantities(ctx: &mut Ctx) {
    use k8s_openapi::api::core::v1::Node;
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
    use meshkeeper::cache::NodeInfo;
    use meshkeeper::cache::workload::parse_quantity;

    // What nodes report: integers with a binary or decimal suffix, cores or millicores. Exact.
    let suffixes = vec![
        ("", 1u64),
        ("Ki", 1 << 10),
        ("Mi", 1 << 20),
        ("Gi", 1 << 30),
        ("k", 1000),
        ("M", 1_000_000),
        ("G", 1_000_000_000),
    ];
    // Below 2^53 bytes, where every integer is exact in f64.
    let memory = select(suffixes).prop_flat_map(|(suffix, mult)| (0u64..(1 << 53) / mult, Just((suffix, mult))));
    let cpu = prop_oneof![
        (0u64..4096).prop_map(|c| (c.to_string(), c * 1000)),
        (0u64..4_096_000).prop_map(|m| (format!("{m}m"), m))
    ];
    ctx.prop("node allocatable", 1500, (memory, cpu), |((n, (suffix, mult)), (cpu, millis))| {
        let mem = format!("{n}{suffix}");
        let bytes = i64::try_from(n * mult).unwrap();
        prop_assert_eq!(parse_quantity(&Quantity(mem.clone()), 1.0), bytes, "{}", mem);
        prop_assert_eq!(parse_quantity(&Quantity(cpu.clone()), 1000.0), millis as i64, "{}", cpu);
        let node: Node = serde_json::from_value(json!({
            "metadata": {"name": "n"},
            "status": {"allocatable": {"cpu": cpu, "memory": mem},
                "conditions": [{"type": "Ready", "status": "True"}]}
        }))
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let info = NodeInfo::from_object(node).ok_or_else(|| TestCaseError::fail("no NodeInfo"))?;
        prop_assert_eq!((info.cpu_millis, info.memory_bytes), (millis as i64, bytes));
        Ok(())
    });
    // Decimals, signs and every suffix, e-notation included: the exact value, rounded.
    let number = ("[+-]?", "[0-9]{0,9}", proptest::option::of("[0-9]{0,6}")).prop_filter_map("a digit", |(s, i, f)| {
        let text = match &f {
            Some(f) => format!("{s}{i}.{f}"),
            None => format!("{s}{i}"),
        };
        (!i.is_empty() || f.is_some_and(|f| !f.is_empty())).then_some(text)
    });
    let suffix = prop_oneof![
        select(SUFFIXES).prop_map(|(s, ..)| s.to_string()),
        ("[eE]", "[+-]?", 0u32..13).prop_map(|(e, sign, n)| format!("{e}{sign}{n}")),
    ];
    ctx.prop("generated quantities", 3000, (number, suffix, select(vec![1u32, 1000])), |(n, suffix, scale)| {
        let s = format!("{n}{suffix}");
        prop_assert!(reference_quantity(&s).is_some(), "the generator made {:?}", s);
        check_quantity(&s, scale, parse_quantity(&Quantity(s.clone()), f64::from(scale)))
    });
    ctx.prop("arbitrary text", 3000, text("[0-9.+eEKMGTPikmnu -]{0,10}"), |s| {
        for scale in [1u32, 1000] {
            check_quantity(&s, scale, parse_quantity(&Quantity(s.clone()), f64::from(scale)))?;
        }
        Ok(())
    })
}

// === Kubernetes versions ===

fn kubernetes_versions(ctx: &mut Ctx) {
    use meshkeeper::checks::api::parse_version;
    use meshkeeper::config::VersionRange;

    let minor = || (0u32..3, 0u32..40);
    let range = (minor(), proptest::option::of(minor())).prop_map(|(a, b)| match b {
        Some(b) if b < a => (b, Some(a)),
        other => (a, other),
    });
    let git = (minor(), 0u32..20, select(vec!["", "-gke.100", "+", "-rc.1", "-eks-4c7d"]), any::<bool>());
    ctx.prop("ranges and the precheck", 2000, (range, git, 0u8..4), |((min, max), (v, patch, suffix, vee), style)| {
        let r = VersionRange { min, max };
        let text = r.to_string();
        let back: VersionRange = text.parse().map_err(TestCaseError::fail)?;
        prop_assert_eq!(back, r);
        let json: VersionRange = serde_json::from_value(json!(text)).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(json, r);
        // Other spellings of the same range.
        let spell = |(a, b): (u32, u32)| match style {
            0 => format!("{a}.{b}"),
            1 => format!("v{a}.{b}"),
            2 => format!(" {a}.{b:02} "),
            _ => format!("v{a:02}.{b}"),
        };
        let other = match max {
            None => format!("{}+", spell(min)),
            Some(m) => format!("{}-{}", spell(min), spell(m)),
        };
        prop_assert_eq!(other.parse::<VersionRange>().map_err(TestCaseError::fail)?, r, "{:?}", other);
        if let Some(m) = max.filter(|m| *m != min) {
            let reversed = format!("{}-{}", spell(m), spell(min));
            prop_assert!(reversed.parse::<VersionRange>().is_err(), "accepted reversed {:?}", reversed);
        }
        // The server's gitVersion, then the precheck's verdict.
        let git = format!("{}{}.{}.{patch}{suffix}", if vee { "v" } else { "" }, v.0, v.1);
        prop_assert_eq!(parse_version(&git), Some(v), "{}", git);
        let inside = v >= min && max.is_none_or(|m| v <= m);
        prop_assert_eq!(r.contains(v), inside, "{} in {}", git, text);
        Ok(())
    });
    ctx.prop("arbitrary text", 2000, text("[v0-9. +-]{0,12}"), |s| {
        if let Ok(r) = s.parse::<VersionRange>() {
            prop_assert!(r.max.is_none_or(|m| m >= r.min), "{:?} gave {:?}", s, r);
            prop_assert_eq!(r.to_string().parse::<VersionRange>().map_err(TestCaseError::fail)?, r);
        }
        if let Some((major, minor)) = parse_version(&s) {
            let rest = s.strip_prefix('v').unwrap_or(&s);
            let (a, b) = rest.split_once('.').ok_or_else(|| TestCaseError::fail("no dot"))?;
            prop_assert_eq!(a.parse::<u32>().ok(), Some(major), "{:?}", s);
            let digits: String = b.chars().take_while(char::is_ascii_digit).collect();
            prop_assert_eq!(digits.parse::<u32>().ok(), Some(minor), "{:?}", s);
        }
        Ok(())
    })
}

// === CA bundles ===

struct Cert {
    pem: String,
    subject: String,
    not_after: i64,
}

fn certs() -> Vec<Cert> {
    (0..3)
        .map(|i| {
            let cn = format!("meshkeeper-prop-ca-{i}");
            let mut params = rcgen::CertificateParams::new(vec![format!("{cn}.svc")]).expect("params");
            let mut dn = rcgen::DistinguishedName::new();
            dn.push(rcgen::DnType::CommonName, cn.clone());
            params.distinguished_name = dn;
            let not_after = 1_800_000_000 + i64::from(i) * 86_400;
            params.not_before = time::OffsetDateTime::from_unix_timestamp(1_700_000_000).expect("time");
            params.not_after = time::OffsetDateTime::from_unix_timestamp(not_after).expect("time");
            params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
            let key = rcgen::KeyPair::generate().expect("key");
            let pem = params.self_signed(&key).expect("cert").pem();
            Cert { pem, subject: format!("CN={cn}"), not_after }
        })
        .collect()
}

#[derive(Debug, Clone)]
enum Piece {
    Cert(usize),
    /// another PEM block (a key), which the bundle may carry
    Other,
    /// text outside any block
    Junk(String),
    Blank,
}

fn ca_bundles(ctx: &mut Ctx) {
    use meshkeeper::checks::control_plane::{CaStatus, parse_ca_bundle};

    let certs = certs();
    let other = "-----BEGIN PRIVATE KEY-----\nTUlJQm5vdGFrZXlidXRiYXNlNjQ=\n-----END PRIVATE KEY-----\n";
    let piece = prop_oneof![
        4 => (0usize..3).prop_map(Piece::Cert),
        1 => Just(Piece::Other),
        1 => "[a-zA-Z0-9 #:]{0,30}".prop_map(Piece::Junk),
        1 => Just(Piece::Blank),
    ];
    let bundle_of = |pieces: &[Piece]| {
        let mut b = String::new();
        for p in pieces {
            match p {
                Piece::Cert(i) => b.push_str(&certs[*i].pem),
                Piece::Other => b.push_str(other),
                Piece::Junk(s) => b.push_str(&format!("{s}\n")),
                Piece::Blank => b.push_str(" \n\t\n"),
            }
        }
        b
    };
    ctx.prop("built bundles", 1000, prop::collection::vec(piece.clone(), 0..6), |pieces| {
        let bundle = bundle_of(&pieces);
        let want: Vec<(String, i64)> = pieces
            .iter()
            .filter_map(|p| match p {
                Piece::Cert(i) => Some((certs[*i].subject.clone(), certs[*i].not_after)),
                _ => None,
            })
            .collect();
        match parse_ca_bundle(bundle.as_bytes()) {
            CaStatus::Missing => prop_assert!(bundle.trim().is_empty(), "Missing for {:?}", bundle),
            CaStatus::Certs(got) => {
                let got: Vec<(String, i64)> = got.into_iter().map(|c| (c.subject, c.not_after)).collect();
                prop_assert_eq!(got, want);
            }
            CaStatus::Invalid(why) => {
                prop_assert!(want.is_empty() && !bundle.trim().is_empty(), "Invalid ({}) for {:?}", why, pieces)
            }
        }
        Ok(())
    });
    // Damaged bytes: never a panic, Missing only for white space, Certs only of real certificates.
    let damaged = (
        prop::collection::vec(piece, 1..4),
        prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
        any::<prop::sample::Index>(),
    );
    ctx.prop("damaged bundles", 1000, damaged, |(pieces, flips, cut)| {
        let mut bytes = bundle_of(&pieces).into_bytes();
        for (at, b) in &flips {
            if !bytes.is_empty() {
                let i = at.index(bytes.len());
                bytes[i] = *b;
            }
        }
        if !bytes.is_empty() {
            bytes.truncate(cut.index(bytes.len() + 1));
        }
        match parse_ca_bundle(&bytes) {
            CaStatus::Missing => prop_assert!(bytes.iter().all(u8::is_ascii_whitespace)),
            CaStatus::Certs(got) => {
                let blocks = String::from_utf8_lossy(&bytes).matches("-----BEGIN CERTIFICATE-----").count();
                prop_assert!(
                    !got.is_empty() && got.len() <= blocks,
                    "{} certificates from {} blocks",
                    got.len(),
                    blocks
                );
            }
            CaStatus::Invalid(why) => prop_assert!(!why.is_empty()),
        }
        Ok(())
    })
}

// === config values ===

/// Every key whose value is a scalar or a list, with its default (both profiles' keys).
fn config_keys() -> Vec<(String, Value)> {
    use meshkeeper::config::{Profile, Settings};
    fn walk(prefix: &str, v: &Value, out: &mut BTreeMap<String, Value>) {
        match v {
            Value::Object(m) => {
                for (k, v) in m {
                    let path = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                    walk(&path, v, out);
                }
            }
            other => {
                out.entry(prefix.to_string()).or_insert_with(|| other.clone());
            }
        }
    }
    let mut out = BTreeMap::new();
    for p in [Profile::AsmOnprem, Profile::Istiod] {
        walk("", &serde_json::to_value(Settings::defaults(p)).expect("defaults"), &mut out);
    }
    out.into_iter().collect()
}

/// Scalars YAML (or a person) might write, plain: typed by YAML, not quoted.
const PLAIN: &[&str] = &[
    "~",
    "null",
    "true",
    "false",
    "True",
    "FALSE",
    "yes",
    "no",
    "on",
    "off",
    "0",
    "-0",
    "+1",
    "007",
    "1.10",
    "1.5",
    "1e3",
    "-1",
    "4294967296",
    "18446744073709551616",
    "0x1F",
    "0o17",
    "1_000",
    ".inf",
    "-.inf",
    ".nan",
    "12:30",
    "2026-01-01",
    "0.0.0.0:9090",
    "istio-system",
    "a=b",
    "istio.io/rev=asm-1",
    "1.13-1.15",
    "kube-*",
    "enforce",
    "audit",
    "off",
    "[]",
    "{}",
    "''",
    "\"\"",
    "[a, b]",
    "[1, 2]",
    "{a: 1}",
    "-x",
    "a*",
];

#[derive(Debug, Clone)]
enum Scalar {
    /// YAML text written as is after `key: `
    Plain(&'static str),
    /// a value serde_yaml writes (quoted when YAML would read it as something else)
    Typed(serde_yaml::Value),
}

fn scalar() -> impl Strategy<Value = Scalar> {
    use serde_yaml::Value as Y;
    prop_oneof![
        3 => select(PLAIN).prop_map(Scalar::Plain),
        1 => any::<bool>().prop_map(|b| Scalar::Typed(Y::Bool(b))),
        2 => any::<i64>().prop_map(|n| Scalar::Typed(Y::from(n))),
        2 => (0u64..100_000).prop_map(|n| Scalar::Typed(Y::from(n))),
        1 => any::<f64>().prop_map(|n| Scalar::Typed(Y::from(n))),
        3 => "[a-z0-9.:=/*?_ -]{0,16}".prop_map(|s| Scalar::Typed(Y::String(s))),
        1 => any::<String>().prop_map(|s| Scalar::Typed(Y::String(s))),
    ]
}

/// A YAML double-quoted scalar: printable ASCII as is, everything else escaped.
fn yaml_quoted(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            ' '..='~' => out.push(c),
            c if (c as u32) <= 0xffff => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push_str(&format!("\\U{:08X}", c as u32)),
        }
    }
    out.push('"');
    out
}

fn yaml_for(path: &str, value: &str) -> String {
    let mut out = String::new();
    let parts: Vec<&str> = path.split('.').collect();
    for (depth, part) in parts.iter().enumerate() {
        out.push_str(&"  ".repeat(depth));
        if depth + 1 == parts.len() {
            out.push_str(&format!("{part}: {value}\n"));
        } else {
            out.push_str(&format!("{part}:\n"));
        }
    }
    out
}

/// Keys whose type prints a value in its own canonical form (not always as given).
const NORMALISED: &[&str] = &["http.listen", "precheck.kubernetes_versions", "gateway.load_balancer_ip"];

fn lookup<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(v, |v, k| v.get(k))
}

/// An error names the key when one is about it (or below it), or says its name.
fn names_key(errs: &meshkeeper::config::ConfigErrors, path: &str) -> bool {
    let leaf = path.rsplit('.').next().unwrap_or(path);
    errs.0.iter().any(|e| {
        e.key == path
            || e.key.starts_with(&format!("{path}."))
            || e.key.starts_with(&format!("{path}["))
            || e.message.contains(leaf)
    })
}

fn config_values(ctx: &mut Ctx) {
    use meshkeeper::config::Settings;

    let keys = config_keys();
    let profile = select(vec!["", "profile: istiod\n"]);
    let yaml = (select(keys.clone()), scalar(), any::<bool>(), profile);
    ctx.prop("YAML scalars", 2000, yaml, |((path, default), value, as_list, profile)| {
        let rendered = match &value {
            Scalar::Plain(p) => p.to_string(),
            Scalar::Typed(serde_yaml::Value::String(s)) => yaml_quoted(s),
            Scalar::Typed(v) => {
                serde_yaml::to_string(v).map_err(|e| TestCaseError::fail(e.to_string()))?.trim_end().to_string()
            }
        };
        // A list key also gets a one-element list of the scalar.
        let rendered = if as_list && default.is_array() { format!("[{rendered}]") } else { rendered };
        let profile = if path == "profile" { "" } else { profile };
        let text = format!("{profile}{}", yaml_for(&path, &rendered));
        match Settings::from_yaml_and_env(Some(&text), &[]) {
            Ok(s) => {
                // A string given for a string key arrives unchanged.
                if let (Scalar::Typed(serde_yaml::Value::String(given)), Value::String(_)) = (&value, &default)
                    && !NORMALISED.contains(&path.as_str())
                    && path != "profile"
                {
                    let loaded = serde_json::to_value(&s).unwrap();
                    prop_assert_eq!(lookup(&loaded, &path), Some(&Value::String(given.clone())), "{}", text);
                }
            }
            Err(errs) => {
                // NB: the config crate's YAML reader refuses YAML's special floats itself, before
                // any key is known ("Parsing .inf as floating point number failed"): that error
                // quotes the value but cannot name the key.
                let special = match value {
                    Scalar::Plain(p @ (".inf" | "-.inf" | ".nan")) => errs.to_string().contains(p),
                    _ => false,
                };
                prop_assert!(names_key(&errs, &path) || special, "{:?} for\n{}: {}", path, text, errs)
            }
        }
        Ok(())
    });
    // The environment: MESHKEEPER_A__B=value, any text; lists are comma-separated.
    let env_value = prop_oneof![
        select(PLAIN).prop_map(str::to_string),
        "[a-z0-9.:=/*?_, -]{0,16}",
        "[0-9]{1,3}(\\.[0-9]{1,3}0)?",
        any::<String>().prop_filter("no NUL in the environment", |s| !s.contains('\0')),
    ];
    ctx.prop("environment values", 2000, (select(keys), env_value), |((path, default), value)| {
        let var = format!("MESHKEEPER_{}", path.to_uppercase().replace('.', "__"));
        let env = vec![(var.clone(), value.clone())];
        match Settings::from_yaml_and_env(None, &env) {
            Ok(s) => {
                let loaded = serde_json::to_value(&s).unwrap();
                let got = lookup(&loaded, &path);
                match &default {
                    Value::String(_) if !NORMALISED.contains(&path.as_str()) => {
                        prop_assert_eq!(got, Some(&Value::String(value.clone())), "{}={:?}", var, value)
                    }
                    Value::Array(_) => {
                        let want: Vec<Value> = value.split(',').map(|s| Value::String(s.to_string())).collect();
                        prop_assert_eq!(got, Some(&Value::Array(want)), "{}={:?}", var, value)
                    }
                    Value::Bool(_) => {
                        let want = value.trim().eq_ignore_ascii_case("true");
                        prop_assert_eq!(got, Some(&Value::Bool(want)), "{}={:?}", var, value)
                    }
                    Value::Number(_) => {
                        let want: f64 = value
                            .trim()
                            .trim_start_matches('+')
                            .parse()
                            .map_err(|_| TestCaseError::fail(format!("{var}={value:?} loaded as {got:?}")))?;
                        prop_assert_eq!(got.and_then(Value::as_f64), Some(want), "{}={:?}", var, value)
                    }
                    _ => {}
                }
            }
            Err(errs) => {
                prop_assert!(names_key(&errs, &path), "{}={:?}: {}", var, value, errs);
                // An error about the key itself also names the variable that set it.
                for e in errs.0.iter().filter(|e| e.key == path || e.key.starts_with(&format!("{path}["))) {
                    prop_assert_eq!(e.variable.as_deref(), Some(var.as_str()), "{}={:?}: {}", var, value, errs);
                }
            }
        }
        Ok(())
    });
    // profile: names parse back, anything else is refused naming the value.
    ctx.prop("profile names", 500, text("[a-z-]{0,12}"), |s| {
        use meshkeeper::config::Profile;
        match s.parse::<Profile>() {
            Ok(p) => prop_assert_eq!(p.as_str(), s.as_str()),
            Err(e) => {
                prop_assert!(!["asm-onprem", "istiod"].contains(&s.as_str()));
                prop_assert!(e.contains(&format!("{s:?}")) && e.contains("asm-onprem, istiod"), "{}", e);
            }
        }
        Ok(())
    })
}
