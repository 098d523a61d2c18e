//! Istio's tracing as Envoy's `HttpConnectionManager.tracing`: the mesh's
//! tracing providers (`extensionProviders` zipkin / opentelemetry,
//! `defaultProviders.tracing`, `defaultConfig.tracing.sampling`) and the
//! Telemetry resources' `tracing` (root namespace, then the workload's
//! namespace, then a workload selector: the more specific overrides, field
//! by field) on every HTTP connection manager of a proxy. Inbound
//! listeners take the SERVER entries, outbound (and gateway) listeners the
//! CLIENT ones. Spans go to the provider's cluster, `outbound|PORT||SERVICE`.

use std::collections::BTreeMap;

use envoy_types::pb::envoy::config::core::v3::grpc_service::{EnvoyGrpc, TargetSpecifier};
use envoy_types::pb::envoy::config::core::v3::{
    GrpcService, HttpService, HttpUri, TrafficDirection, http_uri,
};
use envoy_types::pb::envoy::config::listener::v3::{Filter, Listener, filter};
use envoy_types::pb::envoy::config::trace::v3::tracing::Http as Provider;
use envoy_types::pb::envoy::config::trace::v3::tracing::http::ConfigType;
use envoy_types::pb::envoy::config::trace::v3::zipkin_config::CollectorEndpointVersion;
use envoy_types::pb::envoy::config::trace::v3::{OpenTelemetryConfig, ZipkinConfig};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_connection_manager::Tracing;
use envoy_types::pb::envoy::r#type::tracing::v3::{CustomTag, custom_tag};
use envoy_types::pb::envoy::r#type::v3::Percent;
use envoy_types::util::pack_any;
use prost::{Message, Name};
use trellis_api::{CustomTag as TelemetryTag, Tracing as TelemetryTracing};
use trellis_config::Snapshot;
use trellis_xds::NodeInfo;

use crate::telemetry::levels::{applicable, mode_applies};

/// Istio's `defaultConfig.tracing.sampling` when unset: 1%.
pub const DEFAULT_SAMPLING_PERCENT: f64 = 1.0;

/// A tracer among `meshConfig.extensionProviders`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TracingProvider {
    pub name: String,
    /// The collector's host (`zipkin.istio-system.svc.cluster.local`) and port.
    pub service: String,
    pub port: u32,
    pub kind: TracerKind,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TracerKind {
    Zipkin,
    /// OTLP over gRPC.
    OtlpGrpc,
    /// OTLP over HTTP/protobuf, POSTed to `path`.
    OtlpHttp {
        path: String,
    },
}

/// The mesh config's tracing settings.
#[derive(Clone, Debug, PartialEq)]
pub struct MeshTracing {
    pub providers: Vec<TracingProvider>,
    /// `defaultProviders.tracing`: used where no Telemetry names one.
    pub default_providers: Vec<String>,
    /// `defaultConfig.tracing.sampling`.
    pub sampling_percent: f64,
}

// The sampling rate is never NaN: the control plane checks it (0..=100).
impl Eq for MeshTracing {}

impl Default for MeshTracing {
    fn default() -> Self {
        MeshTracing {
            providers: Vec::new(),
            default_providers: Vec::new(),
            sampling_percent: DEFAULT_SAMPLING_PERCENT,
        }
    }
}

/// Tracing as it applies to one proxy and direction, after merging.
#[derive(Clone, Debug, Default, PartialEq)]
struct Effective {
    providers: Option<Vec<String>>,
    sampling: Option<f64>,
    disabled: Option<bool>,
    tags: BTreeMap<String, TelemetryTag>,
}

impl Effective {
    fn merge(&mut self, entry: &TelemetryTracing) {
        if !entry.providers.is_empty() {
            self.providers = Some(entry.providers.iter().map(|p| p.name.clone()).collect());
        }
        if let Some(sampling) = entry.random_sampling_percentage {
            self.sampling = Some(sampling);
        }
        if let Some(disabled) = entry.disable_span_reporting {
            self.disabled = Some(disabled);
        }
        self.tags.extend(entry.custom_tags.clone());
    }
}

fn applies(entry: &TelemetryTracing, server: bool) -> bool {
    mode_applies(entry.match_.as_ref().and_then(|m| m.mode), server)
}

/// The Telemetry `tracing` entries for `node`, merged.
fn resolve(snapshot: &Snapshot, node: &NodeInfo, server: bool) -> Effective {
    let mut effective = Effective::default();
    for telemetry in applicable(snapshot, node) {
        for entry in telemetry.tracing.iter().filter(|t| applies(t, server)) {
            effective.merge(entry);
        }
    }
    effective
}

/// The HCM `tracing` for `node` in one direction; `None`: no tracing.
pub fn hcm_tracing(
    snapshot: &Snapshot,
    node: &NodeInfo,
    mesh: &MeshTracing,
    server: bool,
) -> Option<Tracing> {
    let effective = resolve(snapshot, node, server);
    if effective.disabled == Some(true) {
        return None;
    }
    let names = effective
        .providers
        .unwrap_or_else(|| mesh.default_providers.clone());
    // Istio supports one tracing provider per proxy: the first.
    let provider = mesh
        .providers
        .iter()
        .find(|p| names.first() == Some(&p.name))?;
    let sampling = effective
        .sampling
        .unwrap_or(mesh.sampling_percent)
        .clamp(0.0, 100.0);
    Some(Tracing {
        random_sampling: Some(Percent { value: sampling }),
        custom_tags: effective.tags.iter().filter_map(custom_tag).collect(),
        provider: Some(envoy_provider(provider)),
        ..Default::default()
    })
}

fn custom_tag((name, tag): (&String, &TelemetryTag)) -> Option<CustomTag> {
    let kind = if let Some(literal) = &tag.literal {
        custom_tag::Type::Literal(custom_tag::Literal {
            value: literal.value.clone(),
        })
    } else if let Some(env) = &tag.environment {
        custom_tag::Type::Environment(custom_tag::Environment {
            name: env.name.clone(),
            default_value: env.default_value.clone(),
        })
    } else {
        let header = tag.header.as_ref()?;
        custom_tag::Type::RequestHeader(custom_tag::Header {
            name: header.name.clone(),
            default_value: header.default_value.clone(),
        })
    };
    Some(CustomTag {
        tag: name.clone(),
        r#type: Some(kind),
    })
}

/// Istio's cluster for a provider's service.
pub fn provider_cluster(provider: &TracingProvider) -> String {
    format!("outbound|{}||{}", provider.port, provider.service)
}

fn envoy_provider(provider: &TracingProvider) -> Provider {
    let cluster = provider_cluster(provider);
    let (name, any) = match &provider.kind {
        TracerKind::Zipkin => (
            "envoy.tracers.zipkin",
            pack_any(ZipkinConfig {
                collector_cluster: cluster,
                collector_endpoint: "/api/v2/spans".into(),
                collector_endpoint_version: CollectorEndpointVersion::HttpJson as i32,
                trace_id_128bit: true,
                collector_hostname: provider.service.clone(),
                ..Default::default()
            }),
        ),
        TracerKind::OtlpGrpc => (
            "envoy.tracers.opentelemetry",
            pack_any(OpenTelemetryConfig {
                grpc_service: Some(GrpcService {
                    target_specifier: Some(TargetSpecifier::EnvoyGrpc(EnvoyGrpc {
                        cluster_name: cluster,
                        authority: provider.service.clone(),
                        ..Default::default()
                    })),
                    ..Default::default()
                }),
                ..Default::default()
            }),
        ),
        TracerKind::OtlpHttp { path } => (
            "envoy.tracers.opentelemetry",
            pack_any(OpenTelemetryConfig {
                http_service: Some(HttpService {
                    http_uri: Some(HttpUri {
                        uri: format!("http://{}:{}{}", provider.service, provider.port, path),
                        http_upstream_type: Some(http_uri::HttpUpstreamType::Cluster(cluster)),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
        ),
    };
    Provider {
        name: name.into(),
        config_type: Some(ConfigType::TypedConfig(any)),
    }
}

/// Sets `tracing` on every HTTP connection manager of `listeners`.
pub fn apply(listeners: &mut [Listener], snapshot: &Snapshot, node: &NodeInfo, mesh: &MeshTracing) {
    if mesh.providers.is_empty() {
        return;
    }
    let server = hcm_tracing(snapshot, node, mesh, true);
    let client = hcm_tracing(snapshot, node, mesh, false);
    for listener in listeners {
        let inbound = listener.traffic_direction == TrafficDirection::Inbound as i32;
        let Some(tracing) = (if inbound { &server } else { &client }) else {
            continue;
        };
        for chain in &mut listener.filter_chains {
            chain
                .filters
                .iter_mut()
                .for_each(|f| set_tracing(f, tracing));
        }
        if let Some(chain) = &mut listener.default_filter_chain {
            chain
                .filters
                .iter_mut()
                .for_each(|f| set_tracing(f, tracing));
        }
    }
}

fn set_tracing(filter: &mut Filter, tracing: &Tracing) {
    let Some(filter::ConfigType::TypedConfig(any)) = &mut filter.config_type else {
        return;
    };
    if any.type_url != HttpConnectionManager::type_url() {
        return;
    }
    let Ok(mut hcm) = HttpConnectionManager::decode(any.value.as_slice()) else {
        return;
    };
    hcm.tracing = Some(tracing.clone());
    any.value = hcm.encode_to_vec();
}
