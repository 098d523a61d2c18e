//! A router's listeners: one per port, binding the proxy's address. HTTP
//! servers share one chain with RDS `http.PORT`, TCP servers one tcp_proxy
//! chain; each terminating TLS server is a chain of its own, chosen by SNI
//! (its hosts), terminating TLS (see tls_context.rs) before its routes,
//! and each passthrough route a chain chosen by its SNI hosts.

use envoy_types::pb::envoy::config::accesslog::v3::AccessLog;
use envoy_types::pb::envoy::config::core::v3::TrafficDirection;
use envoy_types::pb::envoy::config::listener::v3::{
    Filter, FilterChain, FilterChainMatch, Listener, ListenerFilter, filter, listener_filter,
};
use envoy_types::pb::envoy::extensions::filters::listener::tls_inspector::v3::TlsInspector;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, HttpFilter, Rds,
    http_connection_manager::{CodecType, RouteSpecifier},
};
use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::{
    TcpProxy, tcp_proxy::ClusterSpecifier, tcp_proxy::WeightedCluster,
    tcp_proxy::weighted_cluster::ClusterWeight,
};
use envoy_types::util::pack_any;
use trellis_api::PathNormalizationMode;
use trellis_xds::NodeInfo;

use super::server_kind::Termination;
use super::tls_context::downstream_context;
use crate::build::{router_filter, socket_address, tls_socket};
use crate::clusters::ads_config_source;

/// What HTTPS servers offer (HTTP/2 first, as Istio's gateways do).
const HTTPS_ALPN: [&str; 2] = ["h2", "http/1.1"];

/// A listener on `port` of the proxy's address, named like Istio's.
pub fn listener(node: &NodeInfo, port: u16, chains: Vec<FilterChain>, tls: bool) -> Listener {
    let listener_filters = if tls {
        vec![ListenerFilter {
            name: "envoy.filters.listener.tls_inspector".into(),
            config_type: Some(listener_filter::ConfigType::TypedConfig(pack_any(
                TlsInspector::default(),
            ))),
            ..Default::default()
        }]
    } else {
        Vec::new()
    };
    Listener {
        name: format!("0.0.0.0_{port}"),
        address: Some(socket_address(node.ip, port)),
        filter_chains: chains,
        listener_filters,
        traffic_direction: TrafficDirection::Outbound as i32,
        ..Default::default()
    }
}

/// The plaintext chain of a port's HTTP servers.
pub fn http_chain(port: u16, route_name: String, manager: &HttpManager<'_>) -> FilterChain {
    FilterChain {
        filters: vec![hcm_filter(port, route_name, manager)],
        ..Default::default()
    }
}

/// The chain of one HTTPS server: its SNI names, its TLS, its routes.
pub fn https_chain(
    port: u16,
    server_names: Vec<String>,
    termination: &Termination,
    route_name: String,
    manager: &HttpManager<'_>,
) -> FilterChain {
    FilterChain {
        transport_socket: Some(tls_socket(downstream_context(termination, &HTTPS_ALPN))),
        ..sni_chain(server_names, hcm_filter(port, route_name, manager))
    }
}

/// A chain chosen by SNI (any name when `server_names` is empty, as for a
/// `*` host) ending in `filter`, without terminating TLS.
pub fn sni_chain(server_names: Vec<String>, filter: Filter) -> FilterChain {
    let any_name = server_names.is_empty() || server_names.iter().any(|n| n == "*");
    FilterChain {
        filter_chain_match: (!any_name).then(|| FilterChainMatch {
            server_names,
            ..Default::default()
        }),
        filters: vec![filter],
        ..Default::default()
    }
}

/// The chain of a TLS server that terminates TLS before its TCP routes.
pub fn terminated_tcp_chain(
    server_names: Vec<String>,
    termination: &Termination,
    tcp_proxy: Filter,
) -> FilterChain {
    FilterChain {
        transport_socket: Some(tls_socket(downstream_context(termination, &[]))),
        ..sni_chain(server_names, tcp_proxy)
    }
}

/// A tcp_proxy to `clusters` (name, weight): one, or split by weight.
pub fn tcp_proxy_filter(
    stat_prefix: String,
    clusters: &[(String, u32)],
    access_logs: &[AccessLog],
) -> Filter {
    let cluster_specifier = match clusters {
        [(cluster, _)] => ClusterSpecifier::Cluster(cluster.clone()),
        _ => ClusterSpecifier::WeightedClusters(WeightedCluster {
            clusters: clusters
                .iter()
                .map(|(name, weight)| ClusterWeight {
                    name: name.clone(),
                    weight: *weight,
                    ..Default::default()
                })
                .collect(),
        }),
    };
    let config = TcpProxy {
        stat_prefix,
        cluster_specifier: Some(cluster_specifier),
        access_log: access_logs.to_vec(),
        ..Default::default()
    };
    Filter {
        name: "envoy.filters.network.tcp_proxy".into(),
        config_type: Some(filter::ConfigType::TypedConfig(pack_any(config))),
    }
}

/// What every HTTP connection manager of a gateway shares.
pub struct HttpManager<'a> {
    pub access_logs: &'a [AccessLog],
    pub paths: PathNormalizationMode,
    /// RequestAuthentication and AuthorizationPolicy selecting the
    /// gateway, before the router.
    pub security: &'a [HttpFilter],
}

fn hcm_filter(port: u16, route_name: String, manager: &HttpManager<'_>) -> Filter {
    let mut hcm = HttpConnectionManager {
        stat_prefix: format!("outbound_0.0.0.0_{port}"),
        codec_type: CodecType::Auto as i32,
        route_specifier: Some(RouteSpecifier::Rds(Rds {
            config_source: Some(ads_config_source()),
            route_config_name: route_name,
        })),
        http_filters: [crate::cors::cors_filter()]
            .into_iter()
            .chain(manager.security.iter().cloned())
            .chain([crate::fault::fault_filter(), router_filter()])
            .collect(),
        access_log: manager.access_logs.to_vec(),
        ..Default::default()
    };
    crate::path_normalization::configure(&mut hcm, manager.paths);
    Filter {
        name: "envoy.filters.network.http_connection_manager".into(),
        config_type: Some(filter::ConfigType::TypedConfig(pack_any(hcm))),
    }
}
