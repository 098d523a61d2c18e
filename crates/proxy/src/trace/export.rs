//! Export off the request path: finished spans go into a bounded queue
//! (never waiting: a full queue drops the span and counts it), and one
//! task per connection manager config sends them in batches through the
//! collector's cluster, so that the cluster's endpoints and TLS apply.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use bytes::Bytes;
use http::uri::PathAndQuery;
use http::{HeaderMap, HeaderValue, Method, header};
use prost::Message;
use tokio::sync::mpsc;

use super::encode::{LocalEndpoint, otlp_request, zipkin_json};
use super::{Collector, Span};
use crate::side_call::{self, SideCall, SideCallError, grpc_frame};
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

    async fn send(&self, spans: &[Span], state: &Arc<ProxyState>) -> Result<(), &'static str> {
        let grpc = matches!(self.collector, Collector::OtlpGrpc { .. });
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
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        let call = SideCall {
            cluster: self.collector.cluster(),
            method: Method::POST,
            path: PathAndQuery::try_from(path).map_err(|_| "invalid collector path")?,
            headers,
            body,
            grpc,
            timeout: EXPORT_TIMEOUT,
        };
        let answer = side_call::send(call, state)
            .await
            .map_err(|error| match error {
                SideCallError::NoCluster => "collector cluster not found",
                SideCallError::NoEndpoint => "collector cluster has no endpoint",
                SideCallError::Unreachable => "collector unreachable",
                SideCallError::Cut => "collector response cut",
                SideCallError::Timeout => "collector timed out",
            })?;
        if !answer.status.is_success() {
            return Err("collector answered an error status");
        }
        match answer.grpc_status() {
            Some(code) if code != "0" => Err("collector answered a gRPC error"),
            _ => Ok(()),
        }
    }
}
