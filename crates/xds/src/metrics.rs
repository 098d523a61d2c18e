//! The control plane's xDS metrics, with Istio's names: connected proxies
//! by version (`pilot_xds`), pushes and rejections per type
//! (`pilot_xds_pushes`, `pilot_total_xds_rejects`), and how long a config
//! change takes to be accepted by a proxy (`pilot_proxy_convergence_time`),
//! of which waiting for the push throttle (`pilot_proxy_queue_time`) and
//! building one response (`pilot_xds_push_time`, by type).
//!
//! istiod has no series of proxies by revision (each revision is its own
//! istiod); one Trellis control plane may serve several revisions'
//! proxies, so `trellis_xds_proxies` counts them by revision and version.

use std::collections::BTreeSet;
use std::time::Instant;

use prometheus_client::encoding::{EncodeLabelSet, LabelSetEncoder};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use trellis_metrics::IstioCounter;

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

/// Istio's `version` label of `pilot_xds`: the proxy's version.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
struct VersionLabel(String);

impl EncodeLabelSet for VersionLabel {
    fn encode(&self, encoder: &mut LabelSetEncoder<'_>) -> Result<(), std::fmt::Error> {
        [("version", self.0.as_str())].encode(encoder)
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq)]
struct RevisionLabels {
    revision: String,
    version: String,
}

impl EncodeLabelSet for RevisionLabels {
    fn encode(&self, encoder: &mut LabelSetEncoder<'_>) -> Result<(), std::fmt::Error> {
        [
            ("revision", self.revision.as_str()),
            ("version", self.version.as_str()),
        ]
        .encode(encoder)
    }
}

#[derive(Debug)]
pub struct XdsMetrics {
    connected: Family<VersionLabel, Gauge>,
    by_revision: Family<RevisionLabels, Gauge>,
    pushes: Family<TypeLabel, IstioCounter>,
    rejects: Family<TypeLabel, IstioCounter>,
    convergence: Histogram,
    queue_time: Histogram,
    push_time: Family<TypeLabel, Histogram, fn() -> Histogram>,
}

/// 1 ms .. ~16 s
fn seconds_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

/// 10 us .. ~160 ms: building one response is quick.
fn build_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.000_01, 2.0, 15))
}

impl Default for XdsMetrics {
    fn default() -> Self {
        XdsMetrics {
            connected: Family::default(),
            by_revision: Family::default(),
            pushes: Family::default(),
            rejects: Family::default(),
            convergence: seconds_histogram(),
            queue_time: seconds_histogram(),
            push_time: Family::new_with_constructor(build_histogram),
        }
    }
}

impl XdsMetrics {
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "pilot_xds",
            "Connected xDS clients, by proxy version",
            self.connected.clone(),
        );
        registry.register(
            "trellis_xds_proxies",
            "Connected xDS clients, by the revision that injected them (istio.io/rev) and proxy version",
            self.by_revision.clone(),
        );
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
        registry.register(
            "pilot_proxy_queue_time",
            "Seconds a proxy's push waited for the push throttle after a config change",
            self.queue_time.clone(),
        );
        registry.register(
            "pilot_xds_push_time",
            "Seconds to build and queue one xDS response, by type",
            self.push_time.clone(),
        );
    }

    pub(crate) fn connected(&self, version: &str, revision: &str) {
        self.add_connected(version, revision, 1);
    }

    pub(crate) fn disconnected(&self, version: &str, revision: &str) {
        self.add_connected(version, revision, -1);
    }

    fn add_connected(&self, version: &str, revision: &str, delta: i64) {
        self.connected
            .get_or_create(&VersionLabel(version.to_string()))
            .inc_by(delta);
        let labels = RevisionLabels {
            revision: revision.to_string(),
            version: version.to_string(),
        };
        self.by_revision.get_or_create(&labels).inc_by(delta);
    }

    /// One response of `type_url` sent, built since `building`.
    pub(crate) fn pushed(&self, type_url: &str, building: Instant) {
        let label = TypeLabel::of(type_url);
        self.pushes.get_or_create(&label).inc();
        self.push_time
            .get_or_create(&label)
            .observe(building.elapsed().as_secs_f64());
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
    /// Set by a change until its first response gets past the throttle.
    queued: Option<Instant>,
    waiting: BTreeSet<&'static str>,
    deferred: BTreeSet<&'static str>,
}

impl Convergence {
    /// A new config generation supersedes whatever was still in flight.
    pub(crate) fn begin(&mut self) {
        let now = Instant::now();
        self.started = Some(now);
        self.queued = Some(now);
        self.waiting.clear();
        self.deferred.clear();
    }

    /// A response got its turn under the throttle.
    pub(crate) fn dequeued(&mut self, metrics: &XdsMetrics) {
        if let Some(queued) = self.queued.take() {
            metrics.queue_time.observe(queued.elapsed().as_secs_f64());
        }
    }

    pub(crate) fn sent(&mut self, type_url: &'static str) {
        if self.started.is_some() {
            self.deferred.remove(type_url);
            self.waiting.insert(type_url);
        }
    }

    /// `type_url` is sent once the proxy answers the response still in
    /// flight; the answer to that older response does not converge this
    /// change.
    pub(crate) fn deferred(&mut self, type_url: &'static str) {
        if self.started.is_some() {
            self.deferred.insert(type_url);
        }
    }

    /// A push that sent nothing, and will send nothing, has nothing to
    /// converge.
    pub(crate) fn settle_if_nothing_sent(&mut self) {
        if self.waiting.is_empty() && self.deferred.is_empty() {
            self.started = None;
            self.queued = None;
        }
    }

    pub(crate) fn acked(&mut self, type_url: &'static str, metrics: &XdsMetrics) {
        if self.waiting.remove(type_url)
            && self.waiting.is_empty()
            && self.deferred.is_empty()
            && let Some(started) = self.started.take()
        {
            metrics.convergence.observe(started.elapsed().as_secs_f64());
        }
    }

    /// A NACK means this generation will not converge.
    pub(crate) fn failed(&mut self) {
        self.started = None;
        self.queued = None;
        self.waiting.clear();
        self.deferred.clear();
    }
}
