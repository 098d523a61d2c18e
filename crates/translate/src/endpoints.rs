//! ClusterLoadAssignments for the EDS clusters, for one proxy: the
//! service's endpoints, narrowed to a subset's labels, with Istio's
//! workload metadata, grouped by locality (weighted by their endpoints, as
//! Istio does) and given priorities and weights relative to the proxy's
//! own locality (see [`crate::cluster_policy::LocalityLb`]).

use std::collections::BTreeMap;

use envoy_types::pb::envoy::config::core::v3::{Locality as EnvoyLocality, Metadata};
use envoy_types::pb::envoy::config::endpoint::v3::{
    ClusterLoadAssignment, Endpoint, LbEndpoint, LocalityLbEndpoints, lb_endpoint::HostIdentifier,
};
use envoy_types::pb::google::protobuf::{Struct, Value, value::Kind};
use trellis_config::{MeshEndpoint, Snapshot};
use trellis_xds::NodeInfo;

use crate::build::{socket_address, uint32};
use crate::cluster_policy::Locality;
use crate::clusters::OutboundCluster;

pub fn for_clusters(
    snapshot: &Snapshot,
    node: &NodeInfo,
    clusters: &[OutboundCluster],
) -> Vec<ClusterLoadAssignment> {
    // istiod's rule: a proxy that reports no locality is where the
    // registry says its workload is.
    let proxy_locality = if node.locality.is_empty() {
        snapshot.registry.locality_of(node.ip).unwrap_or_default()
    } else {
        node.locality.as_str()
    };
    let proxy = Locality::parse(proxy_locality);
    clusters
        .iter()
        // DNS and passthrough clusters carry their endpoints themselves.
        .filter(|outbound| outbound.cluster.eds_cluster_config.is_some())
        .map(|outbound| {
            let endpoints: Vec<MeshEndpoint> = snapshot
                .registry
                .endpoints(&outbound.service, &outbound.port)
                .into_iter()
                .filter(|e| {
                    outbound
                        .subset_labels
                        .iter()
                        .all(|(k, v)| e.labels.get(k) == Some(v))
                })
                .collect();
            ClusterLoadAssignment {
                cluster_name: outbound.cluster.name.clone(),
                endpoints: locality_groups(outbound, &proxy, &node.labels, &endpoints),
                ..Default::default()
            }
        })
        .collect()
}

/// One `LocalityLbEndpoints` per (priority, locality), in that order, with
/// contiguous priorities; weighed by `distribute` when a rule applies.
fn locality_groups(
    outbound: &OutboundCluster,
    proxy: &Locality<'_>,
    proxy_labels: &BTreeMap<String, String>,
    endpoints: &[MeshEndpoint],
) -> Vec<LocalityLbEndpoints> {
    let policy = &outbound.locality;
    let mut groups: BTreeMap<(u32, &str), Vec<&MeshEndpoint>> = BTreeMap::new();
    for endpoint in endpoints {
        let locality = Locality::parse(&endpoint.locality);
        let priority = policy.priority(proxy, proxy_labels, &locality, &endpoint.labels);
        groups
            .entry((priority, endpoint.locality.as_str()))
            .or_default()
            .push(endpoint);
    }
    let mut per_locality: BTreeMap<String, u32> = BTreeMap::new();
    for ((_, locality), members) in &groups {
        *per_locality.entry(locality.to_string()).or_default() += members.len() as u32;
    }
    let distributed = policy.distributed_weights(proxy, &per_locality);
    let mut priorities: Vec<u32> = groups.keys().map(|(priority, _)| *priority).collect();
    priorities.dedup();
    groups
        .into_iter()
        .filter_map(|((priority, locality), members)| {
            let weight = match &distributed {
                Some(weights) => *weights.get(locality)?,
                None => members.len() as u32,
            };
            Some(LocalityLbEndpoints {
                locality: envoy_locality(locality),
                lb_endpoints: members.into_iter().map(lb_endpoint).collect(),
                load_balancing_weight: Some(uint32(weight)),
                // Contiguous, as Envoy expects: the rank among those in use.
                priority: priorities.partition_point(|p| *p < priority) as u32,
                ..Default::default()
            })
        })
        .collect()
}

fn envoy_locality(locality: &str) -> Option<EnvoyLocality> {
    let parsed = Locality::parse(locality);
    (!locality.is_empty()).then(|| EnvoyLocality {
        region: parsed.region.to_string(),
        zone: parsed.zone.to_string(),
        sub_zone: parsed.subzone.to_string(),
    })
}

fn lb_endpoint(endpoint: &MeshEndpoint) -> LbEndpoint {
    let label = |key: &str| endpoint.labels.get(key).map_or("unknown", String::as_str);
    // Istio's `istio.workload`: NAME;NAMESPACE;CANONICAL_SERVICE;REVISION;CLUSTER.
    // Istio names an entry's workload by this label, else by the entry.
    let workload_name = endpoint
        .labels
        .get("service.istio.io/workload-name")
        .unwrap_or(&endpoint.workload_name);
    let workload = format!(
        "{};{};{};{};Kubernetes",
        workload_name,
        endpoint.namespace,
        label("app"),
        label("version")
    );
    let istio = Struct {
        fields: [(
            "workload".to_string(),
            Value {
                kind: Some(Kind::StringValue(workload)),
            },
        )]
        .into(),
    };
    LbEndpoint {
        host_identifier: Some(HostIdentifier::Endpoint(Endpoint {
            address: Some(socket_address(
                endpoint.address.ip(),
                endpoint.address.port(),
            )),
            ..Default::default()
        })),
        metadata: Some(Metadata {
            filter_metadata: [("istio".to_string(), istio)].into(),
            ..Default::default()
        }),
        load_balancing_weight: Some(uint32(1)),
        ..Default::default()
    }
}
