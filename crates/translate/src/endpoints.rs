//! ClusterLoadAssignments for the EDS clusters: the service's endpoints,
//! narrowed to a subset's labels, with Istio's workload metadata.

use envoy_types::pb::envoy::config::core::v3::Metadata;
use envoy_types::pb::envoy::config::endpoint::v3::{
    ClusterLoadAssignment, Endpoint, LbEndpoint, LocalityLbEndpoints, lb_endpoint::HostIdentifier,
};
use envoy_types::pb::google::protobuf::{Struct, Value, value::Kind};
use trellis_config::{MeshEndpoint, Snapshot};

use crate::build::{socket_address, uint32};
use crate::clusters::OutboundCluster;

pub fn for_clusters(
    snapshot: &Snapshot,
    clusters: &[OutboundCluster],
) -> Vec<ClusterLoadAssignment> {
    clusters
        .iter()
        .map(|outbound| {
            let lb_endpoints = snapshot
                .registry
                .endpoints(&outbound.service, &outbound.port)
                .iter()
                .filter(|e| {
                    outbound
                        .subset_labels
                        .iter()
                        .all(|(k, v)| e.labels.get(k) == Some(v))
                })
                .map(lb_endpoint)
                .collect();
            ClusterLoadAssignment {
                cluster_name: outbound.cluster.name.clone(),
                endpoints: vec![LocalityLbEndpoints {
                    lb_endpoints,
                    load_balancing_weight: Some(uint32(1)),
                    ..Default::default()
                }],
                ..Default::default()
            }
        })
        .collect()
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
