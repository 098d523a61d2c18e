//! Trace context propagation: W3C Trace Context (`traceparent`,
//! `tracestate`), B3 multi-header (`x-b3-*`) and B3 single (`b3`).
//!
//! Malformed headers never fail a request: as the W3C spec says, an invalid
//! `traceparent` is ignored and the proxy starts a new trace. The child's
//! headers go out in the formats the request came in with; a request that
//! starts a trace gets both W3C and B3 multi-header, so that apps using
//! either library keep the trace.

use bytes::{BufMut, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue};

pub const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
pub const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");
pub const B3: HeaderName = HeaderName::from_static("b3");
pub const B3_TRACE_ID: HeaderName = HeaderName::from_static("x-b3-traceid");
pub const B3_SPAN_ID: HeaderName = HeaderName::from_static("x-b3-spanid");
pub const B3_PARENT_SPAN_ID: HeaderName = HeaderName::from_static("x-b3-parentspanid");
pub const B3_SAMPLED: HeaderName = HeaderName::from_static("x-b3-sampled");
pub const B3_FLAGS: HeaderName = HeaderName::from_static("x-b3-flags");

/// Which header formats carried the incoming context.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Formats {
    pub w3c: bool,
    pub b3_multi: bool,
    pub b3_single: bool,
}

impl Formats {
    /// What a proxy that starts a trace emits.
    pub const NEW_TRACE: Formats = Formats {
        w3c: true,
        b3_multi: true,
        b3_single: false,
    };
}

/// The context a request arrived with (its parent), if any was valid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Incoming {
    /// 128-bit; a 64-bit B3 id is kept in the low half.
    pub trace_id: u128,
    pub parent_span_id: u64,
    /// `None`: the caller left the decision to us.
    pub sampled: Option<bool>,
    pub tracestate: Option<HeaderValue>,
    pub formats: Formats,
}

/// Reads the request's trace context: W3C first, then B3 single, then B3
/// multi-header. Invalid headers are as good as absent.
pub fn extract(headers: &HeaderMap) -> Option<Incoming> {
    let mut found = headers
        .get(TRACEPARENT)
        .and_then(|value| parse_traceparent(value.as_bytes()))
        .map(|(trace_id, span_id, sampled)| Incoming {
            trace_id,
            parent_span_id: span_id,
            sampled: Some(sampled),
            tracestate: headers.get(TRACESTATE).cloned(),
            formats: Formats {
                w3c: true,
                ..Formats::default()
            },
        });
    if found.is_none() {
        found = extract_b3(headers);
    } else if let Some(found) = &mut found {
        // Keep answering in B3 too when the app also sent it.
        found.formats.b3_single = headers.contains_key(B3);
        found.formats.b3_multi = headers.contains_key(B3_TRACE_ID);
    }
    found
}

/// A caller's sampling decision sent without a context to continue: a
/// lone `x-b3-sampled`, or `b3: 0|1|d`. Envoy honours it for the new
/// trace it starts, and so do we.
pub fn lone_sampling_decision(headers: &HeaderMap) -> Option<bool> {
    let decision = |value: &[u8]| match value {
        b"1" | b"true" | b"d" => Some(true),
        b"0" | b"false" => Some(false),
        _ => None,
    };
    if headers.get(B3_FLAGS).is_some_and(|v| v.as_bytes() == b"1") {
        return Some(true);
    }
    headers
        .get(B3)
        .and_then(|v| decision(v.as_bytes().trim_ascii()))
        .or_else(|| {
            headers
                .get(B3_SAMPLED)
                .and_then(|v| decision(v.as_bytes().trim_ascii()))
        })
}

fn extract_b3(headers: &HeaderMap) -> Option<Incoming> {
    if let Some(single) = headers.get(B3).and_then(|v| parse_b3_single(v.as_bytes())) {
        return Some(single);
    }
    let trace_id = parse_trace_id(headers.get(B3_TRACE_ID)?.as_bytes())?;
    let span_id = parse_span_id(headers.get(B3_SPAN_ID)?.as_bytes())?;
    let debug = headers.get(B3_FLAGS).is_some_and(|v| v.as_bytes() == b"1");
    let sampled = match headers.get(B3_SAMPLED).map(HeaderValue::as_bytes) {
        _ if debug => Some(true),
        Some(b"1" | b"true") => Some(true),
        Some(b"0" | b"false") => Some(false),
        _ => None,
    };
    Some(Incoming {
        trace_id,
        parent_span_id: span_id,
        sampled,
        tracestate: None,
        formats: Formats {
            b3_multi: true,
            ..Formats::default()
        },
    })
}

/// `version-traceid-spanid-flags`; version `ff` and all-zero ids are invalid.
/// A future version may carry more fields after the flags.
fn parse_traceparent(value: &[u8]) -> Option<(u128, u64, bool)> {
    let text = std::str::from_utf8(value).ok()?.trim();
    let mut parts = text.split('-');
    let version = parts.next()?;
    let (trace, span, flags) = (parts.next()?, parts.next()?, parts.next()?);
    if version.len() != 2 || !is_lower_hex(version) || version == "ff" {
        return None;
    }
    if version == "00" && parts.next().is_some() {
        return None;
    }
    if trace.len() != 32 || span.len() != 16 || flags.len() != 2 {
        return None;
    }
    if !is_lower_hex(trace) || !is_lower_hex(span) {
        return None;
    }
    let trace_id = parse_hex_u128(trace)?;
    let span_id = parse_hex_u64(span)?;
    let flags = u8::from_str_radix(flags, 16)
        .ok()
        .filter(|_| is_lower_hex(flags))?;
    (trace_id != 0 && span_id != 0).then_some((trace_id, span_id, flags & 1 == 1))
}

/// `traceid-spanid[-sampling[-parentspanid]]`, or a lone sampling state
/// (`0`, `1`, `d`), which carries no context to continue.
fn parse_b3_single(value: &[u8]) -> Option<Incoming> {
    let text = std::str::from_utf8(value).ok()?.trim();
    let mut parts = text.split('-');
    let trace_id = parse_trace_id(parts.next()?.as_bytes())?;
    let span_id = parse_span_id(parts.next()?.as_bytes())?;
    let sampled = match parts.next() {
        None => None,
        Some("1" | "d") => Some(true),
        Some("0") => Some(false),
        Some(_) => return None,
    };
    if let Some(parent) = parts.next() {
        parse_span_id(parent.as_bytes())?;
    }
    if parts.next().is_some() {
        return None;
    }
    Some(Incoming {
        trace_id,
        parent_span_id: span_id,
        sampled,
        tracestate: None,
        formats: Formats {
            b3_single: true,
            ..Formats::default()
        },
    })
}

/// A B3 trace id: 16 or 32 hex digits, not all zero.
fn parse_trace_id(value: &[u8]) -> Option<u128> {
    let text = std::str::from_utf8(value).ok()?;
    if text.len() != 16 && text.len() != 32 {
        return None;
    }
    parse_hex_u128(text).filter(|id| *id != 0)
}

fn parse_span_id(value: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(value).ok()?;
    if text.len() != 16 {
        return None;
    }
    parse_hex_u64(text).filter(|id| *id != 0)
}

fn is_lower_hex(text: &str) -> bool {
    text.bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn parse_hex_u128(text: &str) -> Option<u128> {
    // from_str_radix accepts a leading '+', which no trace header allows.
    text.bytes()
        .all(|b| b.is_ascii_hexdigit())
        .then(|| u128::from_str_radix(text, 16).ok())?
}

fn parse_hex_u64(text: &str) -> Option<u64> {
    text.bytes()
        .all(|b| b.is_ascii_hexdigit())
        .then(|| u64::from_str_radix(text, 16).ok())?
}

/// The context a proxy hop sends upstream.
#[derive(Clone, Debug)]
pub struct Outgoing<'a> {
    pub trace_id: u128,
    pub span_id: u64,
    pub parent_span_id: Option<u64>,
    pub sampled: bool,
    pub tracestate: Option<&'a HeaderValue>,
    pub formats: Formats,
}

/// Replaces every trace header on `headers` with `context`.
pub fn inject(headers: &mut HeaderMap, context: &Outgoing<'_>) {
    for name in [
        TRACEPARENT,
        TRACESTATE,
        B3,
        B3_TRACE_ID,
        B3_SPAN_ID,
        B3_PARENT_SPAN_ID,
        B3_SAMPLED,
        B3_FLAGS,
    ] {
        headers.remove(name);
    }
    // One buffer holds every value; each header keeps a slice of it, so
    // a hop costs one allocation, not one per header.
    let mut text = BytesMut::with_capacity(TRACEPARENT_LEN + B3_SINGLE_LEN + 16);
    let sampled = if context.sampled { "1" } else { "0" };
    text.put_slice(b"00-");
    put_hex(&mut text, context.trace_id, 32);
    text.put_u8(b'-');
    put_hex(&mut text, u128::from(context.span_id), 16);
    text.put_slice(b"-0");
    text.put_slice(sampled.as_bytes());
    if context.formats.b3_single {
        text.extend_from_within(TRACE_ID_AT.start..SPAN_ID_AT.end);
        text.put_u8(b'-');
        text.put_slice(sampled.as_bytes());
    }
    let parent_at = text.len();
    if let Some(parent) = context.parent_span_id {
        put_hex(&mut text, u128::from(parent), 16);
    }
    let text = text.freeze();
    let mut put = |name: HeaderName, range: std::ops::Range<usize>| {
        if let Ok(value) = HeaderValue::from_maybe_shared(text.slice(range)) {
            headers.insert(name, value);
        }
    };
    if context.formats.w3c {
        put(TRACEPARENT, 0..TRACEPARENT_LEN);
    }
    if context.formats.b3_single {
        put(B3, TRACEPARENT_LEN..TRACEPARENT_LEN + B3_SINGLE_LEN);
    }
    if context.formats.b3_multi {
        put(B3_TRACE_ID, TRACE_ID_AT);
        put(B3_SPAN_ID, SPAN_ID_AT);
        if context.parent_span_id.is_some() {
            put(B3_PARENT_SPAN_ID, parent_at..parent_at + 16);
        }
        headers.insert(B3_SAMPLED, HeaderValue::from_static(sampled));
    }
    if context.formats.w3c
        && let Some(state) = context.tracestate
    {
        headers.insert(TRACESTATE, state.clone());
    }
}

/// `00-` trace id `-` span id `-0` flag.
const TRACEPARENT_LEN: usize = 3 + 32 + 1 + 16 + 2 + 1;
/// Where the ids sit in the traceparent value.
const TRACE_ID_AT: std::ops::Range<usize> = 3..35;
const SPAN_ID_AT: std::ops::Range<usize> = 36..52;
/// Trace id `-` span id `-` flag.
const B3_SINGLE_LEN: usize = 32 + 1 + 16 + 2;

/// Appends the low `digits` hex digits of `value`, lower case.
fn put_hex(text: &mut BytesMut, value: u128, digits: usize) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for shift in (0..digits).rev() {
        text.put_u8(HEX[(value >> (shift * 4)) as usize & 0xf]);
    }
}

#[cfg(test)]
#[path = "propagation_tests.rs"]
mod tests;
