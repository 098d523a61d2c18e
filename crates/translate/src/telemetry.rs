//! Istio's Telemetry API for metrics and access logs, on every connection
//! manager and TCP proxy of a proxy: the stats filter (`istio.stats`,
//! before the router, or before `tcp_proxy`) carries the metric
//! overrides, and the access logs are the ones Telemetry selects. Inbound
//! listeners take the SERVER entries, outbound and gateway listeners the
//! CLIENT ones. Tracing, the API's third part, is in [`crate::trace`].

mod access_logging;
pub(crate) mod levels;
mod metrics;

use envoy_types::pb::envoy::config::accesslog::v3::AccessLog;
use envoy_types::pb::envoy::config::core::v3::TrafficDirection;
use envoy_types::pb::envoy::config::listener::v3::{Filter, FilterChain, Listener, filter};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, HttpFilter, http_filter,
};
use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::TcpProxy;
use envoy_types::pb::google::protobuf::Any;
use prost::{Message, Name};
use trellis_config::Snapshot;
use trellis_xds::NodeInfo;
use trellis_xds::stats_config::{PluginConfig, STATS_FILTER_NAME};

pub use access_logging::{CEL_FILTER_NAME, ENVOY_PROVIDER, FileLogProvider, MeshAccessLogging};
pub use metrics::{MeshMetrics, PROMETHEUS_PROVIDER};

use crate::MeshOptions;
use crate::access_log::DEFAULT_ACCESS_LOG_FILE;

const ROUTER_FILTER: &str = "envoy.filters.http.router";

/// What Telemetry makes of one side of a proxy.
struct Side {
    stats: Option<Any>,
    /// `None`: no Telemetry entry applies; the mesh's loggers stay.
    access_logs: Option<Vec<AccessLog>>,
}

impl Side {
    fn of(snapshot: &Snapshot, node: &NodeInfo, mesh: &MeshOptions, server: bool) -> Side {
        let applicable = levels::applicable(snapshot, node);
        let builtin = FileLogProvider {
            name: ENVOY_PROVIDER.into(),
            path: mesh
                .access_log_file
                .clone()
                .unwrap_or_else(|| DEFAULT_ACCESS_LOG_FILE.into()),
            format: mesh.access_log_format.clone(),
            encoding: mesh.access_log_encoding,
        };
        Side {
            stats: metrics::stats_config(&applicable, &mesh.metrics, server).map(pack),
            access_logs: access_logging::access_logs(
                &applicable,
                &mesh.access_logging,
                &builtin,
                server,
            ),
        }
    }
}

/// What the client side's Telemetry makes of `node`, encoded, for sharing
/// classes; `None` when no Telemetry applies to it (mesh defaults only).
pub fn client_side_digest(
    snapshot: &Snapshot,
    node: &NodeInfo,
    mesh: &MeshOptions,
) -> Option<Vec<u8>> {
    if levels::applicable(snapshot, node).is_empty() {
        return None;
    }
    let side = Side::of(snapshot, node, mesh, false);
    let mut digest = side.stats.map(|s| s.encode_to_vec()).unwrap_or_default();
    for log in side.access_logs.iter().flatten() {
        digest.extend(log.encode_to_vec());
    }
    digest.push(u8::from(side.access_logs.is_some()));
    Some(digest)
}

fn pack(config: PluginConfig) -> Any {
    Any {
        type_url: PluginConfig::type_url(),
        value: config.encode_to_vec(),
    }
}

/// Adds the stats filter and Telemetry's access logs to `listeners`.
pub fn apply(listeners: &mut [Listener], snapshot: &Snapshot, node: &NodeInfo, mesh: &MeshOptions) {
    let server = Side::of(snapshot, node, mesh, true);
    let client = Side::of(snapshot, node, mesh, false);
    for listener in listeners {
        let inbound = listener.traffic_direction == TrafficDirection::Inbound as i32;
        let side = if inbound { &server } else { &client };
        listener
            .filter_chains
            .iter_mut()
            .chain(listener.default_filter_chain.as_mut())
            .for_each(|chain| apply_to_chain(chain, side));
    }
}

fn apply_to_chain(chain: &mut FilterChain, side: &Side) {
    let mut filters = Vec::with_capacity(chain.filters.len() + 1);
    for mut filter in chain.filters.drain(..) {
        match typed_config(&mut filter) {
            Some(any) if any.type_url == HttpConnectionManager::type_url() => {
                apply_to_hcm(any, side);
            }
            Some(any) if any.type_url == TcpProxy::type_url() => {
                apply_to_tcp_proxy(any, side);
                if let Some(stats) = &side.stats {
                    filters.push(Filter {
                        name: STATS_FILTER_NAME.into(),
                        config_type: Some(filter::ConfigType::TypedConfig(stats.clone())),
                    });
                }
            }
            _ => {}
        }
        filters.push(filter);
    }
    chain.filters = filters;
}

fn typed_config(filter: &mut Filter) -> Option<&mut Any> {
    match &mut filter.config_type {
        Some(filter::ConfigType::TypedConfig(any)) => Some(any),
        _ => None,
    }
}

fn apply_to_hcm(any: &mut Any, side: &Side) {
    let Ok(mut hcm) = HttpConnectionManager::decode(any.value.as_slice()) else {
        return;
    };
    if let Some(stats) = &side.stats {
        let router = hcm
            .http_filters
            .iter()
            .position(|f| f.name == ROUTER_FILTER)
            .unwrap_or(hcm.http_filters.len());
        hcm.http_filters.insert(
            router,
            HttpFilter {
                name: STATS_FILTER_NAME.into(),
                config_type: Some(http_filter::ConfigType::TypedConfig(stats.clone())),
                ..Default::default()
            },
        );
    }
    if let Some(logs) = &side.access_logs {
        hcm.access_log = logs.clone();
    }
    any.value = hcm.encode_to_vec();
}

fn apply_to_tcp_proxy(any: &mut Any, side: &Side) {
    let Some(logs) = &side.access_logs else {
        return;
    };
    let Ok(mut proxy) = TcpProxy::decode(any.value.as_slice()) else {
        return;
    };
    proxy.access_log = logs.clone();
    any.value = proxy.encode_to_vec();
}
