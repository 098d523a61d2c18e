//! Requests whose framing two HTTP/1.1 parsers could read differently are
//! refused before they are forwarded (request smuggling): a transfer coding
//! other than `chunked` (even with `chunked` last), and more than one
//! `Host`. hyper already refuses obs-fold, bare CR, conflicting
//! `Content-Length`s and malformed lengths, and reads a body framed by both
//! `Content-Length` and `Transfer-Encoding` as chunked (dropping the length)
//! and then closes the connection, as RFC 9112 asks.

use http::header::{HOST, TRANSFER_ENCODING};
use http::{HeaderMap, Version};

use crate::failure::Failure;

/// Why `headers` may not be forwarded, if they may not.
pub fn refusal(version: Version, headers: &HeaderMap) -> Option<Failure> {
    if version != Version::HTTP_11 && version != Version::HTTP_10 {
        return None; // HTTP/2 frames bodies itself; h2 refuses these headers.
    }
    if headers.get_all(HOST).iter().count() > 1 {
        return Some(Failure::DuplicateHost);
    }
    let only_chunked = headers
        .get_all(TRANSFER_ENCODING)
        .iter()
        .flat_map(|value| value.as_bytes().split(|b| *b == b','))
        .map(|coding| coding.trim_ascii())
        .filter(|coding| !coding.is_empty())
        .all(|coding| coding.eq_ignore_ascii_case(b"chunked"));
    (!only_chunked).then_some(Failure::UnsupportedTransferEncoding)
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn ambiguous_framing_is_refused() {
        let v11 = Version::HTTP_11;
        let refuse = |pairs| refusal(v11, &headers(pairs));
        assert_eq!(refuse(&[("host", "a")]), None);
        assert_eq!(refuse(&[("transfer-encoding", "chunked")]), None);
        assert_eq!(refuse(&[("transfer-encoding", "Chunked ")]), None);
        assert_eq!(
            refuse(&[("transfer-encoding", "gzip, chunked")]),
            Some(Failure::UnsupportedTransferEncoding)
        );
        assert_eq!(
            refuse(&[("transfer-encoding", "chunked"), ("transfer-encoding", "x")]),
            Some(Failure::UnsupportedTransferEncoding)
        );
        assert_eq!(
            refuse(&[("host", "a"), ("host", "b")]),
            Some(Failure::DuplicateHost)
        );
        let h2 = headers(&[("host", "a"), ("host", "b")]);
        assert_eq!(refusal(Version::HTTP_2, &h2), None);
    }
}
