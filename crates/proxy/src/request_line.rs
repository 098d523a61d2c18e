//! What a request line must be before anything reads it (the access log,
//! tracing, JWT, RBAC, routing): its method uppercase, as Envoy's codecs
//! insist, and its path rewritten as the connection manager's path
//! normalization says (see [`crate::path_normalization`]).

use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode, Uri};

use crate::body::{ProxyBody, full};
use crate::failure::Failure;
use crate::path_normalization::{Outcome, PathNormalization};

/// Why a request is answered before it goes further.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    Failed(Failure),
    /// Sent to the normalized path instead (`UNESCAPE_AND_REDIRECT`).
    Redirect(String),
}

impl Refusal {
    pub fn response(self) -> Result<Response<ProxyBody>, Failure> {
        match self {
            Refusal::Failed(failure) => Err(failure),
            Refusal::Redirect(location) => {
                let mut response = Response::new(full(""));
                *response.status_mut() = StatusCode::TEMPORARY_REDIRECT;
                let location = HeaderValue::try_from(location).map_err(|_| Failure::InvalidPath)?;
                response.headers_mut().insert(header::LOCATION, location);
                Ok(response)
            }
        }
    }
}

/// Checks `request`'s line and normalizes its path in place.
pub fn screen<B>(request: &mut Request<B>, paths: &PathNormalization) -> Result<(), Refusal> {
    let method = request.method().as_str();
    if method.bytes().any(|b| b.is_ascii_lowercase()) {
        return Err(Refusal::Failed(Failure::InvalidMethod));
    }
    match paths.apply(request.uri()) {
        Outcome::Unchanged => Ok(()),
        Outcome::Refused => Err(Refusal::Failed(Failure::InvalidPath)),
        Outcome::Redirect(location) => Err(Refusal::Redirect(location)),
        Outcome::Rewritten(path_and_query) => {
            let mut parts = request.uri().clone().into_parts();
            parts.path_and_query = Some(path_and_query);
            *request.uri_mut() =
                Uri::from_parts(parts).map_err(|_| Refusal::Failed(Failure::InvalidPath))?;
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::path_normalization::EscapedSlashes;

    fn request(method: &str, uri: &str) -> Request<()> {
        Request::builder().method(method).uri(uri).body(()).unwrap()
    }

    #[test]
    fn lowercase_methods_are_refused() {
        let paths = PathNormalization::default();
        assert_eq!(
            screen(&mut request("get", "/"), &paths),
            Err(Refusal::Failed(Failure::InvalidMethod))
        );
        assert_eq!(screen(&mut request("PURGE", "/"), &paths), Ok(()));
    }

    #[test]
    fn the_normalized_path_replaces_the_request_path() {
        let paths = PathNormalization {
            rfc3986: true,
            merge_slashes: true,
            escaped_slashes: EscapedSlashes::UnescapeAndForward,
        };
        let mut absolute = request("GET", "http://reviews:9080/a/..//%2Fadmin?x=%2F");
        assert_eq!(screen(&mut absolute, &paths), Ok(()));
        assert_eq!(
            absolute.uri().to_string(),
            "http://reviews:9080/admin?x=%2F"
        );
        let mut nul = request("GET", "/admin%00");
        assert_eq!(
            screen(&mut nul, &paths),
            Err(Refusal::Failed(Failure::InvalidPath))
        );
    }
}
