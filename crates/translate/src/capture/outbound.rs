//! The outbound side of a capture-mode sidecar: `virtualOutbound` on 15001,
//! a listener per HTTP port with a Service VIP (`0.0.0.0_9080`, route
//! `9080`) and per TCP Service VIP (`10.96.0.20_3306`), none of them
//! bound to a port.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use envoy_types::pb::envoy::config::accesslog::v3::AccessLog;
use envoy_types::pb::envoy::config::core::v3::{CidrRange, TrafficDirection};
use envoy_types::pb::envoy::config::listener::v3::{
    Filter, FilterChain, FilterChainMatch, Listener,
};
use envoy_types::pb::envoy::config::route::v3::{RouteConfiguration, VirtualHost};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, Rds, http_connection_manager::CodecType,
    http_connection_manager::RouteSpecifier,
};
use envoy_types::pb::google::protobuf::BoolValue;
use trellis_config::{MeshService, Protocol, Snapshot};
use trellis_xds::NodeInfo;

use super::passthrough;
use super::sniffing::{PLAINTEXT_HTTP_ALPN, detection_timeout, http_inspector};
use super::{
    BLACKHOLE_CLUSTER, OutboundTrafficPolicy, PASSTHROUGH_CLUSTER, tcp_proxy_filter, unspecified,
};
use crate::build::{router_filter, socket_address, uint32};
use crate::clusters::ads_config_source;
use crate::listeners::hcm_filter;
use crate::names::{VIRTUAL_OUTBOUND, outbound_cluster_name};

pub struct Outbound {
    pub listeners: Vec<Listener>,
    pub routes: Vec<RouteConfiguration>,
}

pub fn outbound(
    snapshot: &Snapshot,
    node: &NodeInfo,
    policy: OutboundTrafficPolicy,
    access_logs: &[AccessLog],
) -> Outbound {
    let mut listeners = vec![virtual_outbound(node, policy, access_logs)];
    let mut vips_by_port: BTreeMap<u16, PortVips<'_>> = BTreeMap::new();
    for service in snapshot.registry.services() {
        let Some(vip) = service.cluster_ip else {
            // A ServiceEntry host without addresses is reached by name:
            // HTTP to any address on its port, routed by the Host header.
            for port in service.ports.iter().filter(|p| p.protocol.is_http()) {
                if service.entry.is_some() {
                    vips_by_port.entry(port.port).or_default();
                }
            }
            continue;
        };
        for port in service.ports.iter().filter(|p| p.protocol != Protocol::Tcp) {
            let vips = vips_by_port.entry(port.port).or_default();
            if port.protocol == Protocol::Unknown {
                vips.sniffed.push((vip, service));
            } else {
                vips.http.insert(vip);
            }
        }
    }
    listeners.extend(
        vips_by_port
            .iter()
            .map(|(&port, vips)| http_listener(node, port, vips, policy, access_logs)),
    );
    listeners.extend(tcp_listeners(snapshot, access_logs));
    let all_hosts = crate::routes::http_proxy(snapshot, node);
    let routes = vips_by_port
        .keys()
        .map(|&port| port_route(snapshot, node, port, &all_hosts, policy))
        .collect();
    Outbound { listeners, routes }
}

/// The Service VIPs of one port.
#[derive(Default)]
struct PortVips<'a> {
    /// Of Services that declare the port HTTP.
    http: BTreeSet<IpAddr>,
    /// Of Services that leave its protocol undeclared: sniffed.
    sniffed: Vec<(IpAddr, &'a MeshService)>,
}

fn virtual_outbound(
    node: &NodeInfo,
    policy: OutboundTrafficPolicy,
    access_logs: &[AccessLog],
) -> Listener {
    let catch_all = catch_all_cluster(policy);
    // A connection to 15001 itself would loop through the proxy forever.
    let loop_guard = FilterChain {
        name: "virtualOutbound-blackhole".into(),
        filter_chain_match: Some(FilterChainMatch {
            destination_port: Some(uint32(node.outbound_port.into())),
            ..Default::default()
        }),
        filters: vec![tcp_proxy_filter(
            BLACKHOLE_CLUSTER,
            BLACKHOLE_CLUSTER,
            access_logs,
        )],
        ..Default::default()
    };
    let passthrough = FilterChain {
        name: "virtualOutbound-catchall-tcp".into(),
        filters: vec![tcp_proxy_filter(catch_all, catch_all, access_logs)],
        ..Default::default()
    };
    Listener {
        name: VIRTUAL_OUTBOUND.into(),
        address: Some(socket_address(unspecified(node.ip), node.outbound_port)),
        filter_chains: vec![loop_guard, passthrough],
        use_original_dst: Some(BoolValue { value: true }),
        traffic_direction: TrafficDirection::Outbound as i32,
        ..Default::default()
    }
}

/// HTTP to a Service VIP on `port` goes through the router (on an
/// undeclared port, once sniffed as HTTP; anything else there goes to the
/// Service as TCP). So does HTTP to any other address on the port, as in
/// Istio, where the route's catch-all passes it to its original
/// destination (or refuses it); other bytes are passed through as TCP (or
/// refused).
fn http_listener(
    node: &NodeInfo,
    port: u16,
    vips: &PortVips<'_>,
    policy: OutboundTrafficPolicy,
    access_logs: &[AccessLog],
) -> Listener {
    let address = unspecified(node.ip);
    let hcm = hcm_filter(port_hcm(address, port, access_logs));
    let mut chains = Vec::new();
    if !vips.http.is_empty() {
        let name = format!("outbound_{address}_{port}");
        chains.push(vip_chain(name, vips.http.iter().copied(), &[], hcm.clone()));
    }
    if !vips.sniffed.is_empty() {
        let name = format!("outbound_{address}_{port}_http");
        let sniffed = vips.sniffed.iter().map(|&(vip, _)| vip);
        chains.push(vip_chain(name, sniffed, &PLAINTEXT_HTTP_ALPN, hcm.clone()));
        chains.extend(vips.sniffed.iter().map(|&(vip, service)| {
            let cluster = outbound_cluster_name(port, "", &service.hostname);
            let proxy = tcp_proxy_filter(&cluster, &cluster, access_logs);
            vip_chain(cluster, [vip], &[], proxy)
        }));
    }
    let any_address = format!("outbound_{address}_{port}_passthrough_http");
    chains.push(vip_chain(any_address, [], &PLAINTEXT_HTTP_ALPN, hcm));
    let catch_all = catch_all_cluster(policy);
    let passthrough = FilterChain {
        name: "PassthroughFilterChain".into(),
        filters: vec![tcp_proxy_filter(catch_all, catch_all, access_logs)],
        ..Default::default()
    };
    chains.push(passthrough);
    // Sniffed here, by the listener that serves the handed-off connection
    // (an Envoy would need the inspector on virtualOutbound).
    detection_timeout(Listener {
        name: format!("{address}_{port}"),
        address: Some(socket_address(address, port)),
        filter_chains: chains,
        bind_to_port: Some(BoolValue { value: false }),
        traffic_direction: TrafficDirection::Outbound as i32,
        listener_filters: vec![http_inspector()],
        ..Default::default()
    })
}

/// The connection manager of port `port`'s listener (RDS route `PORT`).
fn port_hcm(address: IpAddr, port: u16, access_logs: &[AccessLog]) -> HttpConnectionManager {
    HttpConnectionManager {
        stat_prefix: format!("outbound_{address}_{port}"),
        codec_type: CodecType::Auto as i32,
        route_specifier: Some(RouteSpecifier::Rds(Rds {
            config_source: Some(ads_config_source()),
            route_config_name: port.to_string(),
        })),
        http_filters: vec![
            crate::cors::cors_filter(),
            crate::fault::fault_filter(),
            router_filter(),
        ],
        access_log: access_logs.to_vec(),
        ..Default::default()
    }
}

/// A chain for connections to `vips` (offering `alpn`, if any).
fn vip_chain(
    name: String,
    vips: impl IntoIterator<Item = IpAddr>,
    alpn: &[&str],
    filter: Filter,
) -> FilterChain {
    FilterChain {
        name,
        filter_chain_match: Some(FilterChainMatch {
            prefix_ranges: vips.into_iter().map(host_range).collect(),
            application_protocols: alpn.iter().map(|a| a.to_string()).collect(),
            ..Default::default()
        }),
        filters: vec![filter],
        ..Default::default()
    }
}

fn host_range(ip: IpAddr) -> CidrRange {
    CidrRange {
        address_prefix: ip.to_string(),
        prefix_len: Some(uint32(if ip.is_ipv4() { 32 } else { 128 })),
    }
}

fn catch_all_cluster(policy: OutboundTrafficPolicy) -> &'static str {
    match policy {
        OutboundTrafficPolicy::AllowAny => PASSTHROUGH_CLUSTER,
        OutboundTrafficPolicy::RegistryOnly => BLACKHOLE_CLUSTER,
    }
}

/// A listener per TCP port of every Service with a virtual IP.
fn tcp_listeners(snapshot: &Snapshot, access_logs: &[AccessLog]) -> Vec<Listener> {
    let mut listeners = Vec::new();
    for service in snapshot.registry.services() {
        let Some(vip) = service.cluster_ip else {
            continue;
        };
        for port in service.ports.iter().filter(|p| p.protocol == Protocol::Tcp) {
            let cluster = outbound_cluster_name(port.port, "", &service.hostname);
            listeners.push(Listener {
                name: format!("{vip}_{}", port.port),
                address: Some(socket_address(vip, port.port)),
                filter_chains: vec![FilterChain {
                    filters: vec![tcp_proxy_filter(&cluster, &cluster, access_logs)],
                    ..Default::default()
                }],
                bind_to_port: Some(BoolValue { value: false }),
                traffic_direction: TrafficDirection::Outbound as i32,
                ..Default::default()
            });
        }
    }
    listeners
}

/// The routes of one port: the virtual hosts of every Service with that
/// port (routed as the explicit proxy routes them, reached by every name
/// and by the Service's VIP), hosts that are no Service, and Istio's
/// catch-all for destinations outside the registry.
fn port_route(
    snapshot: &Snapshot,
    node: &NodeInfo,
    port: u16,
    all_hosts: &RouteConfiguration,
    policy: OutboundTrafficPolicy,
) -> RouteConfiguration {
    let mut virtual_hosts = Vec::new();
    for vhost in &all_hosts.virtual_hosts {
        match service_of(snapshot, &vhost.name) {
            Some((service, vhost_port)) if vhost_port == port => virtual_hosts.push(VirtualHost {
                domains: domains(service, port, node),
                ..vhost.clone()
            }),
            Some(_) => {}
            None => virtual_hosts.push(vhost.clone()),
        }
    }
    virtual_hosts.push(passthrough::catch_all(policy));
    RouteConfiguration {
        name: port.to_string(),
        virtual_hosts,
        validate_clusters: Some(BoolValue { value: false }),
        ..Default::default()
    }
}

/// The Service and port a `HOSTNAME:PORT` virtual host was made for.
fn service_of<'a>(snapshot: &'a Snapshot, vhost_name: &str) -> Option<(&'a MeshService, u16)> {
    let (host, port) = vhost_name.rsplit_once(':')?;
    let port = port.parse().ok()?;
    let service = snapshot
        .registry
        .services()
        .iter()
        .find(|s| s.hostname == host && s.port(port).is_some())?;
    Some((service, port))
}

/// Every name a client may use for the Service, as Istio lists them: the
/// short name only from the Service's own namespace, each with and without
/// the port.
fn domains(service: &MeshService, port: u16, node: &NodeInfo) -> Vec<String> {
    let mut names = vec![service.hostname.clone()];
    // A ServiceEntry host has no Kubernetes short names.
    if service.entry.is_none() {
        names.push(format!("{}.{}.svc", service.name, service.namespace));
        names.push(format!("{}.{}", service.name, service.namespace));
    }
    if service.namespace == node.namespace && service.entry.is_none() {
        names.push(service.name.clone());
    }
    if let Some(vip) = service.cluster_ip {
        names.push(match vip {
            IpAddr::V4(v4) => v4.to_string(),
            IpAddr::V6(v6) => format!("[{v6}]"),
        });
    }
    names
        .into_iter()
        .flat_map(|name| [format!("{name}:{port}"), name])
        .collect()
}
