//! Reading a sidecar's Prometheus exposition, as the end-to-end tests count
//! what the mesh saw.

use std::time::{Duration, Instant};

use trellis_local::WorkloadState;

use crate::mesh::UpMesh;

/// The sum of `istio_requests_total` over the series carrying every label
/// (each given as `name="value"`).
pub fn requests_counted(exposition: &str, labels: &[&str]) -> f64 {
    exposition
        .lines()
        .filter(|line| line.starts_with("istio_requests_total{"))
        .filter(|line| labels.iter().all(|label| line.contains(label)))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

impl UpMesh {
    /// `workload`'s proxy metrics (`/stats/prometheus` on its stats port).
    pub async fn proxy_stats(&self, workload: &WorkloadState) -> String {
        let url = format!(
            "http://{}:{}/stats/prometheus",
            workload.address, workload.stats_port
        );
        self.get(&url).await.expect("the stats port answers").text()
    }

    /// Waits until `workload`'s proxy has counted `at_least` requests with
    /// `labels`, or `deadline` passed; returns the last count.
    pub async fn wait_for_requests_counted(
        &self,
        workload: &WorkloadState,
        labels: &[&str],
        at_least: f64,
        deadline: Duration,
    ) -> f64 {
        let until = Instant::now() + deadline;
        loop {
            let count = requests_counted(&self.proxy_stats(workload).await, labels);
            if count >= at_least || Instant::now() > until {
                return count;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::requests_counted;

    #[test]
    fn sums_only_the_series_with_every_label() {
        let exposition = "\
# TYPE istio_requests_total counter
istio_requests_total{reporter=\"source\",response_code=\"200\"} 3
istio_requests_total{reporter=\"source\",response_code=\"503\"} 2
istio_requests_total{reporter=\"destination\",response_code=\"200\"} 7
istio_request_bytes_sum{reporter=\"source\",response_code=\"200\"} 99
";
        assert_eq!(requests_counted(exposition, &["reporter=\"source\""]), 5.0);
        assert_eq!(
            requests_counted(
                exposition,
                &["reporter=\"source\"", "response_code=\"200\""]
            ),
            3.0
        );
        assert_eq!(
            requests_counted(exposition, &["response_code=\"404\""]),
            0.0
        );
    }
}
