//! Istio's standard request metrics (`istio_requests_total`,
//! `istio_request_duration_milliseconds`) with Istio's label names.

use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelSet, LabelSetEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::metric_labels::{Service, Shared, Workload};

/// Istio's default duration buckets, in milliseconds.
const DURATION_BUCKETS: [f64; 19] = [
    0.5, 1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0, 30000.0,
    60000.0, 300000.0, 600000.0, 1800000.0, 3600000.0,
];

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reporter {
    Source,
    Destination,
}

/// Every label of one request's series.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RequestLabels {
    pub reporter: Reporter,
    pub source: Shared<Workload>,
    pub destination: Shared<Workload>,
    pub service: Shared<Service>,
    pub response_code: u16,
    pub response_flags: &'static str,
    /// `mutual_tls`, `none`, or `unknown` (what the source side reports).
    pub connection_security_policy: &'static str,
}

impl EncodeLabelSet for RequestLabels {
    fn encode(&self, encoder: &mut LabelSetEncoder<'_>) -> Result<(), std::fmt::Error> {
        let reporter = match self.reporter {
            Reporter::Source => "source",
            Reporter::Destination => "destination",
        };
        let code = self.response_code.to_string(); // only when scraped
        let (s, d) = (&*self.source, &*self.destination);
        let labels: [(&str, &str); 18] = [
            ("reporter", reporter),
            ("source_workload", &s.name),
            ("source_workload_namespace", &s.namespace),
            ("source_principal", &s.principal),
            ("source_app", &s.app),
            ("source_version", &s.version),
            ("destination_workload", &d.name),
            ("destination_workload_namespace", &d.namespace),
            ("destination_principal", &d.principal),
            ("destination_app", &d.app),
            ("destination_version", &d.version),
            ("destination_service", &self.service.host),
            ("destination_service_name", &self.service.name),
            ("destination_service_namespace", &self.service.namespace),
            ("request_protocol", "http"),
            ("response_code", &code),
            ("response_flags", self.response_flags),
            (
                "connection_security_policy",
                self.connection_security_policy,
            ),
        ];
        labels.as_slice().encode(encoder)
    }
}

pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    durations: Family<RequestLabels, Histogram>,
    /// Access log lines lost because a writer fell behind.
    pub access_log_dropped: Counter,
    pub tcp: crate::tcp_metrics::TcpMetrics,
}

impl Default for Metrics {
    fn default() -> Self {
        let requests = Family::<RequestLabels, Counter>::default();
        let durations = Family::<RequestLabels, Histogram>::new_with_constructor(
            (|| Histogram::new(DURATION_BUCKETS)) as fn() -> Histogram,
        );
        let mut registry = Registry::default();
        registry.register(
            "istio_requests",
            "Requests handled by the proxy",
            requests.clone(),
        );
        registry.register(
            "istio_request_duration_milliseconds",
            "Request duration",
            durations.clone(),
        );
        let access_log_dropped = Counter::default();
        registry.register(
            "trellis_access_log_dropped_lines",
            "Access log lines dropped because the log writer fell behind",
            access_log_dropped.clone(),
        );
        let tcp = crate::tcp_metrics::TcpMetrics::register(&mut registry);
        Metrics {
            registry,
            requests,
            durations,
            access_log_dropped,
            tcp,
        }
    }
}

impl Metrics {
    pub fn record(&self, labels: &RequestLabels, elapsed: Duration) {
        self.durations
            .get_or_create(labels)
            .observe(elapsed.as_secs_f64() * 1000.0);
        self.requests.get_or_create(labels).inc();
    }

    /// Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
