//! tcp_proxy's `weighted_clusters` (a VirtualService `tcp` or `tls` route
//! split by weight): each connection goes to one cluster, chosen at random
//! in proportion to the weights.

use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::tcp_proxy::WeightedCluster;

use crate::tcp_proxy::TcpProxySpec;
use crate::unsupported::{Unsupported, reject_if};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeightedClusters {
    /// Clusters with a positive weight, in order.
    clusters: Vec<(String, u32)>,
    total: u32,
}

impl WeightedClusters {
    pub fn compile(weighted: &WeightedCluster) -> Result<WeightedClusters, Unsupported> {
        let mut clusters = Vec::with_capacity(weighted.clusters.len());
        let mut total: u32 = 0;
        for cluster in &weighted.clusters {
            reject_if(
                cluster.metadata_match.is_some(),
                "tcp_proxy weighted cluster metadata_match",
            )?;
            if cluster.weight == 0 {
                continue;
            }
            total = total
                .checked_add(cluster.weight)
                .ok_or(Unsupported("tcp_proxy cluster weights overflow"))?;
            clusters.push((cluster.name.clone(), cluster.weight));
        }
        reject_if(
            total == 0,
            "tcp_proxy weighted_clusters with no positive weight",
        )?;
        Ok(WeightedClusters { clusters, total })
    }

    /// The first cluster (what stats are named after).
    pub fn first(&self) -> &str {
        &self.clusters[0].0
    }

    /// The cluster for a connection; `roll` is uniform in `0..total`.
    fn pick(&self, roll: u32) -> &str {
        let mut accumulated = 0;
        for (name, weight) in &self.clusters {
            accumulated += weight;
            if roll < accumulated {
                return name;
            }
        }
        self.first()
    }
}

impl TcpProxySpec {
    /// The cluster this connection goes to.
    pub fn pick_cluster(&self) -> &str {
        match &self.weighted {
            Some(weighted) => weighted.pick(rand::random_range(0..weighted.total)),
            None => &self.cluster,
        }
    }
}

#[cfg(test)]
mod tests {
    use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::tcp_proxy::weighted_cluster::ClusterWeight;

    use super::*;

    fn weighted(weights: &[(&str, u32)]) -> WeightedCluster {
        WeightedCluster {
            clusters: weights
                .iter()
                .map(|(name, weight)| ClusterWeight {
                    name: name.to_string(),
                    weight: *weight,
                    ..Default::default()
                })
                .collect(),
        }
    }

    #[test]
    fn picks_in_proportion_to_weights() {
        let split =
            WeightedClusters::compile(&weighted(&[("a", 80), ("zero", 0), ("b", 20)])).unwrap();
        assert_eq!(split.total, 100);
        assert_eq!(split.first(), "a");
        assert_eq!(split.pick(0), "a");
        assert_eq!(split.pick(79), "a");
        assert_eq!(split.pick(80), "b");
        assert_eq!(split.pick(99), "b");
    }

    #[test]
    fn refuses_splits_without_weight() {
        assert!(WeightedClusters::compile(&weighted(&[("a", 0)])).is_err());
        assert!(WeightedClusters::compile(&weighted(&[])).is_err());
        assert!(WeightedClusters::compile(&weighted(&[("a", u32::MAX), ("b", 1)])).is_err());
    }
}
