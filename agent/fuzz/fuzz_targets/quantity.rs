//! Kubernetes quantities (`15950552Ki`, `3920m`, `1e3`): what the capacity check and the
//! precheck read from nodes. Never a panic; the result does not depend on surrounding white
//! space, and a quantity with a leading '-' is the negation of the one without.
#![no_main]

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use libfuzzer_sys::fuzz_target;
use meshkeeper::cache::workload::parse_quantity;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    for scale in [1.0, 1000.0] {
        let v = parse_quantity(&Quantity(s.to_string()), scale);
        assert_eq!(parse_quantity(&Quantity(format!(" {s}\n")), scale), v, "white space around {s:?}");
        let t = s.trim();
        if !t.starts_with(['-', '+']) && v != i64::MAX {
            let neg = parse_quantity(&Quantity(format!("-{t}")), scale);
            assert_eq!(neg, -v, "-{t:?} is not the negation of {t:?}");
        }
    }
});
