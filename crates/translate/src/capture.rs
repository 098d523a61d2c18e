//! A sidecar under transparent capture (Istio's `INTERCEPTION_MODE:
//! REDIRECT`): iptables sends the app's outbound TCP to `virtualOutbound`
//! (15001) and the workload's inbound TCP to `virtualInbound` (15006), and
//! the proxy recovers each connection's original destination. The shape is
//! Istio's sidecar config, so Envoy could run it as well:
//!
//! - `virtualOutbound` (`use_original_dst`) hands a connection to the
//!   listener for its original destination: `VIP_PORT` (TCP services) or
//!   `0.0.0.0_PORT` (HTTP on that port, RDS route `PORT`), both
//!   `bind_to_port: false`. HTTP to any address on an HTTP port is routed;
//!   a host outside the registry meets Istio's `allow_any` virtual host
//!   (to `PassthroughCluster`, the original destination) or `block_all`
//!   (502); other bytes there pass through as TCP (Istio's
//!   `PassthroughFilterChain`). Anything else takes virtualOutbound's own
//!   chain to `PassthroughCluster` (ALLOW_ANY) or `BlackHoleCluster`
//!   (REGISTRY_ONLY).
//! - `virtualInbound` picks a chain by destination port and transport
//!   (PeerAuthentication decides which exist) leading to the app on the
//!   workload's IP; undeclared ports pass through to their original
//!   destination (plaintext HTTP, sniffed, through the connection manager,
//!   so that HTTP AuthorizationPolicy and request metrics apply).
//! - A Service port of undeclared protocol is sniffed on both sides
//!   (`sniffing.rs`): HTTP gets the connection manager, the rest tcp_proxy.
//!
//! Decisions where Istio leaves room:
//! - A TCP Service without a `clusterIP` (headless, or none in the
//!   manifest) gets no outbound listener: nothing can name it by address.
//! - AuthorizationPolicy applies to TCP ports and passthrough traffic as
//!   network RBAC filters before tcp_proxy (see `security/rbac/tcp.rs`).
//! - Every outbound HTTP port is sniffed, not only those some Service
//!   leaves undeclared, so that non-HTTP bytes to other addresses on the
//!   port still pass through (Istio would send them to the connection
//!   manager, which fails them).

mod inbound;
pub(crate) use inbound::declared_ports;
mod outbound;
pub(crate) mod passthrough;
mod sniffing;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use envoy_types::pb::envoy::config::accesslog::v3::AccessLog;
use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::cluster::v3::cluster::{
    ClusterDiscoveryType, DiscoveryType, LbPolicy,
};
use envoy_types::pb::envoy::config::core::v3::{
    BindConfig, SocketAddress, socket_address::PortSpecifier,
};
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::listener::v3::{
    Filter, Listener, ListenerFilter, filter, listener_filter,
};
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use envoy_types::pb::envoy::extensions::filters::listener::original_dst::v3::OriginalDst;
use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::{
    TcpProxy, tcp_proxy::ClusterSpecifier,
};
use envoy_types::util::pack_any;
use trellis_config::Snapshot;
use trellis_xds::NodeInfo;

use crate::build::duration;
use crate::{MeshOptions, listeners::Inbound};

/// Connects to the connection's original destination (ALLOW_ANY).
pub const PASSTHROUGH_CLUSTER: &str = "PassthroughCluster";
/// Has no endpoints: connections routed here are refused (REGISTRY_ONLY).
pub const BLACKHOLE_CLUSTER: &str = "BlackHoleCluster";
/// Inbound traffic to ports no Service declares, to its original destination.
pub const INBOUND_PASSTHROUGH_CLUSTER: &str = "InboundPassthroughCluster";

/// As the outbound clusters' connect timeout.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Istio's default idle timeout of TCP proxying (one hour).
const TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(3600);

/// Istio's `outboundTrafficPolicy.mode`: what the sidecar does with traffic
/// to destinations outside the service registry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OutboundTrafficPolicy {
    /// Pass it through to its original destination (Istio's default).
    #[default]
    AllowAny,
    /// Refuse it.
    RegistryOnly,
}

/// Everything a capture-mode sidecar gets besides its outbound clusters.
pub struct Capture {
    pub inbound: Inbound,
    pub routes: Vec<RouteConfiguration>,
}

/// `visible` is the proxy's outbound view of `snapshot` (see
/// [`crate::scope`]); inbound reads the whole snapshot.
pub fn sidecar(
    snapshot: &Snapshot,
    visible: &Snapshot,
    node: &NodeInfo,
    mesh: &MeshOptions,
    access_logs: &[AccessLog],
) -> Capture {
    let (mut listeners, routes) = outbound_listeners(visible, node, mesh, access_logs);
    let inbound = workload_inbound(snapshot, node, access_logs, mesh);
    listeners.extend(inbound.listeners);
    let mut clusters = base_clusters(node);
    clusters.extend(inbound.clusters);
    Capture {
        inbound: Inbound {
            listeners,
            clusters,
        },
        routes,
    }
}

/// The outbound listeners and their routes: what every sidecar of one
/// [`crate::SharingClass`] gets alike.
pub fn outbound_listeners(
    snapshot: &Snapshot,
    node: &NodeInfo,
    mesh: &MeshOptions,
    access_logs: &[AccessLog],
) -> (Vec<Listener>, Vec<RouteConfiguration>) {
    let outbound = outbound::outbound(snapshot, node, mesh.outbound_traffic_policy, access_logs);
    (outbound.listeners, outbound.routes)
}

/// The workload's own inbound listeners and clusters.
pub fn workload_inbound(
    snapshot: &Snapshot,
    node: &NodeInfo,
    access_logs: &[AccessLog],
    mesh: &MeshOptions,
) -> Inbound {
    inbound::inbound(snapshot, node, access_logs, mesh)
}

/// Clusters every capture-mode sidecar has (they depend only on the
/// workload's address family).
pub fn base_clusters(node: &NodeInfo) -> Vec<Cluster> {
    vec![
        original_dst_cluster(PASSTHROUGH_CLUSTER),
        blackhole_cluster(),
        Cluster {
            upstream_bind_config: Some(inbound_source(node.ip)),
            ..original_dst_cluster(INBOUND_PASSTHROUGH_CLUSTER)
        },
    ]
}

/// `0.0.0.0`, or `::` for an IPv6 workload.
fn unspecified(like: IpAddr) -> IpAddr {
    match like {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    }
}

/// The source of the sidecar's connections to its own workload: 127.0.0.6
/// (`::6`), which the capture rules let through, where the workload's own
/// address would be redirected back to 15006.
fn inbound_source(like: IpAddr) -> BindConfig {
    let source = match like {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::new(127, 0, 0, 6)),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::new(0, 0, 0, 0, 0, 0, 0, 6)),
    };
    BindConfig {
        source_address: Some(SocketAddress {
            address: source.to_string(),
            port_specifier: Some(PortSpecifier::PortValue(0)),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn tcp_proxy_filter(stat_prefix: &str, cluster: &str, access_logs: &[AccessLog]) -> Filter {
    let config = TcpProxy {
        stat_prefix: stat_prefix.into(),
        cluster_specifier: Some(ClusterSpecifier::Cluster(cluster.into())),
        idle_timeout: Some(duration(TCP_IDLE_TIMEOUT)),
        access_log: access_logs.to_vec(),
        ..Default::default()
    };
    Filter {
        name: "envoy.filters.network.tcp_proxy".into(),
        config_type: Some(filter::ConfigType::TypedConfig(pack_any(config))),
    }
}

/// Restores the local address from the original destination (SO_ORIGINAL_DST).
fn original_dst_filter() -> ListenerFilter {
    ListenerFilter {
        name: "envoy.filters.listener.original_dst".into(),
        config_type: Some(listener_filter::ConfigType::TypedConfig(pack_any(
            OriginalDst::default(),
        ))),
        ..Default::default()
    }
}

fn original_dst_cluster(name: &str) -> Cluster {
    Cluster {
        name: name.into(),
        cluster_discovery_type: Some(ClusterDiscoveryType::Type(
            DiscoveryType::OriginalDst as i32,
        )),
        connect_timeout: Some(duration(CONNECT_TIMEOUT)),
        lb_policy: LbPolicy::ClusterProvided as i32,
        ..Default::default()
    }
}

fn blackhole_cluster() -> Cluster {
    Cluster {
        name: BLACKHOLE_CLUSTER.into(),
        cluster_discovery_type: Some(ClusterDiscoveryType::Type(DiscoveryType::Static as i32)),
        connect_timeout: Some(duration(CONNECT_TIMEOUT)),
        load_assignment: Some(ClusterLoadAssignment {
            cluster_name: BLACKHOLE_CLUSTER.into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}
