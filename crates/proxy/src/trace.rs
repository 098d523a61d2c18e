//! Distributed tracing (`HttpConnectionManager.tracing`): a span per proxy
//! hop, a server span on inbound and a client span on outbound, with
//! Envoy's and Istio's tag names, propagated in W3C and B3 headers (see
//! [`propagation`]) and exported off the request path (see [`export`]) to
//! Zipkin (JSON v2) or OpenTelemetry (OTLP over HTTP/protobuf or gRPC).
//!
//! Sampling: a decision that came with the request is honoured; otherwise
//! the request is sampled at `random_sampling` percent (Envoy's default,
//! 100%, when unset). Unsampled requests still carry a context (with the
//! sampled flag off) so that the next hop agrees.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use envoy_types::pb::envoy::config::trace::v3::{OpenTelemetryConfig, ZipkinConfig};
use envoy_types::pb::envoy::config::trace::v3::zipkin_config::CollectorEndpointVersion;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_connection_manager::Tracing;
use envoy_types::pb::envoy::r#type::tracing::v3::custom_tag;
use envoy_types::pb::envoy::r#type::v3::Percent;
use http::{HeaderMap, HeaderName};
use prost::{Message, Name};

use crate::unsupported::{Unsupported, reject_if};

pub mod encode;
pub mod export;
mod hop;
pub mod propagation;

pub use hop::{HopEnd, HopStart, traced};

pub use export::SpanSink;

const ZIPKIN: &str = "envoy.tracers.zipkin";
const OPENTELEMETRY: &str = "envoy.tracers.opentelemetry";
const DEFAULT_OTLP_HTTP_PATH: &str = "/v1/traces";

/// Where spans go and in which encoding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Collector {
    /// Zipkin JSON v2, POSTed to `path` (`/api/v2/spans`).
    Zipkin {
        cluster: String,
        path: String,
    },
    OtlpHttp {
        cluster: String,
        path: String,
    },
    OtlpGrpc {
        cluster: String,
    },
}

impl Collector {
    pub fn cluster(&self) -> &str {
        match self {
            Collector::Zipkin { cluster, .. }
            | Collector::OtlpHttp { cluster, .. }
            | Collector::OtlpGrpc { cluster } => cluster,
        }
    }
}

/// A tag from `custom_tags`: a fixed value is resolved once, a request
/// header per request.
#[derive(Debug)]
enum CustomTag {
    Fixed {
        tag: String,
        value: String,
    },
    Header {
        tag: String,
        header: HeaderName,
        default: String,
    },
}

/// The compiled `tracing` of one connection manager.
#[derive(Debug)]
pub struct TracingSpec {
    /// Percent of requests without a decision that are sampled.
    sampling_percent: f64,
    custom_tags: Vec<CustomTag>,
    pub sink: Arc<SpanSink>,
}

impl TracingSpec {
    pub fn compile(tracing: &Tracing) -> Result<TracingSpec, Unsupported> {
        // Istio sets both to Envoy's default, 100%: only that is honoured.
        let below_all = |p: &Option<Percent>| p.as_ref().is_some_and(|p| p.value != 100.0);
        reject_if(
            below_all(&tracing.client_sampling),
            "tracing.client_sampling below 100",
        )?;
        reject_if(
            below_all(&tracing.overall_sampling),
            "tracing.overall_sampling below 100",
        )?;
        reject_if(tracing.verbose, "tracing.verbose")?;
        let sampling_percent = match &tracing.random_sampling {
            Some(percent) if (0.0..=100.0).contains(&percent.value) => percent.value,
            Some(_) => return Err(Unsupported("tracing.random_sampling outside 0..=100")),
            None => 100.0,
        };
        let custom_tags = tracing
            .custom_tags
            .iter()
            .map(compile_tag)
            .collect::<Result<Vec<_>, _>>()?;
        let provider = tracing
            .provider
            .as_ref()
            .ok_or(Unsupported("tracing without a provider"))?;
        let (collector, service_name) = compile_provider(provider)?;
        Ok(TracingSpec {
            sampling_percent,
            custom_tags,
            sink: Arc::new(SpanSink::new(collector, service_name)),
        })
    }

    /// Samples a request that came without a decision.
    fn roll(&self) -> bool {
        self.sampling_percent >= 100.0
            || (self.sampling_percent > 0.0
                && rand::random_range(0.0..100.0) < self.sampling_percent)
    }
}

fn compile_tag(
    tag: &envoy_types::pb::envoy::r#type::tracing::v3::CustomTag,
) -> Result<CustomTag, Unsupported> {
    reject_if(tag.tag.is_empty(), "custom tag without a name")?;
    let name = tag.tag.clone();
    match &tag.r#type {
        Some(custom_tag::Type::Literal(literal)) => Ok(CustomTag::Fixed {
            tag: name,
            value: literal.value.clone(),
        }),
        Some(custom_tag::Type::Environment(env)) => Ok(CustomTag::Fixed {
            tag: name,
            value: std::env::var(&env.name).unwrap_or_else(|_| env.default_value.clone()),
        }),
        Some(custom_tag::Type::RequestHeader(header)) => Ok(CustomTag::Header {
            tag: name,
            header: HeaderName::from_bytes(header.name.as_bytes())
                .map_err(|_| Unsupported("custom tag with an invalid header name"))?,
            default: header.default_value.clone(),
        }),
        Some(_) => Err(Unsupported(
            "custom tag other than literal, environment or request_header",
        )),
        None => Err(Unsupported("custom tag without a type")),
    }
}

fn compile_provider(
    provider: &envoy_types::pb::envoy::config::trace::v3::tracing::Http,
) -> Result<(Collector, String), Unsupported> {
    use envoy_types::pb::envoy::config::trace::v3::tracing::http::ConfigType;
    let Some(ConfigType::TypedConfig(any)) = &provider.config_type else {
        return Err(Unsupported("tracing provider without typed_config"));
    };
    match provider.name.as_str() {
        ZIPKIN if any.type_url == ZipkinConfig::type_url() => {
            let zipkin = ZipkinConfig::decode(any.value.as_slice())
                .map_err(|_| Unsupported("undecodable zipkin config"))?;
            reject_if(
                zipkin.collector_cluster.is_empty(),
                "zipkin without collector_cluster",
            )?;
            reject_if(
                zipkin.collector_endpoint_version != CollectorEndpointVersion::HttpJson as i32,
                "zipkin collector_endpoint_version other than HTTP_JSON",
            )?;
            #[allow(deprecated)] // still a field Envoy reads
            let split = zipkin.split_spans_for_request;
            reject_if(split, "zipkin split_spans_for_request")?;
            let path = if zipkin.collector_endpoint.is_empty() {
                "/api/v2/spans".to_string()
            } else {
                zipkin.collector_endpoint
            };
            reject_if(
                !path.starts_with('/'),
                "zipkin collector_endpoint not a path",
            )?;
            Ok((
                Collector::Zipkin {
                    cluster: zipkin.collector_cluster,
                    path,
                },
                String::new(),
            ))
        }
        OPENTELEMETRY if any.type_url == OpenTelemetryConfig::type_url() => {
            let otel = OpenTelemetryConfig::decode(any.value.as_slice())
                .map_err(|_| Unsupported("undecodable opentelemetry config"))?;
            reject_if(otel.exporter.is_some(), "opentelemetry exporter")?;
            reject_if(otel.sampler.is_some(), "opentelemetry sampler")?;
            reject_if(
                !otel.resource_detectors.is_empty(),
                "opentelemetry resource_detectors",
            )?;
            Ok((otlp_collector(&otel)?, otel.service_name))
        }
        _ => Err(Unsupported(
            "tracing provider other than envoy.tracers.zipkin or envoy.tracers.opentelemetry",
        )),
    }
}

fn otlp_collector(otel: &OpenTelemetryConfig) -> Result<Collector, Unsupported> {
    use envoy_types::pb::envoy::config::core::v3::grpc_service::TargetSpecifier;
    use envoy_types::pb::envoy::config::core::v3::http_uri::HttpUpstreamType;
    match (&otel.grpc_service, &otel.http_service) {
        (Some(grpc), None) => match &grpc.target_specifier {
            Some(TargetSpecifier::EnvoyGrpc(envoy)) if !envoy.cluster_name.is_empty() => {
                Ok(Collector::OtlpGrpc {
                    cluster: envoy.cluster_name.clone(),
                })
            }
            _ => Err(Unsupported(
                "opentelemetry grpc_service other than envoy_grpc",
            )),
        },
        (None, Some(http)) => {
            reject_if(
                !http.request_headers_to_add.is_empty(),
                "opentelemetry http_service.request_headers_to_add",
            )?;
            let uri = http
                .http_uri
                .as_ref()
                .ok_or(Unsupported("opentelemetry http_service without http_uri"))?;
            let Some(HttpUpstreamType::Cluster(cluster)) = &uri.http_upstream_type else {
                return Err(Unsupported("opentelemetry http_uri without a cluster"));
            };
            Ok(Collector::OtlpHttp {
                cluster: cluster.clone(),
                path: uri_path(&uri.uri)?,
            })
        }
        _ => Err(Unsupported(
            "opentelemetry without exactly one of grpc_service, http_service",
        )),
    }
}

/// The path of an `http_uri` (`http://otel:4318/v1/traces`).
fn uri_path(uri: &str) -> Result<String, Unsupported> {
    let uri: http::Uri = uri
        .parse()
        .map_err(|_| Unsupported("opentelemetry http_uri.uri invalid"))?;
    Ok(match uri.path_and_query().map(|p| p.as_str()) {
        None | Some("" | "/") => DEFAULT_OTLP_HTTP_PATH.to_string(),
        Some(path) => path.to_string(),
    })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpanKind {
    Server,
    Client,
}

/// One hop's span, from the request's head to the end of its response.
#[derive(Clone, Debug)]
pub struct Span {
    pub trace_id: u128,
    pub span_id: u64,
    pub parent_span_id: Option<u64>,
    pub kind: SpanKind,
    pub name: String,
    pub start: SystemTime,
    pub duration: Duration,
    pub error: bool,
    pub tags: Vec<(&'static str, String)>,
    pub custom_tags: Vec<(String, String)>,
}

/// The span of a request in flight, if it is sampled.
#[derive(Debug)]
pub struct ActiveSpan {
    pub span: Span,
    pub sink: Arc<SpanSink>,
}

/// Starts the request's hop: reads its context, decides sampling, and
/// replaces its trace headers with this hop's. The span, if sampled.
pub fn start_hop(
    spec: &Arc<TracingSpec>,
    headers: &mut HeaderMap,
    hop: &HopStart<'_>,
) -> Option<ActiveSpan> {
    let incoming = propagation::extract(headers);
    let span_id = nonzero_random();
    let (trace_id, parent, sampled, formats) = match &incoming {
        Some(found) => (
            found.trace_id,
            Some(found.parent_span_id),
            found.sampled.unwrap_or_else(|| spec.roll()),
            found.formats,
        ),
        None => (
            u128::from(nonzero_random()) << 64 | u128::from(rand::random::<u64>()),
            None,
            propagation::lone_sampling_decision(headers).unwrap_or_else(|| spec.roll()),
            propagation::Formats::NEW_TRACE,
        ),
    };
    let tracestate = incoming.as_ref().and_then(|i| i.tracestate.clone());
    propagation::inject(
        headers,
        &propagation::Outgoing {
            trace_id,
            span_id,
            parent_span_id: parent,
            sampled,
            tracestate: tracestate.as_ref(),
            formats,
        },
    );
    if !sampled {
        return None;
    }
    let custom_tags = spec
        .custom_tags
        .iter()
        .map(|tag| match tag {
            CustomTag::Fixed { tag, value } => (tag.clone(), value.clone()),
            CustomTag::Header {
                tag,
                header,
                default,
            } => (
                tag.clone(),
                headers
                    .get(header)
                    .and_then(|v| v.to_str().ok())
                    .map_or_else(|| default.clone(), str::to_string),
            ),
        })
        .filter(|(_, value)| !value.is_empty())
        .collect();
    Some(ActiveSpan {
        span: Span {
            trace_id,
            span_id,
            parent_span_id: parent,
            kind: hop.kind,
            name: hop.operation_name(),
            start: SystemTime::now(),
            duration: Duration::ZERO,
            error: false,
            tags: hop.tags(headers),
            custom_tags,
        },
        sink: spec.sink.clone(),
    })
}

pub fn protocol_name(version: http::Version) -> &'static str {
    match version {
        http::Version::HTTP_10 => "HTTP/1.0",
        http::Version::HTTP_2 => "HTTP/2",
        _ => "HTTP/1.1",
    }
}

fn nonzero_random() -> u64 {
    rand::random::<u64>().max(1)
}

#[cfg(test)]
#[path = "trace_tests.rs"]
mod tests;
