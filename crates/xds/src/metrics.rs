//! The control plane's xDS metrics, with Istio's names: connected proxies
//! (`pilot_xds`), pushes and rejections per type (`pilot_xds_pushes`,
//! `pilot_total_xds_rejects`), and how long a config change takes to be
//! accepted by a proxy (`pilot_proxy_convergence_time`).

use std::collections::BTreeSet;
use std::time::Instant;

use prometheus_client::encoding::{EncodeLabelSet, LabelSetEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::type_url;

/// Istio's `type` label: `cds`, `eds`, `lds`, `rds`.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct TypeLabel(&'static str);

impl TypeLabel {
    fn of(type_url: &str) -> Self {
        TypeLabel(match type_url {
            type_url::CLUSTER => "cds",
            type_url::ENDPOINT => "eds",
            type_url::LISTENER => "lds",
            type_url::ROUTE => "rds",
            _ => "unknown",
        })
    }
}

impl EncodeLabelSet for TypeLabel {
    fn encode(&self, encoder: &mut LabelSetEncoder<'_>) -> Result<(), std::fmt::Error> {
        [("type", self.0)].encode(encoder)
    }
}

#[derive(Debug)]
pub struct XdsMetrics {
    connected: Gauge,
    pushes: Family<TypeLabel, Counter>,
    rejects: Family<TypeLabel, Counter>,
    convergence: Histogram,
}

impl Default for XdsMetrics {
    fn default() -> Self {
        XdsMetrics {
            connected: Gauge::default(),
            pushes: Family::default(),
            rejects: Family::default(),
            // 1 ms .. ~16 s
            convergence: Histogram::new(exponential_buckets(0.001, 2.0, 15)),
        }
    }
}

impl XdsMetrics {
    pub fn register(&self, registry: &mut Registry) {
        registry.register("pilot_xds", "Connected xDS clients", self.connected.clone());
        registry.register(
            "pilot_xds_pushes",
            "xDS responses sent, by type",
            self.pushes.clone(),
        );
        registry.register(
            "pilot_total_xds_rejects",
            "xDS responses rejected (NACKed) by proxies, by type",
            self.rejects.clone(),
        );
        registry.register(
            "pilot_proxy_convergence_time",
            "Seconds from a config change reaching a proxy's stream until the proxy accepted every pushed type",
            self.convergence.clone(),
        );
    }

    pub(crate) fn connected(&self) {
        self.connected.inc();
    }

    pub(crate) fn disconnected(&self) {
        self.connected.dec();
    }

    pub(crate) fn pushed(&self, type_url: &str) {
        self.pushes.get_or_create(&TypeLabel::of(type_url)).inc();
    }

    pub(crate) fn rejected(&self, type_url: &str) {
        self.rejects.get_or_create(&TypeLabel::of(type_url)).inc();
    }
}

/// One stream's progress from a config change to the proxy's ACK of every
/// type pushed for it.
#[derive(Debug, Default)]
pub(crate) struct Convergence {
    started: Option<Instant>,
    waiting: BTreeSet<&'static str>,
}

impl Convergence {
    /// A new config generation supersedes whatever was still in flight.
    pub(crate) fn begin(&mut self) {
        self.started = Some(Instant::now());
        self.waiting.clear();
    }

    pub(crate) fn sent(&mut self, type_url: &'static str) {
        if self.started.is_some() {
            self.waiting.insert(type_url);
        }
    }

    /// A push that sent nothing has nothing to converge.
    pub(crate) fn settle_if_nothing_sent(&mut self) {
        if self.waiting.is_empty() {
            self.started = None;
        }
    }

    pub(crate) fn acked(&mut self, type_url: &'static str, metrics: &XdsMetrics) {
        if self.waiting.remove(type_url)
            && self.waiting.is_empty()
            && let Some(started) = self.started.take()
        {
            metrics.convergence.observe(started.elapsed().as_secs_f64());
        }
    }

    /// A NACK means this generation will not converge.
    pub(crate) fn failed(&mut self) {
        self.started = None;
        self.waiting.clear();
    }
}
