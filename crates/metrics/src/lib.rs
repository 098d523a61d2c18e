//! Prometheus metric types that print the way istiod's do, so that Istio's
//! dashboards and alerts read Trellis's control plane unchanged.
//!
//! istiod exposes its counters under their bare names
//! (`citadel_server_csr_count`, `pilot_xds_pushes`, `galley_validation_failed`),
//! while `prometheus_client`'s [`Counter`] always appends OpenMetrics'
//! `_total`. [`IstioCounter`] is a counter printed without it.

#![deny(unsafe_code)]
#![deny(rust_2018_idioms)]

use prometheus_client::encoding::{EncodeMetric, MetricEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::{MetricType, TypedMetric};

/// A monotonic counter exposed as `# TYPE NAME counter` and `NAME VALUE`,
/// with no `_total` suffix. Clones share one value.
#[derive(Clone, Debug, Default)]
pub struct IstioCounter(Counter);

impl IstioCounter {
    pub fn inc(&self) {
        self.0.inc();
    }

    pub fn inc_by(&self, amount: u64) {
        self.0.inc_by(amount);
    }

    pub fn get(&self) -> u64 {
        self.0.get()
    }
}

impl TypedMetric for IstioCounter {
    const TYPE: MetricType = MetricType::Counter;
}

impl EncodeMetric for IstioCounter {
    fn encode(&self, mut encoder: MetricEncoder<'_>) -> Result<(), std::fmt::Error> {
        // The gauge encoding writes the sample under the family's own name;
        // the family's TYPE line still says counter.
        encoder.encode_gauge(&self.0.get())
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Counter
    }
}

#[cfg(test)]
mod tests {
    use prometheus_client::encoding::text::encode;
    use prometheus_client::metrics::family::Family;
    use prometheus_client::registry::Registry;

    use super::*;

    #[test]
    fn prints_as_istiod_does() {
        let mut registry = Registry::default();
        let csrs = IstioCounter::default();
        registry.register("citadel_server_csr_count", "CSRs", csrs.clone());
        let pushes = Family::<Vec<(&str, &str)>, IstioCounter>::default();
        registry.register("pilot_xds_pushes", "Pushes", pushes.clone());
        csrs.inc();
        csrs.inc_by(2);
        pushes.get_or_create(&vec![("type", "cds")]).inc();

        let mut text = String::new();
        encode(&mut text, &registry).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        for line in [
            "# TYPE citadel_server_csr_count counter",
            "citadel_server_csr_count 3",
            "# TYPE pilot_xds_pushes counter",
            "pilot_xds_pushes{type=\"cds\"} 1",
        ] {
            assert!(lines.contains(&line), "no {line:?} in\n{text}");
        }
        assert!(!text.contains("_total"), "{text}");
        assert_eq!(csrs.get(), 3);
    }
}
