use std::sync::Arc;

use envoy_types::pb::envoy::config::cluster::v3::cluster::ClusterDiscoveryType;
use envoy_types::pb::envoy::config::core::v3::{Address, SocketAddress};
use envoy_types::pb::envoy::config::endpoint::v3::{
    ClusterLoadAssignment, Endpoint as XdsEndpoint, LbEndpoint, LocalityLbEndpoints,
};
use envoy_types::pb::google::protobuf::{Duration as ProtoDuration, UInt32Value};
use trellis_ca::SpiffeId;

use super::*;
use crate::cluster::ClusterSpec;
use crate::identity::Identity;

fn endpoint(host: &str, port: u32, weight: u32) -> LbEndpoint {
    LbEndpoint {
        host_identifier: Some(HostIdentifier::Endpoint(XdsEndpoint {
            address: Some(Address {
                address: Some(address::Address::SocketAddress(SocketAddress {
                    address: host.into(),
                    port_specifier: Some(PortSpecifier::PortValue(port)),
                    ..Default::default()
                })),
            }),
            ..Default::default()
        })),
        load_balancing_weight: Some(UInt32Value { value: weight }),
        ..Default::default()
    }
}

#[allow(deprecated)]
fn dns_cluster(kind: DiscoveryType, endpoints: Vec<LbEndpoint>) -> xds::Cluster {
    xds::Cluster {
        name: "outbound|80||external.test".into(),
        cluster_discovery_type: Some(ClusterDiscoveryType::Type(kind as i32)),
        dns_lookup_family: DnsLookupFamily::V4Only as i32,
        dns_refresh_rate: Some(ProtoDuration {
            seconds: 0,
            nanos: 50_000_000,
        }),
        load_assignment: Some(ClusterLoadAssignment {
            cluster_name: "outbound|80||external.test".into(),
            endpoints: vec![LocalityLbEndpoints {
                lb_endpoints: endpoints,
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn addresses(endpoints: &[Endpoint]) -> Vec<(String, u32)> {
    endpoints
        .iter()
        .map(|e| (e.address.to_string(), e.weight))
        .collect()
}

#[tokio::test]
async fn strict_dns_uses_every_address_of_every_name() {
    let cluster = dns_cluster(
        DiscoveryType::StrictDns,
        vec![endpoint("localhost", 8080, 1), endpoint("127.0.0.9", 81, 3)],
    );
    let discovery = DnsDiscovery::compile(&cluster, DiscoveryType::StrictDns).unwrap();
    assert_eq!(discovery.refresh, Duration::from_millis(50));
    let resolved = discovery.resolve().await.unwrap();
    let found = addresses(&resolved);
    assert!(found.contains(&("127.0.0.1:8080".into(), 1)), "{found:?}");
    assert!(found.contains(&("127.0.0.9:81".into(), 3)), "{found:?}");
    assert!(
        found.iter().all(|(a, _)| !a.starts_with('[')),
        "V4_ONLY: {found:?}"
    );
}

#[tokio::test]
async fn an_unresolvable_name_keeps_what_the_cluster_has() {
    let cluster = dns_cluster(
        DiscoveryType::StrictDns,
        vec![endpoint("no-such-host.invalid", 80, 1)],
    );
    let discovery = DnsDiscovery::compile(&cluster, DiscoveryType::StrictDns).unwrap();
    assert_eq!(discovery.resolve().await, None);
}

#[test]
fn logical_dns_takes_exactly_one_name() {
    let two = vec![endpoint("localhost", 80, 1), endpoint("127.0.0.9", 80, 1)];
    let cluster = dns_cluster(DiscoveryType::LogicalDns, two);
    assert!(DnsDiscovery::compile(&cluster, DiscoveryType::LogicalDns).is_err());
    let mut cluster = dns_cluster(DiscoveryType::StrictDns, vec![endpoint("", 80, 1)]);
    assert!(DnsDiscovery::compile(&cluster, DiscoveryType::StrictDns).is_err());
    cluster.load_assignment = None;
    assert!(DnsDiscovery::compile(&cluster, DiscoveryType::StrictDns).is_err());
}

#[test]
#[allow(deprecated)]
fn ttls_are_refused_since_the_system_resolver_gives_none() {
    let mut cluster = dns_cluster(DiscoveryType::StrictDns, vec![endpoint("localhost", 80, 1)]);
    assert!(DnsDiscovery::compile(&cluster, DiscoveryType::StrictDns).is_ok());
    cluster.respect_dns_ttl = true;
    let refused = DnsDiscovery::compile(&cluster, DiscoveryType::StrictDns).unwrap_err();
    assert!(refused.to_string().contains("respect_dns_ttl"), "{refused}");
}

#[test]
fn lookup_families_filter_and_prefer() {
    let all: Vec<SocketAddr> = ["[::1]:80", "127.0.0.1:80", "127.0.0.1:80", "[::2]:80"]
        .iter()
        .map(|a| a.parse().unwrap())
        .collect();
    let pick = |family: Family| -> Vec<String> {
        family
            .select(all.clone())
            .iter()
            .map(ToString::to_string)
            .collect()
    };
    assert_eq!(pick(Family::V4Only), ["127.0.0.1:80"]);
    assert_eq!(pick(Family::V6Only), ["[::1]:80", "[::2]:80"]);
    assert_eq!(pick(Family::V4Preferred), ["127.0.0.1:80"]);
    assert_eq!(pick(Family::V6Preferred), ["[::1]:80", "[::2]:80"]);
    assert_eq!(pick(Family::All).len(), 3);
    let v6_only: Vec<SocketAddr> = vec!["[::1]:80".parse().unwrap()];
    assert_eq!(Family::V4Preferred.select(v6_only).len(), 1);
}

#[tokio::test]
async fn a_started_cluster_resolves_and_stops_with_the_cluster() {
    let xds = dns_cluster(DiscoveryType::LogicalDns, vec![endpoint("localhost", 9, 1)]);
    let spec = ClusterSpec::compile(&xds).unwrap();
    assert!(!spec.eds && spec.static_endpoints.is_empty());
    let identity = Identity::new(SpiffeId::new("cluster.local", "default", "test"));
    let cluster = Cluster::start(Cluster::new(spec, identity));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while cluster.endpoints().is_empty() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let endpoints = cluster.endpoints();
    assert_eq!(endpoints.len(), 1, "LOGICAL_DNS: the first address only");
    assert_eq!(endpoints[0].address.to_string(), "127.0.0.1:9");
    let weak = Arc::downgrade(&cluster);
    drop(cluster);
    assert!(
        weak.upgrade().is_none(),
        "the refresh task holds no strong reference"
    );
}
