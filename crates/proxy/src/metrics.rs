//! Istio's standard request metrics (`istio_requests_total`,
//! `istio_request_duration_milliseconds`, `istio_request_bytes`,
//! `istio_response_bytes`) with Istio's label names.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelSet, LabelSetEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::attributes::Attributes;
use crate::metric_labels::{Service, Shared, Workload};
use crate::stats_filter::{CustomLabels, Metric, StatsSpec};

/// Istio's default duration buckets, in milliseconds.
const DURATION_BUCKETS: [f64; 19] = [
    0.5, 1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0, 30000.0,
    60000.0, 300000.0, 600000.0, 1800000.0, 3600000.0,
];

/// Istio's size buckets, in bytes: powers of ten up to 1 GB.
const SIZE_BUCKETS: [f64; 10] = [
    1.0,
    10.0,
    100.0,
    1000.0,
    10000.0,
    100000.0,
    1000000.0,
    10000000.0,
    100000000.0,
    1000000000.0,
];

/// `request_protocol`: gRPC is told apart by its content type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RequestProtocol {
    Http,
    Grpc,
}

impl RequestProtocol {
    pub fn of(headers: &http::HeaderMap) -> RequestProtocol {
        let grpc = headers
            .get(http::header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
        if grpc {
            RequestProtocol::Grpc
        } else {
            RequestProtocol::Http
        }
    }
}

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
    pub request_protocol: RequestProtocol,
    /// The gRPC status of a gRPC response (trailers, or a trailers-only
    /// response's headers).
    pub grpc_response_status: Option<u8>,
    /// Labels a Telemetry override changed, for one metric's series.
    pub custom: Option<Arc<CustomLabels>>,
}

impl EncodeLabelSet for RequestLabels {
    fn encode(&self, encoder: &mut LabelSetEncoder<'_>) -> Result<(), std::fmt::Error> {
        let reporter = match self.reporter {
            Reporter::Source => "source",
            Reporter::Destination => "destination",
        };
        // Formatted only when scraped.
        let code = self.response_code.to_string();
        let grpc_status = self
            .grpc_response_status
            .map(|s| s.to_string())
            .unwrap_or_default();
        let protocol = match self.request_protocol {
            RequestProtocol::Http => "http",
            RequestProtocol::Grpc => "grpc",
        };
        let (s, d) = (&*self.source, &*self.destination);
        let labels: [(&str, &str); 25] = [
            ("reporter", reporter),
            ("source_workload", &s.name),
            ("source_workload_namespace", &s.namespace),
            ("source_principal", &s.principal),
            ("source_app", &s.app),
            ("source_version", &s.version),
            ("source_canonical_service", &s.canonical_service),
            ("source_canonical_revision", &s.canonical_revision),
            ("source_cluster", &s.cluster),
            ("destination_workload", &d.name),
            ("destination_workload_namespace", &d.namespace),
            ("destination_principal", &d.principal),
            ("destination_app", &d.app),
            ("destination_version", &d.version),
            ("destination_service", &self.service.host),
            ("destination_service_name", &self.service.name),
            ("destination_service_namespace", &self.service.namespace),
            ("destination_canonical_service", &d.canonical_service),
            ("destination_canonical_revision", &d.canonical_revision),
            ("destination_cluster", &d.cluster),
            ("request_protocol", protocol),
            ("response_code", &code),
            ("grpc_response_status", &grpc_status),
            ("response_flags", self.response_flags),
            (
                "connection_security_policy",
                self.connection_security_policy,
            ),
        ];
        match &self.custom {
            None => labels.as_slice().encode(encoder),
            Some(custom) => custom.encode(&labels, encoder),
        }
    }
}

/// One label set's series, as handles: recording through them skips the
/// families' lookups (each hashes the whole label set).
#[derive(Clone, Debug)]
struct Series {
    requests: Counter,
    durations: Histogram,
    request_sizes: Histogram,
    response_sizes: Histogram,
    /// gRPC requests only: messages each way.
    messages: Option<(Counter, Counter)>,
}

/// The last series a connection recorded into: requests on one
/// connection mostly share their labels, so most recordings need no
/// lookup at all.
#[derive(Debug, Default)]
pub struct SeriesCache(std::sync::Mutex<Option<(RequestLabels, Series)>>);

/// Body bytes of one request and its response, and the gRPC messages in
/// each.
#[derive(Clone, Copy, Debug, Default)]
pub struct BodySizes {
    pub request: u64,
    pub response: u64,
    pub request_messages: u64,
    pub response_messages: u64,
}

pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    durations: Family<RequestLabels, Histogram>,
    request_sizes: Family<RequestLabels, Histogram>,
    response_sizes: Family<RequestLabels, Histogram>,
    request_messages: Family<RequestLabels, Counter>,
    response_messages: Family<RequestLabels, Counter>,
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
        let sizes = || {
            Family::<RequestLabels, Histogram>::new_with_constructor(
                (|| Histogram::new(SIZE_BUCKETS)) as fn() -> Histogram,
            )
        };
        let (request_sizes, response_sizes) = (sizes(), sizes());
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
        registry.register(
            "istio_request_bytes",
            "Request body sizes",
            request_sizes.clone(),
        );
        registry.register(
            "istio_response_bytes",
            "Response body sizes",
            response_sizes.clone(),
        );
        let request_messages = Family::<RequestLabels, Counter>::default();
        registry.register(
            "istio_request_messages",
            "gRPC messages sent by clients",
            request_messages.clone(),
        );
        let response_messages = Family::<RequestLabels, Counter>::default();
        registry.register(
            "istio_response_messages",
            "gRPC messages sent by servers",
            response_messages.clone(),
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
            request_sizes,
            response_sizes,
            request_messages,
            response_messages,
            access_log_dropped,
            tcp,
        }
    }
}

impl Metrics {
    /// Counts one request as `stats` (its listener's stats filter) says.
    pub fn record<'a>(
        &self,
        labels: &RequestLabels,
        elapsed: Duration,
        sizes: BodySizes,
        cache: &SeriesCache,
        stats: &StatsSpec,
        attributes: impl FnOnce() -> Attributes<'a>,
    ) {
        if !stats.plain {
            return self.record_overridden(labels, elapsed, sizes, stats, &attributes());
        }
        let series = {
            let mut cached = cache.0.lock().unwrap_or_else(|e| e.into_inner());
            match cached.as_ref() {
                Some((known, series)) if known == labels => series.clone(),
                _ => {
                    let series = self.series(labels);
                    *cached = Some((labels.clone(), series.clone()));
                    series
                }
            }
        };
        series.durations.observe(elapsed.as_secs_f64() * 1000.0);
        series.request_sizes.observe(sizes.request as f64);
        series.response_sizes.observe(sizes.response as f64);
        series.requests.inc();
        if let Some((sent, received)) = &series.messages {
            sent.inc_by(sizes.request_messages);
            received.inc_by(sizes.response_messages);
        }
    }

    /// The slow path: each metric with its own labels, or not at all.
    fn record_overridden(
        &self,
        labels: &RequestLabels,
        elapsed: Duration,
        sizes: BodySizes,
        stats: &StatsSpec,
        attributes: &Attributes<'_>,
    ) {
        let labelled = |metric: Metric| {
            let rule = stats.rule(metric);
            (!rule.drop).then(|| RequestLabels {
                custom: rule.custom(attributes),
                ..labels.clone()
            })
        };
        if let Some(labels) = labelled(Metric::Requests) {
            self.requests.get_or_create(&labels).inc();
        }
        if let Some(labels) = labelled(Metric::Duration) {
            let milliseconds = elapsed.as_secs_f64() * 1000.0;
            self.durations.get_or_create(&labels).observe(milliseconds);
        }
        if let Some(labels) = labelled(Metric::RequestBytes) {
            let size = sizes.request as f64;
            self.request_sizes.get_or_create(&labels).observe(size);
        }
        if let Some(labels) = labelled(Metric::ResponseBytes) {
            let size = sizes.response as f64;
            self.response_sizes.get_or_create(&labels).observe(size);
        }
        if labels.request_protocol != RequestProtocol::Grpc {
            return;
        }
        if let Some(labels) = labelled(Metric::RequestMessages) {
            let count = sizes.request_messages;
            self.request_messages.get_or_create(&labels).inc_by(count);
        }
        if let Some(labels) = labelled(Metric::ResponseMessages) {
            let count = sizes.response_messages;
            self.response_messages.get_or_create(&labels).inc_by(count);
        }
    }

    fn series(&self, labels: &RequestLabels) -> Series {
        let grpc = labels.request_protocol == RequestProtocol::Grpc;
        Series {
            requests: self.requests.get_or_create(labels).clone(),
            durations: self.durations.get_or_create(labels).clone(),
            request_sizes: self.request_sizes.get_or_create(labels).clone(),
            response_sizes: self.response_sizes.get_or_create(labels).clone(),
            messages: grpc.then(|| {
                (
                    self.request_messages.get_or_create(labels).clone(),
                    self.response_messages.get_or_create(labels).clone(),
                )
            }),
        }
    }

    /// Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metric_labels::{Service, Workload};

    #[test]
    fn grpc_requests_carry_protocol_status_and_sizes() {
        let mut headers = http::HeaderMap::new();
        assert_eq!(RequestProtocol::of(&headers), RequestProtocol::Http);
        headers.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/grpc+proto"),
        );
        assert_eq!(RequestProtocol::of(&headers), RequestProtocol::Grpc);

        let metrics = Metrics::default();
        let labels = RequestLabels {
            reporter: Reporter::Destination,
            source: Workload::unknown(),
            destination: Workload::unknown(),
            service: Service::unknown(),
            response_code: 200,
            response_flags: "-",
            connection_security_policy: "mutual_tls",
            request_protocol: RequestProtocol::Grpc,
            grpc_response_status: Some(14),
            custom: None,
        };
        let sizes = BodySizes {
            request: 5,
            response: 2000,
            request_messages: 1,
            response_messages: 3,
        };
        let standard = StatsSpec::standard();
        let cache = SeriesCache::default();
        metrics.record(
            &labels,
            Duration::from_millis(3),
            sizes,
            &cache,
            &standard,
            Attributes::default,
        );
        // A second request through the cached handles counts in the same series.
        metrics.record(
            &labels,
            Duration::from_millis(3),
            sizes,
            &cache,
            &standard,
            Attributes::default,
        );
        let other = RequestLabels {
            response_code: 503,
            ..labels.clone()
        };
        metrics.record(
            &other,
            Duration::from_millis(3),
            sizes,
            &cache,
            &standard,
            Attributes::default,
        );
        let text = metrics.render();
        let line = |prefix: &str| {
            text.lines()
                // Series print in no set order: take the 200s.
                .find(|l| l.starts_with(prefix) && l.contains("response_code=\"200\""))
                .unwrap_or_else(|| panic!("no {prefix} in:\n{text}"))
                .to_string()
        };
        let requests = line("istio_requests_total{");
        assert!(requests.contains("request_protocol=\"grpc\""), "{requests}");
        assert!(
            requests.contains("grpc_response_status=\"14\""),
            "{requests}"
        );
        assert!(requests.ends_with(" 2"), "{requests}");
        assert!(
            line("istio_request_bytes_sum{").ends_with(" 10.0"),
            "{text}"
        );
        assert!(
            line("istio_response_bytes_sum{").ends_with(" 4000.0"),
            "{text}"
        );
        // Two gRPC requests of 1 message each, answered with 3 each.
        assert!(
            line("istio_request_messages_total{").ends_with(" 2"),
            "{text}"
        );
        assert!(
            line("istio_response_messages_total{").ends_with(" 6"),
            "{text}"
        );
        let unavailable = text
            .lines()
            .find(|l| l.starts_with("istio_requests_total{") && l.contains("response_code=\"503\""))
            .unwrap_or_else(|| panic!("no 503 series:\n{text}"));
        assert!(unavailable.ends_with(" 1"), "{unavailable}");
    }
}
