//! `loadBalancer` as Istio's `applyLoadBalancer` writes it. An unset (or
//! UNSPECIFIED) `simple` is LEAST_REQUEST, Istio's default since 1.14;
//! LEAST_CONN is Istio's deprecated name for LEAST_REQUEST; PASSTHROUGH
//! sends each request to its original destination (an ORIGINAL_DST
//! cluster); consistent hashing is RING_HASH unless the rule asks for
//! MAGLEV (the hash key itself goes on the routes). Locality settings are
//! written per proxy ([`super::locality`]).

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::cluster::v3::cluster::{
    ClusterDiscoveryType, DiscoveryType, LbConfig, LbPolicy, LeastRequestLbConfig, MaglevLbConfig,
    RingHashLbConfig, RoundRobinLbConfig, SlowStartConfig,
};
use envoy_types::pb::envoy::config::core::v3::RuntimeDouble;
use envoy_types::pb::envoy::r#type::v3::Percent;
use envoy_types::pb::google::protobuf::UInt64Value;
use trellis_api::{ConsistentHashLb, LoadBalancerSettings, SimpleLb, parse_duration};

use crate::build::duration;

/// Envoy's default ring size, which Istio writes out when the rule names none.
const DEFAULT_MINIMUM_RING_SIZE: u64 = 1024;

pub fn apply(cluster: &mut Cluster, lb: &LoadBalancerSettings) {
    match lb.simple {
        Some(SimpleLb::LeastConn | SimpleLb::LeastRequest | SimpleLb::Unspecified) | None => {
            cluster.lb_policy = LbPolicy::LeastRequest as i32;
            if let Some(slow_start) = slow_start(lb) {
                cluster.lb_config = Some(LbConfig::LeastRequestLbConfig(LeastRequestLbConfig {
                    slow_start_config: Some(slow_start),
                    ..Default::default()
                }));
            }
        }
        Some(SimpleLb::Random) => cluster.lb_policy = LbPolicy::Random as i32,
        Some(SimpleLb::Passthrough) => {
            cluster.lb_policy = LbPolicy::ClusterProvided as i32;
            cluster.cluster_discovery_type = Some(ClusterDiscoveryType::Type(
                DiscoveryType::OriginalDst as i32,
            ));
            cluster.eds_cluster_config = None;
            cluster.load_assignment = None;
        }
        Some(SimpleLb::RoundRobin) => {
            cluster.lb_policy = LbPolicy::RoundRobin as i32;
            if let Some(slow_start) = slow_start(lb) {
                cluster.lb_config = Some(LbConfig::RoundRobinLbConfig(RoundRobinLbConfig {
                    slow_start_config: Some(slow_start),
                }));
            }
        }
    }
    if let Some(hash) = &lb.consistent_hash {
        apply_consistent_hash(cluster, hash);
    }
}

fn apply_consistent_hash(cluster: &mut Cluster, hash: &ConsistentHashLb) {
    if let Some(maglev) = &hash.maglev {
        cluster.lb_policy = LbPolicy::Maglev as i32;
        cluster.lb_config = maglev.table_size.filter(|size| *size > 0).map(|size| {
            LbConfig::MaglevLbConfig(MaglevLbConfig {
                table_size: Some(UInt64Value { value: size }),
            })
        });
        return;
    }
    cluster.lb_policy = LbPolicy::RingHash as i32;
    let minimum = match &hash.ring_hash {
        Some(ring) => ring.minimum_ring_size.filter(|size| *size > 0),
        None => Some(
            hash.minimum_ring_size
                .filter(|size| *size > 0)
                .unwrap_or(DEFAULT_MINIMUM_RING_SIZE),
        ),
    };
    cluster.lb_config = minimum.map(|size| {
        LbConfig::RingHashLbConfig(RingHashLbConfig {
            minimum_ring_size: Some(UInt64Value { value: size }),
            ..Default::default()
        })
    });
}

/// Envoy's slow start from `warmup` (or the older `warmupDurationSecs`).
fn slow_start(lb: &LoadBalancerSettings) -> Option<SlowStartConfig> {
    let warmup = lb.warmup.as_ref();
    let window = warmup
        .and_then(|w| w.duration.as_deref())
        .or(lb.warmup_duration_secs.as_deref())
        .and_then(|text| parse_duration(text).ok())
        .filter(|window| !window.is_zero())?;
    Some(SlowStartConfig {
        slow_start_window: Some(duration(window)),
        aggression: warmup
            .and_then(|w| w.aggression)
            .map(|value| RuntimeDouble {
                default_value: value,
                runtime_key: String::new(),
            }),
        min_weight_percent: warmup
            .and_then(|w| w.minimum_percent)
            .map(|value| Percent { value }),
    })
}
