//! Outbound clusters: one per Service port, plus one per DestinationRule
//! subset, secured with mesh mTLS unless a DestinationRule disables TLS.

use std::collections::BTreeMap;
use std::time::Duration;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::cluster::v3::cluster::{
    ClusterDiscoveryType, DiscoveryType, EdsClusterConfig, LbPolicy,
};
use envoy_types::pb::envoy::config::core::v3::{
    AggregatedConfigSource, ConfigSource, config_source,
};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::UpstreamTlsContext;
use trellis_api::{DestinationRule, Resource, TlsMode};
use trellis_config::{MeshService, MeshServicePort, Snapshot};

use crate::build::{duration, mesh_tls_context, tls_socket};
use crate::names::{outbound_cluster_name, outbound_sni};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The mesh ALPN a sidecar offers, so the peer knows it is talking to a
/// sidecar and which HTTP version follows.
const MESH_ALPN: &str = "istio-http/1.1";

/// A cluster and what its endpoints are chosen from.
pub struct OutboundCluster {
    pub cluster: Cluster,
    pub service: MeshService,
    pub port: MeshServicePort,
    /// Labels an endpoint must carry (a subset's); empty for the whole service.
    pub subset_labels: BTreeMap<String, String>,
}

pub fn outbound(snapshot: &Snapshot) -> Vec<OutboundCluster> {
    let mut clusters = Vec::new();
    for service in snapshot.registry.services() {
        let rule = destination_rule(snapshot, service);
        let peers = peer_identities(snapshot, service);
        for port in &service.ports {
            let mut subsets = vec![(String::new(), BTreeMap::new())];
            if let Some(rule) = rule {
                subsets.extend(
                    rule.spec
                        .subsets
                        .iter()
                        .map(|s| (s.name.clone(), s.labels.clone())),
                );
            }
            for (subset, labels) in subsets {
                let mtls = mtls_enabled(rule, &subset);
                clusters.push(OutboundCluster {
                    cluster: eds_cluster(
                        service,
                        port.port,
                        &subset,
                        mtls.then_some(peers.as_slice()),
                    ),
                    service: service.clone(),
                    port: port.clone(),
                    subset_labels: labels,
                });
            }
        }
    }
    clusters
}

/// The DestinationRule for a service (the first by name, as Istio picks the
/// oldest when several apply).
pub fn destination_rule<'a>(
    snapshot: &'a Snapshot,
    service: &MeshService,
) -> Option<&'a Resource<DestinationRule>> {
    snapshot.destination_rules().find(|rule| {
        snapshot
            .registry
            .service_by_host(&rule.spec.host, rule.namespace())
            .is_some_and(|s| s.hostname == service.hostname)
    })
}

/// Istio's auto mTLS: mesh mTLS unless the rule (or the subset's own
/// policy) sets TLS mode DISABLE.
fn mtls_enabled(rule: Option<&Resource<DestinationRule>>, subset: &str) -> bool {
    let Some(rule) = rule else { return true };
    let subset_policy = rule
        .spec
        .subsets
        .iter()
        .find(|s| s.name == subset)
        .and_then(|s| s.traffic_policy.as_ref());
    let tls = subset_policy.and_then(|p| p.tls.as_ref()).or_else(|| {
        rule.spec
            .traffic_policy
            .as_ref()
            .and_then(|p| p.tls.as_ref())
    });
    tls.is_none_or(|tls| tls.mode != TlsMode::Disable)
}

/// SPIFFE IDs of the service accounts that run the service's workloads.
fn peer_identities(snapshot: &Snapshot, service: &MeshService) -> Vec<String> {
    let mut ids: Vec<String> = service
        .ports
        .iter()
        .flat_map(|port| snapshot.registry.endpoints(service, port))
        .map(|e| {
            format!(
                "spiffe://cluster.local/ns/{}/sa/{}",
                e.namespace, e.service_account
            )
        })
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

fn eds_cluster(
    service: &MeshService,
    port: u16,
    subset: &str,
    mtls_peers: Option<&[String]>,
) -> Cluster {
    let name = outbound_cluster_name(port, subset, &service.hostname);
    let transport_socket = mtls_peers.map(|peers| {
        tls_socket(UpstreamTlsContext {
            common_tls_context: Some(mesh_tls_context(peers, &[MESH_ALPN])),
            sni: outbound_sni(port, subset, &service.hostname),
            ..Default::default()
        })
    });
    Cluster {
        name,
        cluster_discovery_type: Some(ClusterDiscoveryType::Type(DiscoveryType::Eds as i32)),
        eds_cluster_config: Some(EdsClusterConfig {
            eds_config: Some(ads_config_source()),
            ..Default::default()
        }),
        connect_timeout: Some(duration(CONNECT_TIMEOUT)),
        lb_policy: LbPolicy::RoundRobin as i32,
        transport_socket,
        ..Default::default()
    }
}

pub fn ads_config_source() -> ConfigSource {
    ConfigSource {
        config_source_specifier: Some(config_source::ConfigSourceSpecifier::Ads(
            AggregatedConfigSource {},
        )),
        resource_api_version: 2, // V3
        ..Default::default()
    }
}
