//! Export off the request path: finished spans go into a bounded queue
//! (never waiting: a full queue drops the span and counts it), and one
//! task per connection manager config sends them in batches through the
//! collector's cluster, so that the cluster's endpoints and TLS apply.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use http::uri::PathAndQuery;
use http::{HeaderMap, HeaderValue, Method, header};
use http_body_util::BodyExt;
use prost::Message;
use tokio::sync::mpsc;

use super::encode::{LocalEndpoint, otlp_request, zipkin_json};
use super::{Collector, Span};
use crate::attempt::UpstreamHead;
use crate::body::full;
use crate::state::ProxyState;

/// Spans waiting for export; past this they are dropped.
pub const QUEUE_CAPACITY: usize = 4096;
/// Spans sent in one request at most.
const BATCH_SIZE: usize = 256;
/// How long a span waits for its batch to fill.
const FLUSH_INTERVAL: Duration = Duration::from_secs(1);
const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);
const OTLP_GRPC_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// Where one connection manager's spans go.
#[derive(Debug)]
pub struct SpanSink {
    pub collector: Collector,
    /// The OTLP `service_name`; empty: the workload's (`service.namespace`).
    service_name: String,
    queue: OnceLock<mpsc::Sender<Span>>,
    pub dropped: AtomicU64,
}

impl SpanSink {
    pub fn new(collector: Collector, service_name: String) -> SpanSink {
        SpanSink {
            collector,
            service_name,
            queue: OnceLock::new(),
            dropped: AtomicU64::new(0),
        }
    }

    /// Queues `span`; the exporter task starts with the first one.
    pub fn submit(&self, span: Span, state: &Arc<ProxyState>) {
        let queue = self.queue.get_or_init(|| {
            let (sender, receiver) = mpsc::channel(QUEUE_CAPACITY);
            let local = LocalEndpoint {
                service_name: if self.service_name.is_empty() {
                    default_service_name(state)
                } else {
                    self.service_name.clone()
                },
                ip: state.node.ip,
            };
            let exporter = Exporter {
                collector: self.collector.clone(),
                local,
                state: Arc::downgrade(state),
            };
            tokio::spawn(exporter.run(receiver));
            sender
        });
        if queue.try_send(span).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Istio's Zipkin service name: the canonical service and namespace.
fn default_service_name(state: &ProxyState) -> String {
    let me = &state.labels.me;
    format!("{}.{}", me.canonical_service, me.namespace)
}

struct Exporter {
    collector: Collector,
    local: LocalEndpoint,
    /// The exporter must not keep a stopped proxy alive.
    state: Weak<ProxyState>,
}

impl Exporter {
    async fn run(self, mut receiver: mpsc::Receiver<Span>) {
        let mut batch = Vec::with_capacity(BATCH_SIZE);
        loop {
            let Some(first) = receiver.recv().await else {
                return;
            };
            batch.push(first);
            let deadline = tokio::time::sleep(FLUSH_INTERVAL);
            tokio::pin!(deadline);
            while batch.len() < BATCH_SIZE {
                tokio::select! {
                    next = receiver.recv() => match next {
                        Some(span) => batch.push(span),
                        None => break,
                    },
                    () = &mut deadline => break,
                }
            }
            let Some(state) = self.state.upgrade() else {
                return;
            };
            let count = batch.len();
            if let Err(reason) = self.send(&batch, &state).await {
                tracing::debug!(
                    cluster = self.collector.cluster(),
                    reason,
                    count,
                    "span export failed"
                );
            }
            batch.clear();
        }
    }

    async fn send(&self, spans: &[Span], state: &ProxyState) -> Result<(), &'static str> {
        let (path, content_type, body) = match &self.collector {
            Collector::Zipkin { path, .. } => (
                path.as_str(),
                "application/json",
                Bytes::from(zipkin_json(spans, &self.local)),
            ),
            Collector::OtlpHttp { path, .. } => (
                path.as_str(),
                "application/x-protobuf",
                Bytes::from(otlp_request(spans, &self.local).encode_to_vec()),
            ),
            Collector::OtlpGrpc { .. } => (
                OTLP_GRPC_PATH,
                "application/grpc",
                grpc_frame(&otlp_request(spans, &self.local).encode_to_vec()),
            ),
        };
        let cluster = state
            .clusters
            .load()
            .get(self.collector.cluster())
            .cloned()
            .ok_or("collector cluster not found")?;
        let endpoint = cluster.pick().ok_or("collector cluster has no endpoint")?;
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        if let Ok(host) = HeaderValue::from_str(endpoint.authority.as_ref()) {
            headers.insert(header::HOST, host);
        }
        if matches!(self.collector, Collector::OtlpGrpc { .. }) {
            headers.insert(header::TE, HeaderValue::from_static("trailers"));
        }
        let head = UpstreamHead {
            method: Method::POST,
            path: PathAndQuery::try_from(path).map_err(|_| "invalid collector path")?,
            headers,
        };
        let http2 = cluster.spec.http2 || matches!(self.collector, Collector::OtlpGrpc { .. });
        let request = head.request(&endpoint, http2, None, full(body));
        let exchange = async {
            let response = cluster
                .client
                .request(request)
                .await
                .map_err(|_| "collector unreachable")?;
            let status = response.status();
            let (parts, body) = response.into_parts();
            let trailers = body
                .collect()
                .await
                .map_err(|_| "collector response cut")?
                .trailers()
                .cloned();
            if !status.is_success() {
                return Err("collector answered an error status");
            }
            let grpc_status = trailers
                .as_ref()
                .and_then(|t| t.get("grpc-status"))
                .or_else(|| parts.headers.get("grpc-status"));
            match grpc_status {
                Some(code) if code != "0" => Err("collector answered a gRPC error"),
                _ => Ok(()),
            }
        };
        tokio::time::timeout(EXPORT_TIMEOUT, exchange)
            .await
            .map_err(|_| "collector timed out")?
    }
}

/// A gRPC length-prefixed message, uncompressed.
fn grpc_frame(message: &[u8]) -> Bytes {
    let mut framed = BytesMut::with_capacity(message.len() + 5);
    framed.put_u8(0);
    framed.put_u32(u32::try_from(message.len()).unwrap_or(u32::MAX));
    framed.put_slice(message);
    framed.freeze()
}
