//! Why the proxy answered a request itself, and how: the status, response
//! flag, details and body Envoy would use for each failure.

use http::header::{self, HeaderValue};
use http::{Response, StatusCode};

use crate::body::{ProxyBody, full};
use crate::response_flags::Flag;

/// Why the proxy answered itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    NoRoute,
    NoCluster,
    NoHealthyUpstream,
    UpstreamUnreachable,
    /// The upstream reset or closed the stream before answering (UR).
    UpstreamReset,
    UpstreamTimeout,
    /// A circuit breaker refused the request (UO).
    UpstreamOverflow,
    BadRequest,
    DownstreamDisconnected,
    /// An RBAC filter (AuthorizationPolicy) denied the request.
    AccessDenied,
    /// HTTP/1 framing two parsers could read differently (smuggling): a
    /// transfer coding other than `chunked`, ...
    UnsupportedTransferEncoding,
    /// ... or more than one `Host`.
    DuplicateHost,
    /// A path that cannot be normalized safely (an encoded NUL, or an
    /// escaped slash where the connection manager refuses them).
    InvalidPath,
    /// A method that is not uppercase, which backends may read as another.
    InvalidMethod,
}

impl Failure {
    pub fn status(self) -> StatusCode {
        match self {
            Failure::NoRoute => StatusCode::NOT_FOUND,
            Failure::NoCluster
            | Failure::NoHealthyUpstream
            | Failure::UpstreamUnreachable
            | Failure::UpstreamReset
            | Failure::UpstreamOverflow => StatusCode::SERVICE_UNAVAILABLE,
            Failure::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
            Failure::BadRequest
            | Failure::DownstreamDisconnected
            | Failure::InvalidPath
            | Failure::InvalidMethod => StatusCode::BAD_REQUEST,
            Failure::AccessDenied => StatusCode::FORBIDDEN,
            Failure::DuplicateHost => StatusCode::BAD_REQUEST,
            Failure::UnsupportedTransferEncoding => StatusCode::NOT_IMPLEMENTED,
        }
    }

    pub fn flag(self) -> Flag {
        match self {
            Failure::NoRoute => Flag::NoRoute,
            Failure::NoCluster => Flag::NoCluster,
            Failure::NoHealthyUpstream => Flag::NoHealthyUpstream,
            Failure::UpstreamUnreachable => Flag::UpstreamUnreachable,
            Failure::UpstreamReset => Flag::UpstreamReset,
            Failure::UpstreamTimeout => Flag::UpstreamTimeout,
            Failure::UpstreamOverflow => Flag::UpstreamOverflow,
            Failure::BadRequest
            | Failure::UnsupportedTransferEncoding
            | Failure::DuplicateHost
            | Failure::InvalidPath
            | Failure::InvalidMethod => Flag::BadRequest,
            Failure::DownstreamDisconnected => Flag::DownstreamDisconnected,
            Failure::AccessDenied => Flag::RbacDenied,
        }
    }

    /// Envoy's `RESPONSE_CODE_DETAILS` for the failure.
    pub fn details(self) -> &'static str {
        match self {
            Failure::NoRoute => "route_not_found",
            Failure::NoCluster => "cluster_not_found",
            Failure::NoHealthyUpstream => "no_healthy_upstream",
            Failure::UpstreamUnreachable => {
                "upstream_reset_before_response_started{connection_failure}"
            }
            Failure::UpstreamReset => "upstream_reset_before_response_started{remote_reset}",
            Failure::UpstreamTimeout => "response_timeout",
            Failure::UpstreamOverflow => "upstream_reset_before_response_started{overflow}",
            Failure::BadRequest => "missing_host_header",
            Failure::DownstreamDisconnected => "downstream_remote_disconnect",
            Failure::AccessDenied => "rbac_access_denied_matched_policy[none]",
            Failure::UnsupportedTransferEncoding => "http1.invalid_transfer_encoding",
            Failure::DuplicateHost => "http1.duplicate_host",
            Failure::InvalidPath => "path_normalization_failed",
            Failure::InvalidMethod => "invalid_method",
        }
    }

    fn body(self) -> &'static str {
        match self {
            Failure::NoRoute => "no route\n",
            Failure::NoCluster => "no cluster\n",
            Failure::NoHealthyUpstream => "no healthy upstream\n",
            Failure::UpstreamUnreachable => "upstream connect error\n",
            Failure::UpstreamReset => "upstream reset before response started\n",
            Failure::UpstreamTimeout => "upstream request timeout\n",
            // Envoy's body, which Istio's circuit-breaking task shows.
            Failure::UpstreamOverflow => {
                "upstream connect error or disconnect/reset before headers. reset reason: overflow"
            }
            Failure::BadRequest => "bad request: missing authority\n",
            Failure::DownstreamDisconnected => "downstream disconnected\n",
            // Envoy's body, which clients and Istio's docs look for.
            Failure::AccessDenied => "RBAC: access denied",
            Failure::UnsupportedTransferEncoding => "transfer coding not implemented\n",
            Failure::DuplicateHost => "bad request: more than one host\n",
            Failure::InvalidPath => "bad request: invalid path\n",
            Failure::InvalidMethod => "bad request: method not in uppercase\n",
        }
    }

    fn ends_connection(self) -> bool {
        matches!(
            self,
            Failure::UnsupportedTransferEncoding | Failure::DuplicateHost
        )
    }

    pub fn response(self) -> Response<ProxyBody> {
        let mut response = Response::new(full(self.body()));
        *response.status_mut() = self.status();
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        if self.ends_connection() {
            // What follows on the connection cannot be trusted to be framed.
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}
