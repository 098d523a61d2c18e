//! Envoy's http_inspector: tells plaintext HTTP from anything else by the
//! first bytes a client sends, so a listener can pick an HTTP chain for
//! ports whose protocol nobody declared. HTTP/2 is its connection preface;
//! HTTP/1.x a request line (`METHOD SP target SP HTTP/1.x`). The result is
//! the application protocol filter chains match (`h2c`, `http/1.1`,
//! `http/1.0`). Never panics, whatever the bytes.

/// What the bytes seen so far are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Detected {
    /// Plaintext HTTP, by its application protocol name.
    Http(&'static str),
    NotHttp,
    /// Consistent with HTTP so far: more bytes will tell.
    NeedMore,
}

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// Longer than any method Envoy's parser knows.
const MAX_METHOD: usize = 24;
/// Envoy inspects at most this much; a longer request line is not sniffed.
pub const MAX_INSPECTED: usize = 8 * 1024;

pub fn detect(bytes: &[u8]) -> Detected {
    let compared = bytes.len().min(H2_PREFACE.len());
    if bytes[..compared] == H2_PREFACE[..compared] {
        return if compared == H2_PREFACE.len() {
            Detected::Http("h2c")
        } else {
            Detected::NeedMore
        };
    }
    match request_line(bytes) {
        Detected::NeedMore if bytes.len() >= MAX_INSPECTED => Detected::NotHttp,
        detected => detected,
    }
}

/// An HTTP/1.x request line, parsed as far as the bytes go.
fn request_line(bytes: &[u8]) -> Detected {
    let mut rest = bytes;
    let method_len = rest.iter().take_while(|&&b| is_token(b)).count();
    if method_len > MAX_METHOD {
        return Detected::NotHttp;
    }
    rest = &rest[method_len..];
    match rest.first() {
        None => return Detected::NeedMore,
        Some(b' ') if method_len > 0 => rest = &rest[1..],
        Some(_) => return Detected::NotHttp,
    }
    let target_len = rest.iter().take_while(|&&b| b.is_ascii_graphic()).count();
    rest = &rest[target_len..];
    match rest.first() {
        None => return Detected::NeedMore,
        Some(b' ') if target_len > 0 => rest = &rest[1..],
        Some(_) => return Detected::NotHttp,
    }
    version(rest)
}

/// `HTTP/1.0` or `HTTP/1.1`, then the line's end.
fn version(rest: &[u8]) -> Detected {
    const PREFIX: &[u8] = b"HTTP/1.";
    let compared = rest.len().min(PREFIX.len());
    if rest[..compared] != PREFIX[..compared] {
        return Detected::NotHttp;
    }
    let protocol = match rest.get(PREFIX.len()) {
        None => return Detected::NeedMore,
        Some(b'0') => "http/1.0",
        Some(b'1') => "http/1.1",
        Some(_) => return Detected::NotHttp,
    };
    match &rest[PREFIX.len() + 1..] {
        [] | [b'\r'] => Detected::NeedMore,
        [b'\n', ..] | [b'\r', b'\n', ..] => Detected::Http(protocol),
        _ => Detected::NotHttp,
    }
}

/// RFC 9110's `tchar`.
fn is_token(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tells_http_versions_from_other_protocols() {
        let cases: [(&[u8], Detected); 14] = [
            (
                b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
                Detected::Http("http/1.1"),
            ),
            (b"POST /x?y=1 HTTP/1.0\r\n", Detected::Http("http/1.0")),
            (b"GET / HTTP/1.1\n", Detected::Http("http/1.1")),
            (H2_PREFACE, Detected::Http("h2c")),
            (b"", Detected::NeedMore),
            (b"GE", Detected::NeedMore),
            (b"GET /index", Detected::NeedMore),
            (b"GET / HTTP/1.1\r", Detected::NeedMore),
            (b"PRI * HTTP/2", Detected::NeedMore),
            (b"\x16\x03\x01\x02\x00", Detected::NotHttp),
            (b"SSH-2.0-OpenSSH_9.6\r\n", Detected::NotHttp),
            (b"GET / HTTP/2.0\r\n", Detected::NotHttp),
            (b" / HTTP/1.1\r\n", Detected::NotHttp),
            (b"GET  HTTP/1.1\r\n", Detected::NotHttp),
        ];
        for (bytes, expected) in cases {
            assert_eq!(
                detect(bytes),
                expected,
                "{:?}",
                String::from_utf8_lossy(bytes)
            );
        }
    }

    #[test]
    fn gives_up_on_a_request_line_longer_than_it_inspects() {
        let mut long = b"GET /".to_vec();
        long.resize(MAX_INSPECTED, b'a');
        assert_eq!(detect(&long), Detected::NotHttp);
        assert_eq!(detect(&long[..MAX_INSPECTED - 1]), Detected::NeedMore);
        let method = [b'A'; MAX_METHOD + 1];
        assert_eq!(detect(&method), Detected::NotHttp);
    }
}
