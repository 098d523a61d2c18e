//! A real Prometheus (Debian's `prometheus`, which the test command
//! installs) scrapes every sidecar's merged metrics port (15020) of a
//! running Bookinfo, and the PromQL of Istio's standard Grafana dashboards
//! returns the series and values a user of Istio expects.

use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use trellis_testbed::UpMesh;

const TRELLIS: &str = env!("CARGO_BIN_EXE_trellis");
/// Istio's merged metrics port, which injection points Prometheus at.
const STATUS_PORT: u16 = 15020;
const QUERY_DEADLINE: Duration = Duration::from_secs(90);
const REQUESTS: usize = 40;

/// Prometheus for one test: killed, with its data, when dropped.
struct Prometheus {
    child: Child,
    address: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    fn start(address: SocketAddr, targets: &[String]) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("prometheus.yml");
        let targets: Vec<String> = targets.iter().map(|t| format!("'{t}'")).collect();
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n\
                 scrape_configs:\n- job_name: kubernetes-pods\n  metrics_path: /stats/prometheus\n  \
                 static_configs:\n  - targets: [{}]\n",
                targets.join(", ")
            ),
        )
        .unwrap();
        let mut command = Command::new("prometheus");
        command
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={address}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        trellis_local::die_with_parent(&mut command);
        let child = command.spawn().expect("starting prometheus");
        Prometheus {
            child,
            address,
            _dir: dir,
        }
    }

    /// The query's result vector, once `wanted` accepts it (Prometheus
    /// needs a few scrapes before rates say anything).
    async fn query(
        &self,
        mesh: &UpMesh,
        promql: &str,
        wanted: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        let url = format!(
            "http://{}/api/v1/query?query={}",
            self.address,
            percent_encode(promql)
        );
        let deadline = Instant::now() + QUERY_DEADLINE;
        let mut last = String::new();
        loop {
            if let Ok(reply) = mesh.get(&url).await
                && reply.status == 200
            {
                let answer = reply.json();
                let series = answer["data"]["result"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                if wanted(&series) {
                    return series;
                }
                last = answer.to_string();
            }
            assert!(
                Instant::now() < deadline,
                "{promql} never gave the expected series; last answer: {last}"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

fn free_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn series_value(series: &Value) -> f64 {
    series["value"][1]
        .as_str()
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn istios_dashboard_queries_work_on_scraped_sidecars() {
    if Command::new("prometheus")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!(
            "skipping: Debian's prometheus is not installed (./scripts/test installs it as root)"
        );
        return;
    }
    // The dashboard reads from this Prometheus instead of scraping the
    // sidecars itself (until it runs, the dashboard just has nothing).
    let prometheus_address = free_port();
    let mesh = UpMesh::builder(TRELLIS, "prometheus")
        .arg("--dashboard-prometheus-url")
        .arg(format!("http://{prometheus_address}"))
        .start()
        .await;
    let targets: Vec<String> = mesh
        .state()
        .workloads
        .iter()
        .map(|w| format!("{}:{STATUS_PORT}", w.address))
        .collect();
    let prometheus = Prometheus::start(prometheus_address, &targets);

    // Every target is up: the status port answers Prometheus' scrapes.
    let up = prometheus
        .query(&mesh, "up == 1", |s| s.len() == targets.len())
        .await;
    assert_eq!(up.len(), targets.len(), "{up:?}");

    // Traffic over a few scrapes, so that rate() has samples to work on.
    let page = mesh.url("productpage");
    for _ in 0..REQUESTS {
        assert_eq!(mesh.get(&page).await.unwrap().status, 200);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Istio's service dashboard: request rate by workload and code.
    let serving = |series: &[Value], workload: &str| {
        series.iter().any(|s| {
            s["metric"]["destination_workload"] == workload
                && s["metric"]["response_code"] == "200"
                && series_value(s) > 0.0
        })
    };
    let workloads = ["productpage-v1", "details-v1", "reviews-v1"];
    prometheus
        .query(
            &mesh,
            "sum(rate(istio_requests_total{reporter=\"destination\"}[1m])) by (destination_workload, response_code)",
            |series| workloads.iter().all(|w| serving(series, w)),
        )
        .await;

    // Who calls whom over mTLS, as the destinations report it (the source
    // side reports `unknown` security, as in Istio).
    let edges = prometheus
        .query(
            &mesh,
            "sum(istio_requests_total{reporter=\"destination\",source_workload=\"productpage-v1\",connection_security_policy=\"mutual_tls\"}) by (destination_service)",
            |series| series.len() >= 2,
        )
        .await;
    let called: Vec<&str> = edges
        .iter()
        .filter_map(|s| s["metric"]["destination_service"].as_str())
        .collect();
    for service in [
        "details.default.svc.cluster.local",
        "reviews.default.svc.cluster.local",
    ] {
        assert!(called.contains(&service), "{called:?}");
    }

    // Latency percentiles and sizes from the histograms.
    let p99 = prometheus
        .query(
            &mesh,
            "histogram_quantile(0.99, sum(rate(istio_request_duration_milliseconds_bucket{reporter=\"destination\",destination_workload=\"productpage-v1\"}[1m])) by (le))",
            |series| series.first().is_some_and(|s| series_value(s).is_finite()),
        )
        .await;
    let p99 = series_value(&p99[0]);
    assert!(p99.is_finite() && p99 > 0.0, "p99 {p99}");
    let sizes = prometheus
        .query(
            &mesh,
            "sum(istio_response_bytes_sum{reporter=\"destination\",destination_workload=\"details-v1\"})",
            |series| series.first().is_some_and(|s| series_value(s) > 0.0),
        )
        .await;
    assert!(series_value(&sizes[0]) > 0.0, "{sizes:?}");

    // The dashboard's graph, from Prometheus's federation API.
    let graph_url = format!(
        "{}api/graph?window=5m",
        mesh.state().control_plane.dashboard_url()
    );
    let deadline = Instant::now() + QUERY_DEADLINE;
    loop {
        let graph = mesh.get(&graph_url).await.unwrap().json();
        let edges = graph["edges"].as_array().cloned().unwrap_or_default();
        let from_productpage = edges.iter().any(|e| {
            e["source"] == "workload/default/productpage-v1"
                && e["target"] == "service/default/reviews"
                && e["security"] == "mutual_tls"
                && e["requestsPerSecond"].as_f64() > Some(0.0)
        });
        if from_productpage {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the dashboard never showed productpage -> reviews from Prometheus: {graph}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
