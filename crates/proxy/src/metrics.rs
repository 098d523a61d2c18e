//! Istio's standard request metrics (`istio_requests_total`,
//! `istio_request_duration_milliseconds`) with Istio's label names.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::cluster::{Cluster, Endpoint};
use crate::forward::Downstream;
use crate::listener::Direction;
use crate::state::ProxyState;

const UNKNOWN: &str = "unknown";
/// Istio's default duration buckets, in milliseconds.
const DURATION_BUCKETS: [f64; 19] = [
    0.5, 1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0, 30000.0,
    60000.0, 300000.0, 600000.0, 1800000.0, 3600000.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub reporter: &'static str,
    pub source_workload: String,
    pub source_workload_namespace: String,
    pub source_principal: String,
    pub source_app: String,
    pub source_version: String,
    pub destination_workload: String,
    pub destination_workload_namespace: String,
    pub destination_principal: String,
    pub destination_app: String,
    pub destination_version: String,
    pub destination_service: String,
    pub destination_service_name: String,
    pub destination_service_namespace: String,
    pub request_protocol: &'static str,
    pub response_code: u16,
    pub response_flags: &'static str,
    pub connection_security_policy: &'static str,
}

/// What one request did, filled in as it goes through the router.
pub struct RequestOutcome {
    labels: RequestLabels,
    pub status: u16,
    pub flag: &'static str,
}

impl RequestOutcome {
    pub fn new(downstream: &Downstream, state: &ProxyState) -> Self {
        let node = &state.node;
        let me = |key: &str| {
            node.labels
                .get(key)
                .cloned()
                .unwrap_or_else(|| UNKNOWN.into())
        };
        let unknown = || UNKNOWN.to_string();
        let mut labels = RequestLabels {
            reporter: "source",
            source_workload: unknown(),
            source_workload_namespace: unknown(),
            source_principal: unknown(),
            source_app: unknown(),
            source_version: unknown(),
            destination_workload: unknown(),
            destination_workload_namespace: unknown(),
            destination_principal: unknown(),
            destination_app: unknown(),
            destination_version: unknown(),
            destination_service: unknown(),
            destination_service_name: unknown(),
            destination_service_namespace: unknown(),
            request_protocol: "http",
            response_code: 0,
            response_flags: "-",
            connection_security_policy: UNKNOWN,
        };
        match downstream.direction {
            Direction::Outbound => {
                labels.source_workload = node.workload_name.clone();
                labels.source_workload_namespace = node.namespace.clone();
                labels.source_principal = state.identity.id.to_string();
                labels.source_app = me("app");
                labels.source_version = me("version");
            }
            Direction::Inbound => {
                labels.reporter = "destination";
                labels.destination_workload = node.workload_name.clone();
                labels.destination_workload_namespace = node.namespace.clone();
                labels.destination_principal = state.identity.id.to_string();
                labels.destination_app = me("app");
                labels.destination_version = me("version");
                labels.connection_security_policy =
                    if downstream.tls { "mutual_tls" } else { "none" };
                if let Some(id) = downstream.peer.as_ref().and_then(|p| p.identity.as_ref()) {
                    labels.source_principal = id.to_string();
                    labels.source_workload_namespace = id.namespace.clone();
                }
            }
        }
        RequestOutcome {
            labels,
            status: 0,
            flag: "-",
        }
    }

    /// Destination service from Istio's cluster name `DIRECTION|PORT|SUBSET|HOST`.
    pub fn set_cluster(&mut self, cluster: &Cluster) {
        let Some(host) = cluster
            .spec
            .name
            .split('|')
            .nth(3)
            .filter(|h| !h.is_empty())
        else {
            return;
        };
        let mut parts = host.split('.');
        self.labels.destination_service = host.to_string();
        self.labels.destination_service_name = parts.next().unwrap_or(UNKNOWN).to_string();
        self.labels.destination_service_namespace = parts.next().unwrap_or(UNKNOWN).to_string();
        if self.labels.reporter == "source"
            && let Some(peer) = cluster.spec.tls.as_ref().and_then(|t| t.peers.first())
        {
            self.labels.destination_principal = peer.to_string();
        }
    }

    /// Destination workload from the endpoint's `istio.workload` metadata.
    pub fn set_endpoint(&mut self, endpoint: &Endpoint) {
        if self.labels.reporter != "source" {
            return;
        }
        let Some(workload) = &endpoint.workload else {
            return;
        };
        let fields: Vec<&str> = workload.split(';').collect();
        if let [name, namespace, app, version, ..] = fields.as_slice() {
            self.labels.destination_workload = name.to_string();
            self.labels.destination_workload_namespace = namespace.to_string();
            self.labels.destination_app = app.to_string();
            self.labels.destination_version = version.to_string();
        }
    }
}

pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    durations: Family<RequestLabels, Histogram>,
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
        Metrics {
            registry,
            requests,
            durations,
        }
    }
}

impl Metrics {
    pub fn record(&self, outcome: &RequestOutcome, elapsed: Duration) {
        let mut labels = outcome.labels.clone();
        labels.response_code = outcome.status;
        labels.response_flags = outcome.flag;
        self.durations
            .get_or_create(&labels)
            .observe(elapsed.as_secs_f64() * 1000.0);
        self.requests.get_or_create(&labels).inc();
    }

    /// Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
