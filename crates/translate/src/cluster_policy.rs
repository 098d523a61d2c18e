//! A DestinationRule's traffic policy for one cluster, merged as Istio
//! merges it, and written into the Envoy `Cluster` as Istio's pilot does:
//! connection pool (circuit breakers, timeouts, keepalive), outlier
//! detection and the load balancer. The consistent-hash key goes on the
//! routes ([`hash_policy`]); locality priorities and weights on each
//! proxy's endpoints ([`locality`]).
//!
//! Merging: the top-level policy, replaced wholesale for a port by its
//! `portLevelSettings` entry (port-level policies do not inherit); then
//! each sub-policy the subset sets overrides that one; then the subset's
//! own `portLevelSettings` replace everything for their port.

mod connection_pool;
mod hash_policy;
mod load_balancer;
mod locality;
mod outlier;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use trellis_api::{
    ClientTlsSettings, ConnectionPoolSettings, DestinationRule, H2UpgradePolicy,
    LoadBalancerSettings, OutlierDetection, PortTrafficPolicy, TrafficPolicy,
};
use trellis_config::Protocol;

pub use connection_pool::default_circuit_breakers;
pub use hash_policy::route_hash_policy;
pub use locality::{Locality, LocalityLb};

/// The sub-policies that apply to one cluster (a service port, maybe a subset).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ClusterPolicy<'a> {
    pub connection_pool: Option<&'a ConnectionPoolSettings>,
    pub outlier_detection: Option<&'a OutlierDetection>,
    pub load_balancer: Option<&'a LoadBalancerSettings>,
    pub tls: Option<&'a ClientTlsSettings>,
}

impl<'a> ClusterPolicy<'a> {
    /// The policy of `rule` for `port` of its host, in subset `subset`
    /// (empty for the whole service).
    pub fn merged(rule: Option<&'a DestinationRule>, subset: &str, port: u16) -> ClusterPolicy<'a> {
        let Some(rule) = rule else {
            return ClusterPolicy::default();
        };
        let mut policy = rule
            .traffic_policy
            .as_ref()
            .map(|top| ClusterPolicy::of(top).for_port(top, port))
            .unwrap_or_default();
        let subset_policy = rule
            .subsets
            .iter()
            .find(|s| !subset.is_empty() && s.name == subset)
            .and_then(|s| s.traffic_policy.as_ref());
        if let Some(overrides) = subset_policy {
            let own = ClusterPolicy::of(overrides);
            policy = ClusterPolicy {
                connection_pool: own.connection_pool.or(policy.connection_pool),
                outlier_detection: own.outlier_detection.or(policy.outlier_detection),
                load_balancer: own.load_balancer.or(policy.load_balancer),
                tls: own.tls.or(policy.tls),
            }
            .for_port(overrides, port);
        }
        policy
    }

    fn of(policy: &'a TrafficPolicy) -> ClusterPolicy<'a> {
        ClusterPolicy {
            connection_pool: policy.connection_pool.as_ref(),
            outlier_detection: policy.outlier_detection.as_ref(),
            load_balancer: policy.load_balancer.as_ref(),
            tls: policy.tls.as_ref(),
        }
    }

    /// `self`, unless `policy` has settings for `port`: then those alone.
    fn for_port(self, policy: &'a TrafficPolicy, port: u16) -> ClusterPolicy<'a> {
        let matching = policy
            .port_level_settings
            .iter()
            .find(|p| p.port.is_some_and(|p| p.number == u32::from(port)));
        match matching {
            Some(PortTrafficPolicy {
                connection_pool,
                outlier_detection,
                load_balancer,
                tls,
                ..
            }) => ClusterPolicy {
                connection_pool: connection_pool.as_ref(),
                outlier_detection: outlier_detection.as_ref(),
                load_balancer: load_balancer.as_ref(),
                tls: tls.as_ref(),
            },
            None => self,
        }
    }

    /// Writes the connection pool, outlier detection and load balancer
    /// settings into `cluster` for a port speaking `protocol`, as Istio's
    /// `applyTrafficPolicy` does.
    pub fn apply(&self, cluster: &mut Cluster, protocol: Protocol) {
        connection_pool::apply(
            cluster,
            self.connection_pool,
            self.upgrades_to_http2(protocol),
        );
        if let Some(outlier) = self.outlier_detection {
            outlier::apply(cluster, outlier);
        }
        if let Some(load_balancer) = self.load_balancer {
            load_balancer::apply(cluster, load_balancer);
        }
        self.locality().apply(cluster);
    }

    /// Whether the port's upstream connections speak HTTP/2: always for
    /// HTTP2 and GRPC ports (Istio's `setH2Options`); for an HTTP/1.1 port
    /// only when the rule says UPGRADE, since the mesh default (`DEFAULT`)
    /// is Istio's DO_NOT_UPGRADE, and never with `useClientProtocol`.
    pub fn upgrades_to_http2(&self, protocol: Protocol) -> bool {
        let http = self.connection_pool.and_then(|pool| pool.http.as_ref());
        matches!(protocol, Protocol::Http2 | Protocol::Grpc)
            || protocol == Protocol::Http
                && http.is_some_and(|http| {
                    http.h2_upgrade_policy == Some(H2UpgradePolicy::Upgrade)
                        && http.use_client_protocol != Some(true)
                })
    }

    /// The cluster's locality load balancing (on unless the rule turns it
    /// off, as Istio's mesh default).
    pub fn locality(&self) -> LocalityLb {
        let setting = self
            .load_balancer
            .and_then(|lb| lb.locality_lb_setting.as_ref());
        LocalityLb {
            setting: setting.cloned(),
            enabled: setting.is_none_or(|s| s.enabled != Some(false)),
            failover: self.outlier_detection.is_some(),
        }
    }
}

/// Upstream HTTP/2 for a cluster no DestinationRule shapes: the inbound
/// cluster of an HTTP2 or GRPC port, as Istio's inbound clusters speak the
/// port's protocol to the app.
pub(crate) fn use_http2(cluster: &mut Cluster) {
    connection_pool::apply(cluster, None, true);
}

#[cfg(test)]
mod tests;
