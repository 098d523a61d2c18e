//! The config loader on arbitrary bytes: it must return errors, never
//! panic, loop or exhaust memory (libFuzzer's limits enforce the latter).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let outcome = trellis_api::parse_yaml(std::path::Path::new("fuzz.yaml"), &text);
    // Every error must render (Display walks positions and field paths).
    for error in outcome.errors.iter().chain(&outcome.warnings) {
        let _ = error.to_string();
    }
});
