//! Listeners of a sidecar in local mode (no traffic capture): the app's
//! explicit HTTP proxy, and one inbound listener per service port the
//! sidecar owns, accepting mesh mTLS and/or plaintext as PeerAuthentication
//! says, with AuthorizationPolicy's RBAC filters before the router.

use envoy_types::pb::envoy::config::accesslog::v3::AccessLog;
use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::cluster::v3::cluster::{ClusterDiscoveryType, DiscoveryType};
use envoy_types::pb::envoy::config::core::v3::{TrafficDirection, TransportSocket};
use envoy_types::pb::envoy::config::endpoint::v3::{
    ClusterLoadAssignment, Endpoint, LbEndpoint, LocalityLbEndpoints, lb_endpoint::HostIdentifier,
};
use envoy_types::pb::envoy::config::listener::v3::{
    Filter, FilterChain, FilterChainMatch, Listener, ListenerFilter, filter, listener_filter,
};
use envoy_types::pb::envoy::config::route::v3::{
    Route, RouteAction, RouteConfiguration, RouteMatch, VirtualHost, route::Action,
    route_action::ClusterSpecifier, route_match::PathSpecifier,
};
use envoy_types::pb::envoy::extensions::filters::listener::tls_inspector::v3::TlsInspector;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, HttpFilter, Rds,
    http_connection_manager::{
        CodecType, ForwardClientCertDetails, RouteSpecifier, SetCurrentClientCertDetails,
    },
};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::DownstreamTlsContext;
use envoy_types::pb::google::protobuf::BoolValue;
use envoy_types::util::pack_any;
use trellis_api::PathNormalizationMode;
use trellis_config::{Protocol, Snapshot};
use trellis_xds::NodeInfo;
use trellis_xds::node::Interception;

use crate::MeshOptions;
use crate::build::{duration, mesh_tls_context, router_filter, socket_address, tls_socket};
use crate::clusters::ads_config_source;
use crate::names::{HTTP_PROXY_ROUTE, VIRTUAL_OUTBOUND, inbound_cluster_name};
use crate::security::{InboundMtls, inbound_mtls, rbac_filters};

/// ALPN values the inbound mTLS chain accepts (what sidecars offer).
pub(crate) const INBOUND_ALPN: [&str; 5] =
    ["istio-h2", "istio-http/1.1", "istio", "h2", "http/1.1"];

pub struct Inbound {
    pub listeners: Vec<Listener>,
    pub clusters: Vec<Cluster>,
}

/// The explicit outbound HTTP proxy the app calls (`HTTP_PROXY`).
pub fn outbound(node: &NodeInfo, access_logs: &[AccessLog]) -> Vec<Listener> {
    if node.interception != Interception::None {
        return Vec::new(); // capture mode listeners come with transparent interception
    }
    let hcm = HttpConnectionManager {
        stat_prefix: "outbound_http_proxy".into(),
        codec_type: CodecType::Auto as i32,
        route_specifier: Some(RouteSpecifier::Rds(Rds {
            config_source: Some(ads_config_source()),
            route_config_name: HTTP_PROXY_ROUTE.into(),
        })),
        http_filters: vec![
            crate::cors::cors_filter(),
            crate::fault::fault_filter(),
            router_filter(),
        ],
        access_log: access_logs.to_vec(),
        ..Default::default()
    };
    vec![Listener {
        name: VIRTUAL_OUTBOUND.into(),
        address: Some(socket_address(node.ip, node.outbound_port)),
        filter_chains: vec![FilterChain {
            filters: vec![hcm_filter(hcm)],
            ..Default::default()
        }],
        traffic_direction: TrafficDirection::Outbound as i32,
        ..Default::default()
    }]
}

/// A listener per port the sidecar owns, and the cluster to the app behind it.
pub fn inbound(
    snapshot: &Snapshot,
    node: &NodeInfo,
    access_logs: &[AccessLog],
    mesh: &MeshOptions,
) -> Inbound {
    let paths = mesh.path_normalization;
    let mut inbound = Inbound {
        listeners: Vec::new(),
        clusters: Vec::new(),
    };
    let rbac = rbac_filters(snapshot, node, &mesh.authz_providers);
    let protocols = crate::capture::declared_ports(snapshot, node);
    for (&port, &app_port) in &node.app_ports {
        let cluster_name = inbound_cluster_name(port, &serving_host(snapshot, node, port));
        inbound.clusters.push(app_cluster(
            &cluster_name,
            node,
            app_port,
            protocols.get(&port).copied(),
        ));
        let policy = InboundPolicy {
            mtls: inbound_mtls(snapshot, node, port),
            rbac: &rbac,
            access_logs,
            paths,
        };
        inbound
            .listeners
            .push(inbound_listener(node, port, &cluster_name, &policy));
    }
    inbound
}

/// The Service whose target port this is (for metrics); empty if none or
/// ambiguous, as Istio leaves it.
pub(crate) fn serving_host(snapshot: &Snapshot, node: &NodeInfo, port: u16) -> String {
    let mut hosts = snapshot.registry.services().iter().filter(|service| {
        service.namespace == node.namespace
            && service.selects(&node.labels)
            && service.ports.iter().any(|p| {
                snapshot
                    .registry
                    .endpoints(service, p)
                    .iter()
                    .any(|e| e.address.ip() == node.ip && e.address.port() == port)
            })
    });
    match (hosts.next(), hosts.next()) {
        (Some(service), None) => service.hostname.clone(),
        _ => String::new(),
    }
}

/// The cluster to the app on `app_port`, speaking HTTP/2 when the port's
/// `protocol` does (gRPC over HTTP/1.1 cannot carry trailers).
pub(crate) fn app_cluster(
    name: &str,
    node: &NodeInfo,
    app_port: u16,
    protocol: Option<Protocol>,
) -> Cluster {
    let endpoint = LbEndpoint {
        host_identifier: Some(HostIdentifier::Endpoint(Endpoint {
            address: Some(socket_address(node.ip, app_port)),
            ..Default::default()
        })),
        ..Default::default()
    };
    let mut cluster = Cluster {
        name: name.into(),
        cluster_discovery_type: Some(ClusterDiscoveryType::Type(DiscoveryType::Static as i32)),
        connect_timeout: Some(duration(std::time::Duration::from_secs(10))),
        load_assignment: Some(ClusterLoadAssignment {
            cluster_name: name.into(),
            endpoints: vec![LocalityLbEndpoints {
                lb_endpoints: vec![endpoint],
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    };
    if matches!(protocol, Some(Protocol::Http2 | Protocol::Grpc)) {
        crate::cluster_policy::use_http2(&mut cluster);
    }
    cluster
}

/// What security policy asks of one inbound port.
pub(crate) struct InboundPolicy<'a> {
    pub mtls: InboundMtls,
    /// Run in order before the router.
    pub rbac: &'a [HttpFilter],
    pub access_logs: &'a [AccessLog],
    /// Applied before RBAC reads the path.
    pub paths: PathNormalizationMode,
}

fn inbound_listener(
    node: &NodeInfo,
    port: u16,
    cluster: &str,
    policy: &InboundPolicy<'_>,
) -> Listener {
    let tls = mesh_mtls_socket();
    let chain = |transport: &str, socket| FilterChain {
        filter_chain_match: Some(FilterChainMatch {
            transport_protocol: transport.into(),
            ..Default::default()
        }),
        filters: vec![hcm_filter(inbound_hcm(port, cluster, policy))],
        transport_socket: socket,
        ..Default::default()
    };
    let mut filter_chains = Vec::new();
    if policy.mtls.accepts_tls() {
        filter_chains.push(chain("tls", Some(tls)));
    }
    if policy.mtls.accepts_plaintext() {
        filter_chains.push(chain("raw_buffer", None));
    }
    Listener {
        name: format!("{}_{port}", node.ip),
        address: Some(socket_address(node.ip, port)),
        filter_chains,
        listener_filters: vec![tls_inspector()],
        traffic_direction: TrafficDirection::Inbound as i32,
        ..Default::default()
    }
}

/// Terminates mesh mTLS: the workload certificate, client certificates required.
pub(crate) fn mesh_mtls_socket() -> TransportSocket {
    tls_socket(DownstreamTlsContext {
        common_tls_context: Some(mesh_tls_context(&[], &INBOUND_ALPN)),
        require_client_certificate: Some(BoolValue { value: true }),
        ..Default::default()
    })
}

pub(crate) fn tls_inspector() -> ListenerFilter {
    ListenerFilter {
        name: "envoy.filters.listener.tls_inspector".into(),
        config_type: Some(listener_filter::ConfigType::TypedConfig(pack_any(
            TlsInspector::default(),
        ))),
        ..Default::default()
    }
}

pub(crate) fn inbound_hcm(
    port: u16,
    cluster: &str,
    policy: &InboundPolicy<'_>,
) -> HttpConnectionManager {
    let route = Route {
        name: "default".into(),
        r#match: Some(RouteMatch {
            path_specifier: Some(PathSpecifier::Prefix("/".into())),
            ..Default::default()
        }),
        action: Some(Action::Route(RouteAction {
            cluster_specifier: Some(ClusterSpecifier::Cluster(cluster.into())),
            timeout: Some(duration(std::time::Duration::ZERO)),
            ..Default::default()
        })),
        ..Default::default()
    };
    let mut hcm = HttpConnectionManager {
        stat_prefix: format!("inbound_0.0.0.0_{port}"),
        codec_type: CodecType::Auto as i32,
        route_specifier: Some(RouteSpecifier::RouteConfig(RouteConfiguration {
            name: format!("inbound|{port}||"),
            virtual_hosts: vec![VirtualHost {
                name: "inbound|http|".to_string() + &port.to_string(),
                domains: vec!["*".into()],
                routes: vec![route],
                ..Default::default()
            }],
            validate_clusters: Some(BoolValue { value: false }),
            ..Default::default()
        })),
        http_filters: policy
            .rbac
            .iter()
            .cloned()
            .chain([router_filter()])
            .collect(),
        access_log: policy.access_logs.to_vec(),
        forward_client_cert_details: ForwardClientCertDetails::SanitizeSet as i32,
        set_current_client_cert_details: Some(SetCurrentClientCertDetails {
            uri: true,
            ..Default::default()
        }),
        ..Default::default()
    };
    crate::path_normalization::configure(&mut hcm, policy.paths);
    hcm
}

pub(crate) fn hcm_filter(hcm: HttpConnectionManager) -> Filter {
    Filter {
        name: "envoy.filters.network.http_connection_manager".into(),
        config_type: Some(filter::ConfigType::TypedConfig(pack_any(hcm))),
    }
}
