//! One proxy hop's span: the tags known at the request's head, those known
//! at its end, and a response body that ends the span with the last byte.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::SystemTime;

use bytes::Bytes;
use http::{HeaderMap, Response, header};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;

use super::{ActiveSpan, SpanKind};
use crate::body::ProxyBody;
use crate::state::ProxyState;

/// What the connection manager knows when a request arrives.
pub struct HopStart<'a> {
    pub kind: SpanKind,
    pub method: &'a str,
    pub scheme: &'a str,
    pub authority: &'a str,
    pub path: &'a str,
    pub protocol: &'static str,
    pub peer: SocketAddr,
    pub state: &'a ProxyState,
}

impl HopStart<'_> {
    /// As Istio's route decorator: `host:port/*`.
    pub fn operation_name(&self) -> String {
        format!("{}/*", self.authority)
    }

    /// Envoy's and Istio's tags (source/common/tracing/http_tracer_impl.cc
    /// and Istio's bootstrap custom tags).
    pub fn tags(&self, headers: &HeaderMap) -> Vec<(&'static str, String)> {
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-")
                .to_string()
        };
        let me = &self.state.labels.me;
        let mut tags = vec![
            ("component", "proxy".to_string()),
            ("node_id", self.state.node.node_id()),
            ("zone", self.state.node.locality.clone()),
            ("guid:x-request-id", header("x-request-id")),
            ("http.method", self.method.to_string()),
            (
                "http.url",
                format!("{}://{}{}", self.scheme, self.authority, self.path),
            ),
            ("http.protocol", self.protocol.to_string()),
            (
                "downstream_cluster",
                header("x-envoy-downstream-service-cluster"),
            ),
            ("user_agent", header(header::USER_AGENT.as_str())),
            ("peer.address", self.peer.ip().to_string()),
            ("istio.canonical_service", me.canonical_service.clone()),
            ("istio.canonical_revision", me.canonical_revision.clone()),
            ("istio.namespace", me.namespace.clone()),
        ];
        tags.retain(|(_, value)| !value.is_empty());
        tags
    }
}

/// What is known when the response is ready.
pub struct HopEnd {
    pub status: u16,
    pub response_flags: &'static str,
    pub upstream_cluster: Option<String>,
    pub request_size: u64,
}

/// `response` whose body ends `span` once it is sent or dropped.
pub fn traced(
    span: ActiveSpan,
    end: HopEnd,
    response: Response<ProxyBody>,
    state: Arc<ProxyState>,
) -> Response<ProxyBody> {
    response.map(|body| {
        TracedBody {
            body,
            hop: Some((span, end, state)),
            response_size: 0,
        }
        .boxed()
    })
}

struct TracedBody {
    body: ProxyBody,
    hop: Option<(ActiveSpan, HopEnd, Arc<ProxyState>)>,
    response_size: u64,
}

impl TracedBody {
    fn finish(&mut self, cut_short: bool) {
        let Some((active, end, state)) = self.hop.take() else {
            return;
        };
        let mut span = active.span;
        span.duration = SystemTime::now()
            .duration_since(span.start)
            .unwrap_or_default();
        // A client that left mid-response: Envoy's DC flag.
        let flags = if cut_short && end.response_flags == "-" {
            "DC"
        } else {
            end.response_flags
        };
        let cluster = end.upstream_cluster.unwrap_or_else(|| "-".to_string());
        span.error = end.status >= 500 || cut_short;
        span.tags.extend([
            ("http.status_code", end.status.to_string()),
            ("response_flags", flags.to_string()),
            ("request_size", end.request_size.to_string()),
            ("response_size", self.response_size.to_string()),
            ("upstream_cluster", cluster.clone()),
            ("upstream_cluster.name", cluster),
        ]);
        if span.error {
            span.tags.push(("error", "true".to_string()));
        }
        active.sink.submit(span, &state);
    }
}

impl Drop for TracedBody {
    fn drop(&mut self) {
        self.finish(true);
    }
}

impl Body for TracedBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.body).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.response_size += data.len() as u64;
                }
            }
            Poll::Ready(None) => this.finish(false),
            Poll::Ready(Some(Err(_))) => this.finish(true),
            Poll::Pending => {}
        }
        if this.body.is_end_stream() {
            this.finish(false);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
