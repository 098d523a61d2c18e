//! Istio's TCP metrics for connections the tcp_proxy filter carries:
//! `istio_tcp_connections_opened_total`, `istio_tcp_connections_closed_total`,
//! `istio_tcp_sent_bytes_total` and `istio_tcp_received_bytes_total`, with
//! the labels of Istio's request metrics except the response code and gRPC
//! status (`request_protocol` is `tcp`).

use prometheus_client::encoding::{EncodeLabelSet, LabelSetEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use std::sync::Arc;

use crate::attributes::Attributes;
use crate::metric_labels::{Service, Shared, Workload};
use crate::metrics::{Reporter, RequestLabels};
use crate::stats_filter::{CustomLabels, Metric, StatsSpec};

/// Every label of one connection's series.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TcpLabels {
    pub reporter: Reporter,
    pub source: Shared<Workload>,
    pub destination: Shared<Workload>,
    pub service: Shared<Service>,
    pub response_flags: &'static str,
    pub connection_security_policy: &'static str,
    /// Labels a Telemetry override changed, for one metric's series.
    pub custom: Option<Arc<CustomLabels>>,
}

impl TcpLabels {
    /// The labels a connection's requests would carry, for its TCP series.
    pub fn from_request(labels: RequestLabels) -> TcpLabels {
        TcpLabels {
            reporter: labels.reporter,
            source: labels.source,
            destination: labels.destination,
            service: labels.service,
            response_flags: labels.response_flags,
            connection_security_policy: labels.connection_security_policy,
            custom: None,
        }
    }
}

impl EncodeLabelSet for TcpLabels {
    fn encode(&self, encoder: &mut LabelSetEncoder<'_>) -> Result<(), std::fmt::Error> {
        let reporter = match self.reporter {
            Reporter::Source => "source",
            Reporter::Destination => "destination",
        };
        let (s, d) = (&*self.source, &*self.destination);
        let labels: [(&str, &str); 23] = [
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
            ("request_protocol", "tcp"),
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

pub struct TcpMetrics {
    opened: Family<TcpLabels, Counter>,
    closed: Family<TcpLabels, Counter>,
    sent_bytes: Family<TcpLabels, Counter>,
    received_bytes: Family<TcpLabels, Counter>,
}

impl TcpMetrics {
    pub fn register(registry: &mut Registry) -> TcpMetrics {
        let metrics = TcpMetrics {
            opened: Family::default(),
            closed: Family::default(),
            sent_bytes: Family::default(),
            received_bytes: Family::default(),
        };
        for (name, help, family) in [
            (
                "istio_tcp_connections_opened",
                "TCP connections opened",
                &metrics.opened,
            ),
            (
                "istio_tcp_connections_closed",
                "TCP connections closed",
                &metrics.closed,
            ),
            (
                "istio_tcp_sent_bytes",
                "Bytes sent to the downstream of TCP connections",
                &metrics.sent_bytes,
            ),
            (
                "istio_tcp_received_bytes",
                "Bytes received from the downstream of TCP connections",
                &metrics.received_bytes,
            ),
        ] {
            registry.register(name, help, family.clone());
        }
        metrics
    }

    /// A connection was opened, counted as `stats` says.
    pub fn opened(&self, labels: &TcpLabels, stats: &StatsSpec, attributes: &Attributes<'_>) {
        if let Some(labels) = labelled(labels, stats, Metric::TcpOpened, attributes) {
            self.opened.get_or_create(&labels).inc();
        }
    }

    /// A connection ended, having received and sent these bytes.
    pub fn closed(
        &self,
        labels: &TcpLabels,
        stats: &StatsSpec,
        attributes: &Attributes<'_>,
        (received, sent): (u64, u64),
    ) {
        if let Some(labels) = labelled(labels, stats, Metric::TcpClosed, attributes) {
            self.closed.get_or_create(&labels).inc();
        }
        if let Some(labels) = labelled(labels, stats, Metric::TcpReceivedBytes, attributes) {
            self.received_bytes.get_or_create(&labels).inc_by(received);
        }
        if let Some(labels) = labelled(labels, stats, Metric::TcpSentBytes, attributes) {
            self.sent_bytes.get_or_create(&labels).inc_by(sent);
        }
    }
}

/// `labels` as `metric`'s overrides make them; `None`: it is dropped.
fn labelled(
    labels: &TcpLabels,
    stats: &StatsSpec,
    metric: Metric,
    attributes: &Attributes<'_>,
) -> Option<TcpLabels> {
    let rule = stats.rule(metric);
    (!rule.drop).then(|| TcpLabels {
        custom: rule.custom(attributes),
        ..labels.clone()
    })
}
