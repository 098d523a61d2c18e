//! A trace collector on loopback for tests: Zipkin JSON v2
//! (`POST /api/v2/spans`) and OTLP over HTTP/protobuf (`POST /v1/traces`)
//! on one port, and OTLP over gRPC (`TraceService/Export`) on another. It
//! keeps every span it receives, decoded with the OTLP protobuf schema.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use prost::Message;

/// How a span reached the collector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Received {
    Zipkin,
    OtlpHttp,
    OtlpGrpc,
}

/// One span, whatever its encoding; ids in lowercase hex.
#[derive(Clone, Debug)]
pub struct CollectedSpan {
    pub via: Received,
    pub trace_id: String,
    pub span_id: String,
    pub parent_id: Option<String>,
    /// `SERVER` or `CLIENT`.
    pub kind: String,
    pub name: String,
    pub service: String,
    pub tags: BTreeMap<String, String>,
}

type Spans = Arc<Mutex<Vec<CollectedSpan>>>;

pub struct TraceCollector {
    /// Zipkin and OTLP/HTTP.
    pub http_address: SocketAddr,
    pub grpc_address: SocketAddr,
    spans: Spans,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for TraceCollector {
    fn drop(&mut self) {
        self.tasks.iter().for_each(tokio::task::JoinHandle::abort);
    }
}

impl TraceCollector {
    pub async fn start() -> TraceCollector {
        let spans = Spans::default();
        let app = axum::Router::new()
            .route("/api/v2/spans", post(zipkin))
            .route("/v1/traces", post(otlp_http))
            .with_state(spans.clone());
        let http = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let http_address = http.local_addr().unwrap();
        let grpc = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let grpc_address = grpc.local_addr().unwrap();
        let receiver = TraceServiceServer::new(GrpcReceiver(spans.clone()));
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(grpc);
        let tasks = vec![
            tokio::spawn(async move {
                let _ = axum::serve(http, app).await;
            }),
            tokio::spawn(async move {
                let _ = tonic::transport::Server::builder()
                    .add_service(receiver)
                    .serve_with_incoming(incoming)
                    .await;
            }),
        ];
        TraceCollector {
            http_address,
            grpc_address,
            spans,
            tasks,
        }
    }

    pub fn spans(&self) -> Vec<CollectedSpan> {
        self.spans.lock().unwrap().clone()
    }

    /// The spans once `done` says they are all there, or what came by
    /// `timeout`.
    pub async fn wait_for(
        &self,
        timeout: Duration,
        done: impl Fn(&[CollectedSpan]) -> bool,
    ) -> Vec<CollectedSpan> {
        let deadline = Instant::now() + timeout;
        loop {
            let spans = self.spans();
            if done(&spans) || Instant::now() > deadline {
                return spans;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn zipkin(State(spans): State<Spans>, body: Bytes) -> StatusCode {
    let Ok(serde_json::Value::Array(list)) = serde_json::from_slice(&body) else {
        return StatusCode::BAD_REQUEST;
    };
    let text = |value: &serde_json::Value| value.as_str().unwrap_or_default().to_string();
    let collected = list.iter().map(|span| CollectedSpan {
        via: Received::Zipkin,
        trace_id: text(&span["traceId"]),
        span_id: text(&span["id"]),
        parent_id: span["parentId"].as_str().map(str::to_string),
        kind: text(&span["kind"]),
        name: text(&span["name"]),
        service: text(&span["localEndpoint"]["serviceName"]),
        tags: span["tags"]
            .as_object()
            .map(|tags| tags.iter().map(|(k, v)| (k.clone(), text(v))).collect())
            .unwrap_or_default(),
    });
    spans.lock().unwrap().extend(collected);
    StatusCode::ACCEPTED
}

async fn otlp_http(State(spans): State<Spans>, body: Bytes) -> StatusCode {
    match ExportTraceServiceRequest::decode(body) {
        Ok(request) => {
            spans
                .lock()
                .unwrap()
                .extend(from_otlp(&request, Received::OtlpHttp));
            StatusCode::OK
        }
        Err(_) => StatusCode::BAD_REQUEST,
    }
}

struct GrpcReceiver(Spans);

#[tonic::async_trait]
impl TraceService for GrpcReceiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let spans = from_otlp(request.get_ref(), Received::OtlpGrpc);
        self.0.lock().unwrap().extend(spans);
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn string_value(value: Option<&opentelemetry_proto::tonic::common::v1::AnyValue>) -> String {
    match value.and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(text)) => text.clone(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

fn from_otlp(request: &ExportTraceServiceRequest, via: Received) -> Vec<CollectedSpan> {
    let mut collected = Vec::new();
    for resource in &request.resource_spans {
        let service = resource
            .resource
            .iter()
            .flat_map(|r| &r.attributes)
            .find(|kv| kv.key == "service.name")
            .map(|kv| string_value(kv.value.as_ref()))
            .unwrap_or_default();
        for span in resource.scope_spans.iter().flat_map(|s| &s.spans) {
            let kind = match SpanKind::try_from(span.kind) {
                Ok(SpanKind::Server) => "SERVER",
                Ok(SpanKind::Client) => "CLIENT",
                _ => "OTHER",
            };
            collected.push(CollectedSpan {
                via,
                trace_id: hex(&span.trace_id),
                span_id: hex(&span.span_id),
                parent_id: (!span.parent_span_id.is_empty()).then(|| hex(&span.parent_span_id)),
                kind: kind.to_string(),
                name: span.name.clone(),
                service: service.clone(),
                tags: span
                    .attributes
                    .iter()
                    .map(|kv| (kv.key.clone(), string_value(kv.value.as_ref())))
                    .collect(),
            });
        }
    }
    collected
}
