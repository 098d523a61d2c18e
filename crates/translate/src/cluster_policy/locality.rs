//! Locality load balancing as Istio writes it, relative to the proxy the
//! config is for.
//!
//! Locality failover takes effect only when the cluster has outlier
//! detection (otherwise nothing would ever mark an endpoint unhealthy):
//! then each endpoint gets an Envoy priority by how close it is to the
//! proxy: 0 for the same region, zone and subzone, 1 for the same zone, 2
//! for the same region, 3 for a region a `failover` rule names for the
//! proxy's region, 4 for the rest. `failoverPriority` labels order
//! endpoints instead (matching the proxy's value of the first N labels);
//! with `failover` rules as well, locality orders endpoints within each
//! label level. Priorities are then renumbered to be contiguous.
//!
//! `distribute` (exclusive with failover) weighs localities: the first rule
//! whose `from` matches the proxy splits each `to` weight over the
//! localities it matches, in proportion to their endpoints (rounded up);
//! a locality no `to` matches gets no traffic. A locality matches the
//! first `to` key, in key order, that matches it.

use std::collections::{BTreeMap, BTreeSet};

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::cluster::v3::cluster::{
    CommonLbConfig, common_lb_config::LocalityConfigSpecifier,
    common_lb_config::LocalityWeightedLbConfig,
};
use trellis_api::{LocalityDistribute, LocalityLbSetting};
use trellis_config::registry::{REGION_LABEL, SUBZONE_LABEL, ZONE_LABEL};

/// A cluster's locality load balancing, merged from its DestinationRule.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LocalityLb {
    /// The rule's `localityLbSetting`; `None` when it sets none (Istio's
    /// mesh default: enabled, without rules) or disables it.
    pub setting: Option<LocalityLbSetting>,
    /// Whether locality load balancing is on (`enabled` is not false).
    pub enabled: bool,
    /// Whether the cluster has outlier detection, which failover needs.
    pub failover: bool,
}

impl LocalityLb {
    fn distribute(&self) -> &[LocalityDistribute] {
        self.setting
            .as_ref()
            .map_or(&[], |s| s.distribute.as_slice())
    }

    fn failover_priority(&self) -> &[String] {
        self.setting
            .as_ref()
            .map_or(&[], |s| s.failover_priority.as_slice())
    }

    /// Whether endpoints get priorities by closeness (`distribute` rules
    /// out failover).
    pub fn prioritizes(&self) -> bool {
        self.enabled && self.failover && self.distribute().is_empty()
    }

    /// Envoy weighs localities only when told to: Istio turns it on for
    /// `distribute`, and for failover with explicit rules.
    pub fn apply(&self, cluster: &mut Cluster) {
        let rules = self.setting.as_ref().is_some_and(|s| {
            !s.distribute.is_empty()
                || (self.failover && (!s.failover.is_empty() || !s.failover_priority.is_empty()))
        });
        if self.enabled && rules {
            cluster
                .common_lb_config
                .get_or_insert_with(CommonLbConfig::default)
                .locality_config_specifier = Some(
                LocalityConfigSpecifier::LocalityWeightedLbConfig(LocalityWeightedLbConfig {}),
            );
        }
    }

    /// The priority (before renumbering) of an endpoint in `locality` with
    /// `labels`, for a proxy in `proxy` with `proxy_labels`.
    pub fn priority(
        &self,
        proxy: &Locality<'_>,
        proxy_labels: &BTreeMap<String, String>,
        locality: &Locality<'_>,
        labels: &BTreeMap<String, String>,
    ) -> u32 {
        if !self.prioritizes() || proxy.is_unknown() {
            return 0;
        }
        let keys = self.failover_priority();
        let failover = self.setting.as_ref().map_or(&[][..], |s| &s.failover[..]);
        let by_locality = || {
            if proxy.region != locality.region {
                let named = failover
                    .iter()
                    .any(|f| f.from == proxy.region && f.to == locality.region);
                return if named { 3 } else { 4 };
            }
            match (
                proxy.zone == locality.zone,
                proxy.subzone == locality.subzone,
            ) {
                (true, true) => 0,
                (true, false) => 1,
                (false, _) => 2,
            }
        };
        if keys.is_empty() {
            return by_locality();
        }
        let matched = keys
            .iter()
            .take_while(|key| label_matches(key, proxy, proxy_labels, locality, labels))
            .count();
        let level = (keys.len() - matched) as u32;
        if failover.is_empty() {
            level
        } else {
            level * 5 + by_locality()
        }
    }

    /// Each locality's weight under `distribute` for a proxy in `proxy`:
    /// `None` when no rule applies (weights stay as they are); a locality
    /// missing from the map gets no traffic.
    pub fn distributed_weights(
        &self,
        proxy: &Locality<'_>,
        localities: &BTreeMap<String, u32>,
    ) -> Option<BTreeMap<String, u32>> {
        if !self.enabled || proxy.is_unknown() {
            return None;
        }
        let rule = self
            .distribute()
            .iter()
            .find(|rule| locality_matches(&rule.from, proxy))?;
        let mut claimed: BTreeSet<&str> = BTreeSet::new();
        let mut weights = BTreeMap::new();
        for (pattern, weight) in &rule.to {
            let members: Vec<(&String, u32)> = localities
                .iter()
                .filter(|(name, _)| !claimed.contains(name.as_str()))
                .filter(|(name, _)| locality_matches(pattern, &Locality::parse(name)))
                .map(|(name, endpoints)| (name, *endpoints))
                .collect();
            let total: u64 = members.iter().map(|(_, n)| u64::from(*n)).sum();
            for (name, endpoints) in members {
                claimed.insert(name);
                let share = (u64::from(*weight) * u64::from(endpoints)).div_ceil(total.max(1));
                weights.insert(
                    name.clone(),
                    u32::try_from(share).unwrap_or(u32::MAX).max(1),
                );
            }
        }
        Some(weights)
    }
}

/// `region/zone/subzone`, parts empty when unknown.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Locality<'a> {
    pub region: &'a str,
    pub zone: &'a str,
    pub subzone: &'a str,
}

impl<'a> Locality<'a> {
    pub fn parse(text: &'a str) -> Locality<'a> {
        let mut parts = text.splitn(3, '/');
        Locality {
            region: parts.next().unwrap_or(""),
            zone: parts.next().unwrap_or(""),
            subzone: parts.next().unwrap_or(""),
        }
    }

    fn is_unknown(&self) -> bool {
        self.region.is_empty() && self.zone.is_empty() && self.subzone.is_empty()
    }
}

/// Istio's locality pattern: `region[/zone[/subzone]]`, each part a name
/// or `*`; missing parts match anything.
fn locality_matches(pattern: &str, locality: &Locality<'_>) -> bool {
    let actual = [locality.region, locality.zone, locality.subzone];
    pattern
        .split('/')
        .zip(actual)
        .all(|(wanted, actual)| wanted == "*" || wanted == actual)
}

/// Whether an endpoint matches the proxy on one `failoverPriority` entry:
/// `KEY` (the same value as the proxy's) or `KEY=VALUE` (that value). The
/// topology keys compare localities rather than labels.
fn label_matches(
    entry: &str,
    proxy: &Locality<'_>,
    proxy_labels: &BTreeMap<String, String>,
    locality: &Locality<'_>,
    labels: &BTreeMap<String, String>,
) -> bool {
    let (key, wanted) = match entry.split_once('=') {
        Some((key, value)) => (key, Some(value)),
        None => (entry, None),
    };
    let topology = |l: &Locality<'_>| match key {
        REGION_LABEL => Some(l.region.to_string()),
        ZONE_LABEL => Some(l.zone.to_string()),
        SUBZONE_LABEL => Some(l.subzone.to_string()),
        _ => None,
    };
    let endpoint_value = topology(locality).or_else(|| labels.get(key).cloned());
    let wanted = match wanted {
        Some(value) => Some(value.to_string()),
        None => topology(proxy).or_else(|| proxy_labels.get(key).cloned()),
    };
    matches!((endpoint_value, wanted), (Some(e), Some(w)) if e == w && !e.is_empty())
}

#[cfg(test)]
mod tests;
