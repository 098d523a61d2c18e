use super::*;

fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.insert(*name, HeaderValue::from_static(value));
    }
    map
}

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const SPAN: &str = "00f067aa0ba902b7";

#[test]
fn reads_a_w3c_traceparent_and_its_sampled_flag() {
    let found = extract(&headers(&[
        (
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ),
        ("tracestate", "vendor=abc"),
    ]))
    .unwrap();
    assert_eq!(format!("{:032x}", found.trace_id), TRACE);
    assert_eq!(format!("{:016x}", found.parent_span_id), SPAN);
    assert_eq!(found.sampled, Some(true));
    assert_eq!(found.tracestate.unwrap(), "vendor=abc");
    assert!(found.formats.w3c && !found.formats.b3_multi);
}

#[test]
fn invalid_traceparents_are_ignored() {
    for bad in [
        "",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01",
        "00-+bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        "0-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-zz",
    ] {
        let map = headers(&[("traceparent", bad)]);
        assert_eq!(extract(&map), None, "{bad:?}");
    }
    // A later version may add fields after the flags.
    let future = headers(&[(
        "traceparent",
        "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-more",
    )]);
    assert_eq!(extract(&future).unwrap().sampled, Some(false));
}

#[test]
fn an_invalid_traceparent_falls_back_to_b3() {
    let found = extract(&headers(&[
        ("traceparent", "garbage"),
        ("x-b3-traceid", "a3ce929d0e0e4736"),
        ("x-b3-spanid", SPAN),
    ]))
    .unwrap();
    assert_eq!(found.trace_id, 0xa3ce929d0e0e4736);
    assert_eq!(found.sampled, None);
    assert!(found.formats.b3_multi && !found.formats.w3c);
}

#[test]
fn reads_b3_multi_header_sampling_and_debug() {
    let base = [("x-b3-traceid", TRACE), ("x-b3-spanid", SPAN)];
    for (sampled, flags, expected) in [
        (Some("1"), None, Some(true)),
        (Some("true"), None, Some(true)),
        (Some("0"), None, Some(false)),
        (Some("0"), Some("1"), Some(true)),
        (None, None, None),
        (Some("maybe"), None, None),
    ] {
        let mut map = headers(&base);
        if let Some(sampled) = sampled {
            map.insert(B3_SAMPLED, HeaderValue::from_static(sampled));
        }
        if let Some(flags) = flags {
            map.insert(B3_FLAGS, HeaderValue::from_static(flags));
        }
        assert_eq!(
            extract(&map).unwrap().sampled,
            expected,
            "{sampled:?} {flags:?}"
        );
    }
    assert_eq!(extract(&headers(&[("x-b3-traceid", TRACE)])), None);
    assert_eq!(
        extract(&headers(&[("x-b3-traceid", "xyz"), ("x-b3-spanid", SPAN)])),
        None
    );
}

#[test]
fn reads_b3_single() {
    let found = extract(&headers(&[(
        "b3",
        "4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1-0000000000000001",
    )]))
    .unwrap();
    assert_eq!(found.sampled, Some(true));
    assert!(found.formats.b3_single);
    let unsampled = headers(&[("b3", "a3ce929d0e0e4736-00f067aa0ba902b7-0")]);
    assert_eq!(extract(&unsampled).unwrap().sampled, Some(false));
    for bad in [
        "0",
        "1",
        "d",
        "a3ce929d0e0e4736",
        "a3ce929d0e0e4736-00f067aa0ba902b7-x",
    ] {
        assert_eq!(extract(&headers(&[("b3", bad)])), None, "{bad:?}");
    }
}

#[test]
fn a_lone_sampling_state_is_a_decision_without_a_context() {
    for (pairs, decision) in [
        (&[("x-b3-sampled", "0")][..], Some(false)),
        (&[("x-b3-sampled", "1")][..], Some(true)),
        (&[("b3", "0")][..], Some(false)),
        (&[("b3", "d")][..], Some(true)),
        (
            &[("x-b3-flags", "1"), ("x-b3-sampled", "0")][..],
            Some(true),
        ),
        (&[("x-b3-sampled", "maybe")][..], None),
        (&[][..], None),
    ] {
        let map = headers(pairs);
        assert_eq!(extract(&map), None, "{pairs:?}");
        assert_eq!(lone_sampling_decision(&map), decision, "{pairs:?}");
    }
}

#[test]
fn injects_a_child_in_the_formats_it_came_in_and_replaces_old_headers() {
    let mut map = headers(&[
        ("x-b3-traceid", TRACE),
        ("x-b3-spanid", SPAN),
        ("x-b3-sampled", "1"),
        ("x-b3-flags", "1"),
    ]);
    let incoming = extract(&map).unwrap();
    inject(
        &mut map,
        &Outgoing {
            trace_id: incoming.trace_id,
            span_id: 0x1234,
            parent_span_id: Some(incoming.parent_span_id),
            sampled: true,
            tracestate: None,
            formats: incoming.formats,
        },
    );
    assert_eq!(map.get(B3_TRACE_ID).unwrap(), TRACE);
    assert_eq!(map.get(B3_SPAN_ID).unwrap(), "0000000000001234");
    assert_eq!(map.get(B3_PARENT_SPAN_ID).unwrap(), SPAN);
    assert_eq!(map.get(B3_SAMPLED).unwrap(), "1");
    assert!(!map.contains_key(B3_FLAGS) && !map.contains_key(TRACEPARENT));
    let reread = extract(&map).unwrap();
    assert_eq!(
        (reread.trace_id, reread.parent_span_id),
        (incoming.trace_id, 0x1234)
    );
}

#[test]
fn a_new_trace_goes_out_as_w3c_and_b3_with_its_tracestate() {
    let mut map = HeaderMap::new();
    let state = HeaderValue::from_static("a=b");
    inject(
        &mut map,
        &Outgoing {
            trace_id: 1,
            span_id: 2,
            parent_span_id: None,
            sampled: false,
            tracestate: Some(&state),
            formats: Formats::NEW_TRACE,
        },
    );
    assert_eq!(
        map.get(TRACEPARENT).unwrap(),
        "00-00000000000000000000000000000001-0000000000000002-00"
    );
    assert_eq!(map.get(TRACESTATE).unwrap(), "a=b");
    assert_eq!(map.get(B3_SAMPLED).unwrap(), "0");
    assert!(!map.contains_key(B3_PARENT_SPAN_ID) && !map.contains_key(B3));
}

#[test]
fn a_b3_single_child_keeps_its_format_and_every_id() {
    let mut map = headers(&[("b3", "4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1")]);
    let incoming = extract(&map).unwrap();
    inject(
        &mut map,
        &Outgoing {
            trace_id: incoming.trace_id,
            span_id: 0xabc,
            parent_span_id: Some(incoming.parent_span_id),
            sampled: true,
            tracestate: None,
            formats: Formats {
                w3c: true,
                b3_multi: true,
                b3_single: true,
            },
        },
    );
    assert_eq!(
        map.get(B3).unwrap(),
        "4bf92f3577b34da6a3ce929d0e0e4736-0000000000000abc-1"
    );
    assert_eq!(
        map.get(TRACEPARENT).unwrap(),
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000abc-01"
    );
    assert_eq!(map.get(B3_TRACE_ID).unwrap(), TRACE);
    assert_eq!(map.get(B3_SPAN_ID).unwrap(), "0000000000000abc");
    assert_eq!(map.get(B3_PARENT_SPAN_ID).unwrap(), "00f067aa0ba902b7");
}

/// Bytes of every kind in every header never panic, and whatever parses
/// survives a round trip.
#[test]
fn arbitrary_header_bytes_never_panic() {
    let alphabet: &[u8] = b"0123456789abcdefABCDEF-+ xz\t\xff";
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    for round in 0..20_000 {
        let mut value = Vec::new();
        let len = (round % 60) + 1;
        for _ in 0..len {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            value.push(alphabet[(seed % alphabet.len() as u64) as usize]);
        }
        let Ok(value) = HeaderValue::from_bytes(&value) else {
            continue;
        };
        for name in [TRACEPARENT, B3, B3_TRACE_ID] {
            let mut map = HeaderMap::new();
            map.insert(name.clone(), value.clone());
            map.insert(B3_SPAN_ID, value.clone());
            if let Some(found) = extract(&map) {
                let mut out = HeaderMap::new();
                inject(
                    &mut out,
                    &Outgoing {
                        trace_id: found.trace_id,
                        span_id: found.parent_span_id,
                        parent_span_id: None,
                        sampled: found.sampled.unwrap_or(false),
                        tracestate: None,
                        formats: found.formats,
                    },
                );
                let again = extract(&out).unwrap();
                assert_eq!(again.trace_id, found.trace_id);
            }
        }
    }
}
