//! Span encodings: Zipkin JSON v2 and OTLP protobuf
//! (`ExportTraceServiceRequest`).

use std::net::IpAddr;
use std::time::{Duration, UNIX_EPOCH};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{self as otlp, ResourceSpans, ScopeSpans, status};
use serde_json::{Map, Value, json};

use super::{Span, SpanKind};

/// Who reports the spans.
#[derive(Clone, Debug)]
pub struct LocalEndpoint {
    pub service_name: String,
    pub ip: IpAddr,
}

fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}

/// A Zipkin v2 span list, as `/api/v2/spans` takes it.
pub fn zipkin_json(spans: &[Span], local: &LocalEndpoint) -> Vec<u8> {
    let mut endpoint = Map::new();
    endpoint.insert("serviceName".into(), json!(local.service_name));
    let ip_key = if local.ip.is_ipv4() { "ipv4" } else { "ipv6" };
    endpoint.insert(ip_key.into(), json!(local.ip.to_string()));
    let list: Vec<Value> = spans
        .iter()
        .map(|span| {
            let tags: Map<String, Value> = all_tags(span)
                .map(|(k, v)| (k.to_string(), json!(v)))
                .collect();
            let mut out = json!({
                "traceId": format!("{:032x}", span.trace_id),
                "id": format!("{:016x}", span.span_id),
                "kind": match span.kind { SpanKind::Server => "SERVER", SpanKind::Client => "CLIENT" },
                "name": span.name,
                "timestamp": micros(span.start.duration_since(UNIX_EPOCH).unwrap_or_default()),
                "duration": micros(span.duration).max(1),
                "localEndpoint": Value::Object(endpoint.clone()),
                "tags": tags,
            });
            if let Some(parent) = span.parent_span_id {
                out["parentId"] = json!(format!("{parent:016x}"));
            }
            out
        })
        .collect();
    serde_json::to_vec(&list).unwrap_or_default()
}

fn all_tags(span: &Span) -> impl Iterator<Item = (&str, &str)> {
    span.tags.iter().map(|(k, v)| (*k, v.as_str())).chain(
        span.custom_tags
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str())),
    )
}

fn string_attribute(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.to_string())),
        }),
        ..Default::default()
    }
}

/// An OTLP export request holding `spans`, the service named in its resource.
pub fn otlp_request(spans: &[Span], local: &LocalEndpoint) -> ExportTraceServiceRequest {
    let spans = spans
        .iter()
        .map(|span| {
            let start = span.start.duration_since(UNIX_EPOCH).unwrap_or_default();
            let nanos = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
            otlp::Span {
                trace_id: span.trace_id.to_be_bytes().to_vec(),
                span_id: span.span_id.to_be_bytes().to_vec(),
                parent_span_id: span
                    .parent_span_id
                    .map(|p| p.to_be_bytes().to_vec())
                    .unwrap_or_default(),
                name: span.name.clone(),
                kind: match span.kind {
                    SpanKind::Server => otlp::span::SpanKind::Server,
                    SpanKind::Client => otlp::span::SpanKind::Client,
                } as i32,
                start_time_unix_nano: nanos(start),
                end_time_unix_nano: nanos(start + span.duration),
                attributes: all_tags(span)
                    .map(|(k, v)| string_attribute(k, v))
                    .collect(),
                status: span.error.then(|| otlp::Status {
                    code: status::StatusCode::Error as i32,
                    message: String::new(),
                }),
                ..Default::default()
            }
        })
        .collect();
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![string_attribute("service.name", &local.service_name)],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "trellis-proxy".to_string(),
                    version: env!("CARGO_PKG_VERSION").to_string(),
                    ..Default::default()
                }),
                spans,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}
