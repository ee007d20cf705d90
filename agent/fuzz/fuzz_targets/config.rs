//! The configuration file: any text as YAML. It loads, or it fails with at least one error,
//! each naming a key and saying what is wrong; never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use meshkeeper::config::Settings;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    if let Err(errs) = Settings::from_yaml_and_env(Some(s), &[]) {
        assert!(!errs.0.is_empty());
        for e in &errs.0 {
            assert!(!e.key.is_empty() && !e.message.is_empty(), "{e:?}");
        }
    }
});
