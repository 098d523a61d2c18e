//! Requests the proxy makes on its own behalf to a cluster it knows (a
//! trace collector, an external authorizer): one request to one of the
//! cluster's endpoints, its response read whole within a deadline, and
//! gRPC's length-prefixed framing for unary calls.

use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderValue};
use http::uri::PathAndQuery;
use http::{Method, StatusCode};
use http_body_util::BodyExt;

use crate::attempt::UpstreamHead;
use crate::body::full;
use crate::state::ProxyState;

/// A side call, before it is sent.
pub struct SideCall<'a> {
    pub cluster: &'a str,
    pub method: Method,
    pub path: PathAndQuery,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// gRPC: HTTP/2 whatever the cluster's protocol options say.
    pub grpc: bool,
    pub timeout: Duration,
}

/// What came back.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub trailers: Option<HeaderMap>,
}

impl Answer {
    /// The gRPC status code (trailers, or headers for a trailers-only answer).
    pub fn grpc_status(&self) -> Option<&str> {
        self.trailers
            .as_ref()
            .and_then(|t| t.get("grpc-status"))
            .or_else(|| self.headers.get("grpc-status"))
            .and_then(|v| v.to_str().ok())
    }

    /// The first message of a gRPC response body.
    pub fn grpc_message(&self) -> Option<&[u8]> {
        let [0, a, b, c, d, rest @ ..] = &self.body[..] else {
            return None; // too short, or compressed
        };
        let length = u32::from_be_bytes([*a, *b, *c, *d]) as usize;
        rest.get(..length)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SideCallError {
    #[error("cluster not found")]
    NoCluster,
    #[error("cluster has no endpoint")]
    NoEndpoint,
    #[error("unreachable")]
    Unreachable,
    #[error("response cut short")]
    Cut,
    #[error("timed out")]
    Timeout,
}

pub async fn send(call: SideCall<'_>, state: &Arc<ProxyState>) -> Result<Answer, SideCallError> {
    let cluster = state
        .clusters
        .load()
        .get(call.cluster)
        .cloned()
        .ok_or(SideCallError::NoCluster)?;
    let endpoint = cluster.pick().ok_or(SideCallError::NoEndpoint)?;
    let mut headers = call.headers;
    if !headers.contains_key(header::HOST)
        && let Ok(host) = HeaderValue::from_str(endpoint.authority.as_ref())
    {
        headers.insert(header::HOST, host);
    }
    if call.grpc {
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
    }
    let head = UpstreamHead {
        method: call.method,
        path: call.path,
        headers,
    };
    let http2 = cluster.spec.http2 || call.grpc;
    let request = head.request(&endpoint, http2, None, full(call.body));
    let exchange = async {
        let response = cluster
            .client
            .request(request)
            .await
            .map_err(|_| SideCallError::Unreachable)?;
        let (parts, body) = response.into_parts();
        let collected = body.collect().await.map_err(|_| SideCallError::Cut)?;
        let trailers = collected.trailers().cloned();
        Ok(Answer {
            status: parts.status,
            headers: parts.headers,
            body: collected.to_bytes(),
            trailers,
        })
    };
    tokio::time::timeout(call.timeout, exchange)
        .await
        .map_err(|_| SideCallError::Timeout)?
}

/// A gRPC length-prefixed message, uncompressed.
pub fn grpc_frame(message: &[u8]) -> Bytes {
    let mut framed = BytesMut::with_capacity(message.len() + 5);
    framed.put_u8(0);
    framed.put_u32(u32::try_from(message.len()).unwrap_or(u32::MAX));
    framed.put_slice(message);
    framed.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_messages_are_framed_and_read_back() {
        let answer = Answer {
            status: StatusCode::OK,
            headers: HeaderMap::new(),
            body: grpc_frame(b"hello"),
            trailers: None,
        };
        assert_eq!(answer.grpc_message(), Some(&b"hello"[..]));
        let cut = Answer {
            body: Bytes::from_static(&[0, 0, 0, 0, 9, 1]),
            ..answer
        };
        assert_eq!(cut.grpc_message(), None);
    }
}
