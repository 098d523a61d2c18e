//! The HTTP sniffer (http_inspector) on a connection's first bytes: it
//! must never panic, and its answer may only go from "need more" to a
//! decision as bytes arrive, never change once decided, since the proxy
//! acts on the first decided answer.
#![no_main]

use libfuzzer_sys::fuzz_target;
use trellis_proxy::fuzzing::{Detected, MAX_INSPECTED, detect_http};

fuzz_target!(|data: &[u8]| {
    let data = &data[..data.len().min(MAX_INSPECTED)];
    let whole = detect_http(data);
    let mut decided = None;
    // Every prefix up to the first decision, then a few beyond it.
    for end in 0..=data.len() {
        let answer = detect_http(&data[..end]);
        match (decided, answer) {
            (None, Detected::NeedMore) => {}
            (None, answer) => decided = Some(answer),
            (Some(first), answer) => assert_eq!(answer, first, "changed at {end} bytes"),
        }
        if decided.is_some() && end > 64 {
            break;
        }
    }
    if let Some(first) = decided {
        assert_eq!(whole, first);
    }
});
