//! Entry points for the benchmarks in `benches/` (feature
//! `bench-support`): what a proxy keeps per distinct peer for its Istio
//! metrics. Not an API: nothing else may depend on it.

use std::time::Duration;

use crate::attributes::Attributes;
use crate::metric_labels::{Service, Shared, Workload};
use crate::metrics::{BodySizes, Metrics, Reporter, RequestLabels, RequestProtocol, SeriesCache};
use crate::stats_filter::StatsSpec;

/// An inbound sidecar's metrics, fed requests from many source workloads.
pub struct InboundMetrics {
    metrics: Metrics,
    me: Shared<Workload>,
    service: Shared<Service>,
    standard: StatsSpec,
}

impl Default for InboundMetrics {
    fn default() -> Self {
        InboundMetrics {
            metrics: Metrics::default(),
            me: Shared::new(workload("reviews-v1")),
            service: Shared::new(Service {
                host: "reviews.default.svc.cluster.local".into(),
                name: "reviews".into(),
                namespace: "default".into(),
            }),
            standard: StatsSpec::standard(),
        }
    }
}

fn workload(name: &str) -> Workload {
    Workload {
        name: name.into(),
        namespace: "default".into(),
        principal: format!("spiffe://cluster.local/ns/default/sa/{name}"),
        app: name.trim_end_matches("-v1").into(),
        version: "v1".into(),
        canonical_service: name.trim_end_matches("-v1").into(),
        canonical_revision: "v1".into(),
        cluster: "Kubernetes".into(),
    }
}

impl InboundMetrics {
    /// Counts `requests` requests from each of `peers` distinct source
    /// workloads, answered with each of `codes`, as the destination
    /// reporter does (one connection per peer).
    pub fn count(&self, peers: usize, codes: &[u16], requests: usize) {
        for peer in 0..peers {
            let source = Shared::new(workload(&format!("peer-{peer}-v1")));
            let cache = SeriesCache::default();
            for &code in codes {
                let labels = RequestLabels {
                    reporter: Reporter::Destination,
                    source: source.clone(),
                    destination: self.me.clone(),
                    service: self.service.clone(),
                    response_code: code,
                    response_flags: "-",
                    connection_security_policy: "mutual_tls",
                    request_protocol: RequestProtocol::Http,
                    grpc_response_status: None,
                    custom: None,
                };
                for _ in 0..requests {
                    let sizes = BodySizes {
                        request: 0,
                        response: 1024,
                        ..Default::default()
                    };
                    let elapsed = Duration::from_micros(700);
                    self.metrics.record(
                        &labels,
                        elapsed,
                        sizes,
                        &cache,
                        &self.standard,
                        Attributes::default,
                    );
                }
            }
        }
    }

    /// The size of one scrape of these metrics.
    pub fn exposition_bytes(&self) -> usize {
        self.metrics.render().len()
    }
}
