//! The ClientHello parser (tls_inspector) on whatever a client sends
//! first: it must classify every input, complete or cut short, without
//! panicking, and a decided record must stay decided as more bytes arrive.
#![no_main]

use libfuzzer_sys::fuzz_target;
use trellis_proxy::fuzzing::{Peeked, parse_client_hello};

fuzz_target!(|data: &[u8]| {
    let whole = parse_client_hello(data);
    if let Peeked::Incomplete { record_len } = whole {
        assert!(
            record_len > data.len(),
            "incomplete, yet all {record_len} bytes are here"
        );
        return;
    }
    // The peek loop re-parses as bytes arrive: once the record is complete,
    // bytes after it change nothing.
    let mut longer = data.to_vec();
    longer.extend_from_slice(b"\x17\x03\x03\x00\x01\x00");
    assert_eq!(parse_client_hello(&longer), whole);
});
