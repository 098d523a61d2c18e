//! The translator: a pure function from a config snapshot and one proxy's
//! identity to that proxy's Envoy xDS resources (Istio's "pilot").
#![deny(unsafe_code)]
#![deny(rust_2018_idioms)]

mod access_log;
mod build;
mod capture;
mod cluster_policy;
mod clusters;
mod cors;
mod delegate;
mod endpoints;
mod external;
mod fault;
mod gateway;
mod grpc;
mod listeners;
mod names;
mod path_normalization;
mod retry_policy;
mod route_action;
mod routes;
mod scope;
mod security;
mod sharing;
mod telemetry;
mod trace;

use trellis_api::PathNormalizationMode;
use trellis_config::Snapshot;
use trellis_xds::node::Interception;
use trellis_xds::node::ProxyKind;
use trellis_xds::{NodeInfo, ProxyResources};

pub use access_log::{
    AccessLogEncoding, DEFAULT_ACCESS_LOG_FILE, ISTIO_JSON_FIELDS, ISTIO_TEXT_FORMAT,
    JsonFormatError, json_format_fields,
};
pub use capture::OutboundTrafficPolicy;
pub use gateway::{UNPRIVILEGED_PORT_OFFSET, listen_port as gateway_listen_port};
pub use grpc::translate_proxyless_grpc;
pub use names::{inbound_cluster_name, outbound_cluster_name};
pub use scope::{applicable_sidecar, outbound_view};
pub use security::ext_authz::{
    AuthzProtocol, AuthzProvider, DEFAULT_TIMEOUT as DEFAULT_AUTHZ_TIMEOUT, HttpAuthz,
};
pub use security::{InboundMtls, inbound_mtls};
pub use sharing::{
    SharingClass, only_endpoints_changed, shared_clusters, shared_listeners, workload_resources,
};
pub use telemetry::{
    CEL_FILTER_NAME, ENVOY_PROVIDER, FileLogProvider, MeshAccessLogging, MeshMetrics,
    PROMETHEUS_PROVIDER,
};
pub use trace::{DEFAULT_SAMPLING_PERCENT, MeshTracing, TracerKind, TracingProvider};

/// Mesh-wide choices that come from the control plane's settings (Istio's
/// MeshConfig) rather than from the config snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MeshOptions {
    /// Where every HTTP connection manager writes its access log
    /// (`accessLogFile`); `None` turns access logging off.
    pub access_log_file: Option<String>,
    /// Their format (`accessLogFormat`): a format string, or with JSON
    /// encoding a JSON object of fields; `None`: Istio's.
    pub access_log_format: Option<String>,
    /// TEXT or JSON lines (`accessLogEncoding`).
    pub access_log_encoding: AccessLogEncoding,
    /// Where capture-mode sidecars send traffic for destinations outside
    /// the registry (`outboundTrafficPolicy.mode`).
    pub outbound_traffic_policy: OutboundTrafficPolicy,
    /// Tracing providers and defaults (`extensionProviders`,
    /// `defaultProviders.tracing`, `defaultConfig.tracing.sampling`).
    pub tracing: MeshTracing,
    /// How inbound and gateway proxies rewrite request paths before
    /// authorizing and routing them (`pathNormalization`).
    pub path_normalization: PathNormalizationMode,
    /// The mesh config's external authorizers, which CUSTOM
    /// AuthorizationPolicies name (`extensionProviders`).
    pub authz_providers: Vec<AuthzProvider>,
    /// Metrics providers (`defaultProviders.metrics`, `prometheus`
    /// providers), which Telemetry resources select.
    pub metrics: MeshMetrics,
    /// File access log providers (`envoyFileAccessLog`,
    /// `defaultProviders.accessLogging`), which Telemetry resources select.
    pub access_logging: MeshAccessLogging,
}

/// Istio's defaults: access logging is off unless the mesh config sets
/// `accessLogFile` (Istio's demo profile sets `/dev/stdout`).
impl Default for MeshOptions {
    fn default() -> Self {
        MeshOptions {
            access_log_file: None,
            access_log_format: None,
            access_log_encoding: AccessLogEncoding::Text,
            outbound_traffic_policy: OutboundTrafficPolicy::AllowAny,
            tracing: MeshTracing::default(),
            path_normalization: PathNormalizationMode::Base,
            authz_providers: Vec::new(),
            metrics: MeshMetrics::default(),
            access_logging: MeshAccessLogging::default(),
        }
    }
}

/// Everything `node` needs from `snapshot`. Deterministic: the same inputs
/// give byte-identical resources, so unchanged config is never re-pushed.
pub fn translate(snapshot: &Snapshot, node: &NodeInfo) -> ProxyResources {
    translate_with(snapshot, node, &MeshOptions::default())
}

/// [`translate`] with explicit mesh-wide options.
pub fn translate_with(snapshot: &Snapshot, node: &NodeInfo, mesh: &MeshOptions) -> ProxyResources {
    let mesh = &*scope::mesh_options(snapshot, node, mesh);
    // exportTo and the Sidecar's egress hosts; gateways sit in their own
    // namespace too.
    let visible = &*scope::outbound_view(snapshot, node);
    let access_logs = access_log::access_logs(
        mesh.access_log_file.as_deref(),
        mesh.access_log_format.as_deref(),
        mesh.access_log_encoding,
    );
    let outbound = clusters::outbound(visible);
    let endpoints = endpoints::for_clusters(visible, node, &outbound);
    if node.kind == ProxyKind::Router {
        let mut gateway = gateway::gateway_resources(
            visible,
            node,
            &access_logs,
            mesh.path_normalization,
            // Policies select gateways from the whole snapshot.
            &security::rbac_filters(snapshot, node, &mesh.authz_providers),
        );
        trace::apply(&mut gateway.listeners, snapshot, node, &mesh.tracing);
        telemetry::apply(&mut gateway.listeners, snapshot, node, mesh);
        return ProxyResources {
            listeners: gateway.listeners,
            routes: gateway.routes,
            clusters: outbound.into_iter().map(|c| c.cluster).collect(),
            endpoints,
        };
    }
    let (inbound, routes) = match node.interception {
        Interception::None => (
            listeners::inbound(snapshot, node, &access_logs, mesh),
            vec![explicit_proxy_routes(visible, node, mesh)],
        ),
        Interception::Redirect => {
            let capture = capture::sidecar(snapshot, visible, node, mesh, &access_logs);
            (capture.inbound, capture.routes)
        }
    };
    let mut clusters: Vec<_> = outbound.into_iter().map(|c| c.cluster).collect();
    clusters.extend(inbound.clusters);
    let mut listeners = inbound.listeners;
    listeners.extend(listeners::outbound(node, &access_logs));
    trace::apply(&mut listeners, snapshot, node, &mesh.tracing);
    telemetry::apply(&mut listeners, snapshot, node, mesh);
    ProxyResources {
        listeners,
        routes,
        clusters,
        endpoints,
    }
}

/// The explicit HTTP proxy's routes (local mode); under REGISTRY_ONLY a
/// host outside the registry gets Istio's `block_all` 502, as with capture.
pub(crate) fn explicit_proxy_routes(
    snapshot: &Snapshot,
    node: &NodeInfo,
    mesh: &MeshOptions,
) -> envoy_types::pb::envoy::config::route::v3::RouteConfiguration {
    let mut routes = routes::http_proxy(snapshot, node);
    if mesh.outbound_traffic_policy == OutboundTrafficPolicy::RegistryOnly {
        routes.virtual_hosts.push(capture::passthrough::block_all());
    }
    routes
}
