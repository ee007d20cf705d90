//! Image references as the agent reads them: the tag of a running proxy (`image_tag`,
//! `proxy_version`), the image without its digest, the expected proxy from the setting and
//! from the injector's values. Invariants, not only "no panic": the part without the digest is
//! a prefix with no '@', a tag is never empty and never holds '/' or '@'.
#![no_main]

use libfuzzer_sys::fuzz_target;
use meshkeeper::cache::image_tag;
use meshkeeper::cache::injector::{image_of, proxy_version, without_digest};
use meshkeeper::checks::reinjection::classify::Expected;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    let nd = without_digest(s);
    assert!(s.starts_with(nd) && !nd.contains('@'), "without_digest({s:?}) = {nd:?}");
    if let Some(tag) = image_tag(s) {
        assert!(!tag.is_empty() && !tag.contains('/') && !tag.contains('@'), "tag {tag:?} of {s:?}");
        assert!(nd.ends_with(&format!(":{tag}")), "tag {tag:?} is not the end of {nd:?}");
        assert_eq!(proxy_version(s), tag);
    } else {
        assert_eq!(proxy_version(s), "unknown");
    }
    let expected = Expected::from(s, None);
    if !s.is_empty() && !s.contains('/') && !s.contains(':') {
        assert_eq!(expected.version(), Some(s));
    }
    // The injector's values with the input as hub, image and tag in turn.
    let (hub, rest) = halves(s);
    let (name, tag) = halves(rest);
    let values = serde_json::json!({"global": {"hub": hub, "tag": tag, "proxy": {"image": name}}});
    if let Some(image) = image_of(&values) {
        let own = image_tag(name).is_some() || name.contains('@');
        if name.contains('/') && own {
            assert_eq!(image, name, "a whole image keeps its own tag or digest");
        } else {
            assert!(image.ends_with(&format!(":{tag}")), "{image:?} lacks the tag {tag:?}");
        }
    }
});

/// Splits at the char boundary nearest the middle.
fn halves(s: &str) -> (&str, &str) {
    let mid = (0..=s.len() / 2).rev().find(|i| s.is_char_boundary(*i)).unwrap_or(0);
    s.split_at(mid)
}
