//! Istio's stats filter (`istio.stats`, `stats.PluginConfig`) on a
//! connection manager or TCP filter chain: without it a listener reports
//! no Istio metrics; with it, each standard metric is reported, dropped,
//! or reported with labels removed, replaced or added (Telemetry
//! `metrics` overrides, the values CEL over Envoy's attributes).

use std::sync::Arc;

use prometheus_client::encoding::{EncodeLabelSet, LabelSetEncoder};
use prost::Message;
use trellis_xds::stats_config::{MetricConfig, PluginConfig};

use crate::attributes::{Attributes, CelExpression, Roots};
use crate::unsupported::{Unsupported, reject_if};

/// The standard metrics, by their names in the filter's config.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Metric {
    Requests,
    Duration,
    RequestBytes,
    ResponseBytes,
    RequestMessages,
    ResponseMessages,
    TcpOpened,
    TcpClosed,
    TcpSentBytes,
    TcpReceivedBytes,
}

const METRICS: [(&str, Metric); 10] = [
    ("requests_total", Metric::Requests),
    ("request_duration_milliseconds", Metric::Duration),
    ("request_bytes", Metric::RequestBytes),
    ("response_bytes", Metric::ResponseBytes),
    ("request_messages_total", Metric::RequestMessages),
    ("response_messages_total", Metric::ResponseMessages),
    ("tcp_connections_opened_total", Metric::TcpOpened),
    ("tcp_connections_closed_total", Metric::TcpClosed),
    ("tcp_sent_bytes_total", Metric::TcpSentBytes),
    ("tcp_received_bytes_total", Metric::TcpReceivedBytes),
];

/// The metrics of HTTP requests, and of TCP connections.
pub const HTTP_METRICS: [Metric; 6] = [
    Metric::Requests,
    Metric::Duration,
    Metric::RequestBytes,
    Metric::ResponseBytes,
    Metric::RequestMessages,
    Metric::ResponseMessages,
];
pub const TCP_METRICS: [Metric; 4] = [
    Metric::TcpOpened,
    Metric::TcpClosed,
    Metric::TcpSentBytes,
    Metric::TcpReceivedBytes,
];

/// What one metric's series look like under the overrides.
#[derive(Debug, Default)]
pub struct MetricRule {
    pub drop: bool,
    removed: Vec<Arc<str>>,
    dimensions: Vec<(Arc<str>, CelExpression)>,
}

impl MetricRule {
    fn apply(&mut self, config: &MetricConfig) -> Result<(), Unsupported> {
        self.drop |= config.drop;
        for tag in &config.tags_to_remove {
            self.dimensions.retain(|(name, _)| **name != **tag);
            self.removed.push(tag.as_str().into());
        }
        // Sorted, so that the same config always labels alike.
        let mut dimensions: Vec<_> = config.dimensions.iter().collect();
        dimensions.sort();
        for (tag, expression) in dimensions {
            self.removed.retain(|name| **name != **tag);
            self.dimensions.retain(|(name, _)| **name != **tag);
            self.dimensions
                .push((tag.as_str().into(), CelExpression::compile(expression)?));
        }
        Ok(())
    }

    fn is_plain(&self) -> bool {
        !self.drop && self.removed.is_empty() && self.dimensions.is_empty()
    }

    /// The labels that differ from the standard ones; `None`: none do.
    pub fn custom(&self, attributes: &Attributes<'_>) -> Option<Arc<CustomLabels>> {
        if self.removed.is_empty() && self.dimensions.is_empty() {
            return None;
        }
        Some(Arc::new(CustomLabels {
            removed: self.removed.clone(),
            added: self
                .dimensions
                .iter()
                .map(|(name, expression)| (name.clone(), expression.label_value(attributes)))
                .collect(),
        }))
    }
}

/// A compiled stats filter.
#[derive(Debug, Default)]
pub struct StatsSpec {
    rules: [MetricRule; METRICS.len()],
    /// No metric has an override: the fast path records every series.
    pub plain: bool,
    /// What the label expressions read of each request.
    pub roots: Roots,
}

impl StatsSpec {
    /// Every standard metric, as the standard labels make it.
    pub fn standard() -> StatsSpec {
        StatsSpec {
            plain: true,
            ..Default::default()
        }
    }

    pub fn compile(value: &[u8]) -> Result<StatsSpec, Unsupported> {
        let config = PluginConfig::decode(value)
            .map_err(|_| Unsupported("undecodable stats PluginConfig"))?;
        let mut spec = StatsSpec::default();
        for metric in &config.metrics {
            reject_if(
                !metric.r#match.is_empty(),
                "stats filter metric with a match",
            )?;
            let targets: Vec<usize> = if metric.name.is_empty() {
                (0..METRICS.len()).collect()
            } else {
                let index = METRICS
                    .iter()
                    .position(|(name, _)| *name == metric.name)
                    .ok_or(Unsupported(
                        "stats filter metric other than Istio's standard ones",
                    ))?;
                vec![index]
            };
            for index in targets {
                spec.rules[index].apply(metric)?;
            }
        }
        spec.plain = spec.rules.iter().all(MetricRule::is_plain);
        spec.roots = spec
            .rules
            .iter()
            .flat_map(|rule| &rule.dimensions)
            .fold(Roots::default(), |roots, (_, e)| roots.union(e.roots()));
        Ok(spec)
    }

    /// Whether every metric of `metrics` is dropped: then the listener
    /// records as if it had no stats filter at all.
    pub fn drops_all(&self, metrics: &[Metric]) -> bool {
        metrics.iter().all(|m| self.rule(*m).drop)
    }

    pub fn rule(&self, metric: Metric) -> &MetricRule {
        let index = METRICS
            .iter()
            .position(|(_, m)| *m == metric)
            .expect("every metric has a name");
        &self.rules[index]
    }
}

/// A series' labels that Telemetry changed: standard ones removed (or
/// replaced), and added ones with their values.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CustomLabels {
    removed: Vec<Arc<str>>,
    added: Vec<(Arc<str>, String)>,
}

impl CustomLabels {
    /// Encodes `standard` as this changes it.
    pub fn encode(
        &self,
        standard: &[(&str, &str)],
        encoder: &mut LabelSetEncoder<'_>,
    ) -> Result<(), std::fmt::Error> {
        let replaced = |name: &str| {
            self.removed.iter().any(|r| &**r == name)
                || self.added.iter().any(|(a, _)| &**a == name)
        };
        let labels: Vec<(&str, &str)> = standard
            .iter()
            .copied()
            .filter(|(name, _)| !replaced(name))
            .chain(
                self.added
                    .iter()
                    .map(|(name, value)| (&**name, value.as_str())),
            )
            .collect();
        labels.as_slice().encode(encoder)
    }
}

#[cfg(test)]
mod tests;
