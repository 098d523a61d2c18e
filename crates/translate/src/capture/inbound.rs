//! The inbound side of a capture-mode sidecar: `virtualInbound` on 15006,
//! with a chain per (declared port, transport) leading to the app on the
//! workload's IP, and passthrough chains for every other port.

use std::collections::BTreeMap;

use envoy_types::pb::envoy::config::accesslog::v3::AccessLog;
use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::core::v3::{TrafficDirection, TransportSocket};
use envoy_types::pb::envoy::config::listener::v3::{
    Filter, FilterChain, FilterChainMatch, Listener,
};
use trellis_config::{Protocol, Snapshot};
use trellis_xds::NodeInfo;

use super::sniffing::{MTLS_HTTP_ALPN, PLAINTEXT_HTTP_ALPN, detection_timeout, http_inspector};
use super::{
    BLACKHOLE_CLUSTER, INBOUND_PASSTHROUGH_CLUSTER, inbound_source, original_dst_filter,
    tcp_proxy_filter, unspecified,
};
use crate::MeshOptions;
use crate::build::{socket_address, uint32};
use crate::listeners::{
    Inbound, InboundPolicy, app_cluster, hcm_filter, inbound_hcm, mesh_mtls_socket, serving_host,
    tls_inspector,
};
use crate::names::inbound_cluster_name;
use crate::security::{InboundMtls, inbound_mtls, network_rbac_filters, rbac_filters};

/// Istio's inbound capture port.
const VIRTUAL_INBOUND_PORT: u16 = 15006;
const VIRTUAL_INBOUND: &str = "virtualInbound";

pub fn inbound(
    snapshot: &Snapshot,
    node: &NodeInfo,
    access_logs: &[AccessLog],
    mesh: &MeshOptions,
) -> Inbound {
    let paths = mesh.path_normalization;
    let rbac = rbac_filters(snapshot, node, &mesh.authz_providers);
    let network_rbac = network_rbac_filters(snapshot, node);
    let mut chains = vec![loop_guard(access_logs)];
    let mut clusters = Vec::new();
    let mut sniffing = false;
    for (port, protocol) in declared_ports(snapshot, node) {
        let cluster = inbound_cluster_name(port, &serving_host(snapshot, node, port));
        clusters.push(Cluster {
            upstream_bind_config: Some(inbound_source(node.ip)),
            ..app_cluster(&cluster, node, port, Some(protocol))
        });
        let policy = InboundPolicy {
            mtls: inbound_mtls(snapshot, node, port),
            rbac: &rbac,
            access_logs,
            paths,
        };
        let http = || vec![hcm_filter(inbound_hcm(port, &cluster, &policy))];
        let tcp = || {
            let proxy = tcp_proxy_filter(&format!("inbound_{port}"), &cluster, access_logs);
            with_network_rbac(&network_rbac, proxy)
        };
        match protocol {
            Protocol::Tcp => chains.extend(port_chains(port, &policy, tcp(), Carries::Any)),
            Protocol::Unknown => {
                sniffing = true;
                chains.extend(port_chains(port, &policy, http(), Carries::Http));
                chains.extend(port_chains(port, &policy, tcp(), Carries::Any));
            }
            _ => chains.extend(port_chains(port, &policy, http(), Carries::Any)),
        }
    }
    // Port 0: the workload-wide mode, no port-level override applies.
    let policy = InboundPolicy {
        mtls: inbound_mtls(snapshot, node, 0),
        rbac: &rbac,
        access_logs,
        paths,
    };
    let tcp = tcp_proxy_filter(
        INBOUND_PASSTHROUGH_CLUSTER,
        INBOUND_PASSTHROUGH_CLUSTER,
        access_logs,
    );
    let passthrough = Passthrough {
        tcp: with_network_rbac(&network_rbac, tcp),
        http: vec![hcm_filter(inbound_hcm(
            0,
            INBOUND_PASSTHROUGH_CLUSTER,
            &policy,
        ))],
    };
    sniffing |= policy.mtls.accepts_plaintext();
    chains.extend(passthrough_chains(policy.mtls, passthrough));
    Inbound {
        listeners: vec![virtual_inbound(node, chains, sniffing)],
        clusters,
    }
}

/// The listener on 15006; `sniffing`: some chain needs plaintext HTTP told apart.
fn virtual_inbound(node: &NodeInfo, chains: Vec<FilterChain>, sniffing: bool) -> Listener {
    let mut listener_filters = vec![original_dst_filter(), tls_inspector()];
    if sniffing {
        listener_filters.push(http_inspector());
    }
    detection_timeout(Listener {
        name: VIRTUAL_INBOUND.into(),
        address: Some(socket_address(unspecified(node.ip), VIRTUAL_INBOUND_PORT)),
        filter_chains: chains,
        listener_filters,
        traffic_direction: TrafficDirection::Inbound as i32,
        ..Default::default()
    })
}

/// The workload's ports that some Service of its namespace sends traffic
/// to (its endpoint ports at the workload's IP), with their protocol. A
/// port two Services declare differently counts as HTTP when either does,
/// else as undeclared (sniffed) when either leaves it so.
pub(crate) fn declared_ports(snapshot: &Snapshot, node: &NodeInfo) -> BTreeMap<u16, Protocol> {
    let mut ports = BTreeMap::new();
    let services = snapshot
        .registry
        .services()
        .iter()
        .filter(|s| s.namespace == node.namespace && s.selects(&node.labels));
    for service in services {
        for service_port in &service.ports {
            for endpoint in snapshot.registry.endpoints(service, service_port) {
                if endpoint.address.ip() != node.ip {
                    continue;
                }
                let protocol = ports
                    .entry(endpoint.address.port())
                    .or_insert(service_port.protocol);
                if precedence(service_port.protocol) > precedence(*protocol) {
                    *protocol = service_port.protocol;
                }
            }
        }
    }
    ports
}

/// AuthorizationPolicy's network filters, then `proxy`.
fn with_network_rbac(rbac: &[Filter], proxy: Filter) -> Vec<Filter> {
    rbac.iter().cloned().chain([proxy]).collect()
}

/// What a port's chains are for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Carries {
    /// Whatever arrives (or what is left once HTTP has its chains).
    Any,
    /// HTTP told apart by sniffing or by the mesh mTLS ALPN.
    Http,
}

fn precedence(protocol: Protocol) -> u8 {
    match protocol {
        Protocol::Tcp => 0,
        Protocol::Unknown => 1,
        Protocol::Http | Protocol::Http2 | Protocol::Grpc => 2,
    }
}

/// A TLS and/or a plaintext chain for `port`, as PeerAuthentication allows.
fn port_chains(
    port: u16,
    policy: &InboundPolicy<'_>,
    filters: Vec<Filter>,
    carries: Carries,
) -> Vec<FilterChain> {
    let chain = |transport: &str, socket: Option<TransportSocket>| FilterChain {
        name: match carries {
            Carries::Any => format!("inbound_{port}_{transport}"),
            Carries::Http => format!("inbound_{port}_{transport}_http"),
        },
        filter_chain_match: Some(FilterChainMatch {
            destination_port: Some(uint32(port.into())),
            transport_protocol: transport.into(),
            application_protocols: match (carries, transport) {
                (Carries::Any, _) => Vec::new(),
                (Carries::Http, "tls") => MTLS_HTTP_ALPN.map(String::from).to_vec(),
                (Carries::Http, _) => PLAINTEXT_HTTP_ALPN.map(String::from).to_vec(),
            },
            ..Default::default()
        }),
        filters: filters.clone(),
        transport_socket: socket,
        ..Default::default()
    };
    let mut chains = Vec::new();
    if policy.mtls.accepts_tls() {
        chains.push(chain("tls", Some(mesh_mtls_socket())));
    }
    if policy.mtls.accepts_plaintext() {
        chains.push(chain("raw_buffer", None));
    }
    chains
}

/// What passthrough traffic runs through: sniffed HTTP, and the rest.
struct Passthrough {
    tcp: Vec<Filter>,
    http: Vec<Filter>,
}

/// Ports no Service declares: mesh mTLS (told by its ALPN) is terminated
/// and the bytes passed on, as are plaintext and other TLS when the
/// workload's mode allows plaintext. Plaintext HTTP, sniffed, goes through
/// the connection manager (Istio's `inbound|http|0`) to its original
/// destination, so that HTTP AuthorizationPolicy and metrics see requests.
fn passthrough_chains(mtls: InboundMtls, filters: Passthrough) -> Vec<FilterChain> {
    let chain = |name: &str, transport: &str, alpn: &[&str], filters: &[Filter]| FilterChain {
        name: name.into(),
        filter_chain_match: Some(FilterChainMatch {
            transport_protocol: transport.into(),
            application_protocols: alpn.iter().map(|a| a.to_string()).collect(),
            ..Default::default()
        }),
        filters: filters.to_vec(),
        ..Default::default()
    };
    let tcp = &filters.tcp;
    let mut chains = Vec::new();
    if mtls.accepts_tls() {
        chains.push(FilterChain {
            transport_socket: Some(mesh_mtls_socket()),
            ..chain("virtualInbound-mtls", "tls", &MESH_ALPN, tcp)
        });
    }
    if mtls.accepts_plaintext() {
        chains.push(chain("virtualInbound-tls", "tls", &[], tcp));
        let http = &filters.http;
        chains.push(chain(
            "virtualInbound-raw-http",
            "raw_buffer",
            &PLAINTEXT_HTTP_ALPN,
            http,
        ));
        chains.push(chain("virtualInbound-raw", "raw_buffer", &[], tcp));
    }
    chains
}

/// ALPN values only sidecars offer, which tell mesh mTLS from the app's own TLS.
const MESH_ALPN: [&str; 3] = ["istio-h2", "istio-http/1.1", "istio"];

/// A connection to 15006 itself would loop through the proxy forever.
fn loop_guard(access_logs: &[AccessLog]) -> FilterChain {
    FilterChain {
        name: "virtualInbound-blackhole".into(),
        filter_chain_match: Some(FilterChainMatch {
            destination_port: Some(uint32(VIRTUAL_INBOUND_PORT.into())),
            ..Default::default()
        }),
        filters: vec![tcp_proxy_filter(
            BLACKHOLE_CLUSTER,
            BLACKHOLE_CLUSTER,
            access_logs,
        )],
        ..Default::default()
    }
}
