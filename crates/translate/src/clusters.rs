//! Outbound clusters: one per Service (or ServiceEntry host) port, plus one
//! per DestinationRule subset, secured with mesh mTLS as Istio's auto mTLS
//! does, or with TLS the rule originates, with the rule's traffic policy
//! (see [`crate::cluster_policy`]; ServiceEntry specifics in
//! [`crate::external`]).

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
use trellis_api::{ClientTlsSettings, DestinationRule, Resource, ServiceEntryLocation, TlsMode};
use trellis_config::{MeshService, MeshServicePort, Snapshot};

use crate::build::{duration, mesh_tls_context, tls_socket};
use crate::cluster_policy::{ClusterPolicy, LocalityLb, default_circuit_breakers};
use crate::external;
use crate::names::{istio_config_metadata, outbound_cluster_name, outbound_sni};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The mesh ALPN a sidecar offers, so the peer knows it is talking to a
/// sidecar and which HTTP version follows.
const MESH_ALPN: &str = "istio-http/1.1";
const MESH_ALPN_H2: &str = "istio-h2";

/// A cluster and what its endpoints are chosen from.
pub struct OutboundCluster {
    pub cluster: Cluster,
    pub service: MeshService,
    pub port: MeshServicePort,
    /// Labels an endpoint must carry (a subset's); empty for the whole service.
    pub subset_labels: BTreeMap<String, String>,
    /// How its endpoints are prioritized and weighed by locality.
    pub locality: LocalityLb,
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
                let policy = ClusterPolicy::merged(rule.map(|r| &r.spec), &subset, port.port);
                let h2 = policy.upgrades_to_http2(port.protocol);
                let alpn = if h2 { MESH_ALPN_H2 } else { MESH_ALPN };
                let mtls = uses_mesh_tls(service, policy.tls);
                let mut cluster = eds_cluster(
                    service,
                    port.port,
                    &subset,
                    mtls.then_some((peers.as_slice(), alpn)),
                );
                if let Some(tls) = policy.tls {
                    cluster.transport_socket = cluster
                        .transport_socket
                        .take()
                        .or_else(|| external::origination_socket(tls, &service.hostname, h2));
                }
                policy.apply(&mut cluster, port.protocol);
                cluster.metadata = rule.map(istio_config_metadata);
                external::apply_resolution(&mut cluster, snapshot, service, port);
                clusters.push(OutboundCluster {
                    cluster,
                    service: service.clone(),
                    port: port.clone(),
                    subset_labels: labels,
                    locality: policy.locality(),
                });
            }
        }
    }
    clusters
}

/// Istio's auto mTLS: mesh TLS when the rule says ISTIO_MUTUAL, or says
/// nothing and the service is in the mesh (not a MESH_EXTERNAL entry).
/// SIMPLE and MUTUAL originate TLS with the user's settings instead.
fn uses_mesh_tls(service: &MeshService, tls: Option<&ClientTlsSettings>) -> bool {
    match tls.map(|tls| tls.mode) {
        Some(TlsMode::IstioMutual) => true,
        Some(TlsMode::Disable | TlsMode::Simple | TlsMode::Mutual) => false,
        None => service
            .entry
            .as_ref()
            .is_none_or(|entry| entry.location == ServiceEntryLocation::MeshInternal),
    }
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

/// SPIFFE IDs of the service accounts that run the service's workloads,
/// or the identities a ServiceEntry names in `subjectAltNames`.
fn peer_identities(snapshot: &Snapshot, service: &MeshService) -> Vec<String> {
    if let Some(entry) = service.entry.as_ref()
        && !entry.subject_alt_names.is_empty()
    {
        return entry.subject_alt_names.clone();
    }
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
    mtls: Option<(&[String], &str)>,
) -> Cluster {
    let name = outbound_cluster_name(port, subset, &service.hostname);
    let transport_socket = mtls.map(|(peers, alpn)| {
        tls_socket(UpstreamTlsContext {
            common_tls_context: Some(mesh_tls_context(peers, &[alpn])),
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
        // Istio's defaults since 1.14, whatever the DestinationRule says.
        lb_policy: LbPolicy::LeastRequest as i32,
        circuit_breakers: Some(default_circuit_breakers()),
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
