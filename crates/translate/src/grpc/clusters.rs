//! The sidecar's EDS clusters narrowed to what a gRPC client implements:
//! round robin, or ring hash (XX_HASH, the only hash gRPC knows) for
//! Istio's consistent hashing; circuit breakers (max requests) and outlier
//! detection as translated. gRPC rejects LEAST_REQUEST, RANDOM and
//! MAGLEV, and a TLS context without certificate providers, so those
//! become round robin, ring hash and plaintext. Endpoints go out HEALTHY
//! (the registry holds only ready ones), and every group of them with a
//! locality, empty when unknown, since gRPC rejects a group without one.

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::cluster::v3::cluster::{
    ClusterDiscoveryType, DiscoveryType, LbConfig, LbPolicy, RingHashLbConfig,
    ring_hash_lb_config::HashFunction,
};
use envoy_types::pb::envoy::config::core::v3::{HealthStatus, Locality};
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;

use crate::clusters::OutboundCluster;

pub fn is_eds(cluster: &Cluster) -> bool {
    cluster.cluster_discovery_type == Some(ClusterDiscoveryType::Type(DiscoveryType::Eds as i32))
        && cluster.eds_cluster_config.is_some()
}

pub fn grpc_cluster(outbound: &OutboundCluster) -> Cluster {
    let sidecar = &outbound.cluster;
    let hashed = [LbPolicy::RingHash as i32, LbPolicy::Maglev as i32].contains(&sidecar.lb_policy);
    let (lb_policy, lb_config) = if hashed {
        let (minimum_ring_size, maximum_ring_size) = match &sidecar.lb_config {
            Some(LbConfig::RingHashLbConfig(ring)) => {
                (ring.minimum_ring_size, ring.maximum_ring_size)
            }
            _ => (None, None),
        };
        let ring = RingHashLbConfig {
            minimum_ring_size,
            maximum_ring_size,
            hash_function: HashFunction::XxHash as i32,
        };
        (LbPolicy::RingHash, Some(LbConfig::RingHashLbConfig(ring)))
    } else {
        (LbPolicy::RoundRobin, None)
    };
    Cluster {
        name: sidecar.name.clone(),
        cluster_discovery_type: sidecar.cluster_discovery_type.clone(),
        eds_cluster_config: sidecar.eds_cluster_config.clone(),
        connect_timeout: sidecar.connect_timeout,
        lb_policy: lb_policy as i32,
        lb_config,
        circuit_breakers: sidecar.circuit_breakers.clone(),
        outlier_detection: sidecar.outlier_detection.clone(),
        ..Default::default()
    }
}

pub fn narrow_endpoints(assignments: &mut [ClusterLoadAssignment]) {
    let groups = assignments.iter_mut().flat_map(|a| &mut a.endpoints);
    for group in groups {
        group.locality.get_or_insert_with(Locality::default);
        for endpoint in &mut group.lb_endpoints {
            endpoint.health_status = HealthStatus::Healthy as i32;
        }
    }
}
