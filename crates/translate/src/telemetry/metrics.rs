//! Telemetry `metrics` as Istio's stats filter config: which standard
//! metrics a side reports and with which labels. Entries merge least to
//! most specific; the most specific `providers` decide whether Prometheus
//! metrics are on at all, and each override's `disabled` and
//! `tagOverrides` apply to the metrics and sides it matches.

use std::collections::BTreeMap;

use trellis_api::{Metrics, MetricsOverrides, TagOperation, Telemetry};
use trellis_xds::stats_config::{METRIC_NAMES, MetricConfig, PluginConfig};

use super::levels::mode_applies;

/// Istio's built-in Prometheus provider.
pub const PROMETHEUS_PROVIDER: &str = "prometheus";

/// The mesh config's say on metrics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MeshMetrics {
    /// `defaultProviders.metrics`: used where no Telemetry names providers.
    pub default_providers: Vec<String>,
    /// The names that mean Prometheus: the mesh's `prometheus` providers
    /// and the built-in `prometheus`.
    pub prometheus_providers: Vec<String>,
}

impl Default for MeshMetrics {
    fn default() -> Self {
        MeshMetrics {
            default_providers: vec![PROMETHEUS_PROVIDER.into()],
            prometheus_providers: vec![PROMETHEUS_PROVIDER.into()],
        }
    }
}

/// One metric's merged override.
#[derive(Debug, Default)]
struct Override {
    drop: Option<bool>,
    /// Label to its CEL expression; `None`: the label is removed.
    tags: BTreeMap<String, Option<String>>,
}

/// The stats filter config for one side; `None`: that side reports no
/// metrics (Prometheus is not among its providers).
pub fn stats_config(
    applicable: &[&Telemetry],
    mesh: &MeshMetrics,
    server: bool,
) -> Option<PluginConfig> {
    let is_prometheus = |name: &str| mesh.prometheus_providers.iter().any(|p| p == name);
    let mut providers: Option<&[trellis_api::ProviderRef]> = None;
    let mut overrides: BTreeMap<&'static str, Override> = BTreeMap::new();
    for entry in applicable.iter().flat_map(|t| &t.metrics) {
        if !entry.providers.is_empty() {
            providers = Some(&entry.providers);
        }
        if !reaches_prometheus(entry, &is_prometheus) {
            continue;
        }
        for item in &entry.overrides {
            merge(&mut overrides, item, server);
        }
    }
    let enabled = match providers {
        Some(named) => named.iter().any(|p| is_prometheus(&p.name)),
        None => mesh.default_providers.iter().any(|p| is_prometheus(p)),
    };
    if !enabled {
        return None;
    }
    let metrics = overrides
        .into_iter()
        .map(|(name, merged)| MetricConfig {
            name: name.into(),
            dimensions: merged
                .tags
                .iter()
                .filter_map(|(tag, value)| Some((tag.clone(), value.clone()?)))
                .collect(),
            tags_to_remove: merged
                .tags
                .iter()
                .filter(|(_, value)| value.is_none())
                .map(|(tag, _)| tag.clone())
                .collect(),
            drop: merged.drop.unwrap_or(false),
            ..Default::default()
        })
        .collect();
    Some(PluginConfig {
        metrics,
        ..Default::default()
    })
}

/// An entry with no providers configures the default ones.
fn reaches_prometheus(entry: &Metrics, is_prometheus: &impl Fn(&str) -> bool) -> bool {
    entry.providers.is_empty() || entry.providers.iter().any(|p| is_prometheus(&p.name))
}

fn merge(overrides: &mut BTreeMap<&'static str, Override>, item: &MetricsOverrides, server: bool) {
    let selector = item.match_.as_ref();
    if !mode_applies(selector.and_then(|m| m.mode), server) {
        return;
    }
    // Custom metrics are not generated; the control plane warns of them.
    if selector.is_some_and(|m| m.custom_metric.is_some()) {
        return;
    }
    let wanted = selector
        .and_then(|m| m.metric.as_deref())
        .unwrap_or("ALL_METRICS");
    for (selector_name, metric) in METRIC_NAMES {
        if wanted != "ALL_METRICS" && wanted != selector_name {
            continue;
        }
        let merged = overrides.entry(metric).or_default();
        if let Some(disabled) = item.disabled {
            merged.drop = Some(disabled);
        }
        for (tag, change) in &item.tag_overrides {
            let value = match change.operation {
                Some(TagOperation::Remove) => None,
                None | Some(TagOperation::Upsert) => change.value.clone(),
            };
            merged.tags.insert(tag.clone(), value);
        }
    }
}
