//! The Telemetry API's `metrics` and `accessLogging` on a live `trellis
//! up`: a Telemetry resource written into the config dir adds, removes
//! and drops metric labels and series on the sidecars (CEL over Envoy's
//! attributes), and filters their access log lines, without a restart.

use std::time::{Duration, Instant};

use trellis_testbed::UpMesh;

const TRELLIS: &str = env!("CARGO_BIN_EXE_trellis");
/// Convergence is a benchmark figure; tests only give it a generous deadline.
const DEADLINE: Duration = Duration::from_secs(20);

const TELEMETRY: &str = r#"
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata:
  name: mesh-default
  namespace: istio-system
spec:
  metrics:
  - providers:
    - name: prometheus
    overrides:
    - match:
        metric: REQUEST_COUNT
      tagOverrides:
        request_host:
          value: request.host
        request_protocol:
          operation: REMOVE
    - match:
        metric: REQUEST_SIZE
        mode: SERVER
      disabled: true
  accessLogging:
  - providers:
    - name: envoy
    filter:
      expression: "request.headers['x-log-me'] == 'yes'"
"#;

fn series<'a>(exposition: &'a str, metric: &str) -> Vec<&'a str> {
    exposition
        .lines()
        .filter(|line| line.starts_with(&format!("{metric}{{")))
        .collect()
}

fn total(lines: &[&str]) -> f64 {
    lines
        .iter()
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telemetry_overrides_labels_drops_series_and_filters_logs() {
    let mesh = UpMesh::start(TRELLIS, "telemetry_api").await;
    let productpage = mesh.workload("productpage-v1");
    let url = mesh.url("productpage");
    mesh.write_config("telemetry.yaml", TELEMETRY);

    // Converged once the inbound side counts requests with the new label.
    let deadline = Instant::now() + DEADLINE;
    let stats = loop {
        let reply = mesh.get(&url).await.unwrap();
        assert_eq!(reply.status, 200, "{}", reply.text());
        let stats = mesh.proxy_stats(productpage).await;
        let labelled = series(&stats, "istio_requests_total")
            .into_iter()
            .any(|l| l.contains("reporter=\"destination\"") && l.contains("request_host=\""));
        if labelled {
            break stats;
        }
        assert!(
            Instant::now() < deadline,
            "no request_host label after {DEADLINE:?}:\n{stats}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let relabelled: Vec<&str> = series(&stats, "istio_requests_total")
        .into_iter()
        .filter(|l| l.contains("request_host=\""))
        .collect();
    for line in &relabelled {
        assert!(!line.contains("request_protocol="), "removed label: {line}");
        assert!(
            line.contains("source_workload=\""),
            "standard labels stay: {line}"
        );
    }
    // Other metrics keep their standard labels.
    assert!(
        series(&stats, "istio_request_duration_milliseconds_count")
            .iter()
            .all(|l| l.contains("request_protocol=\"http\"") && !l.contains("request_host=")),
        "{stats}"
    );

    // The server side no longer counts request sizes; the client side does.
    let sizes = |stats: &str, reporter: &str| {
        let lines = series(stats, "istio_request_bytes_count");
        let wanted: Vec<&str> = lines
            .into_iter()
            .filter(|l| l.contains(&format!("reporter=\"{reporter}\"")))
            .collect();
        total(&wanted)
    };
    let (server_before, client_before) = (sizes(&stats, "destination"), sizes(&stats, "source"));
    for _ in 0..5 {
        assert_eq!(mesh.get(&url).await.unwrap().status, 200);
    }
    let after = mesh.proxy_stats(productpage).await;
    assert_eq!(sizes(&after, "destination"), server_before, "{after}");
    assert!(sizes(&after, "source") > client_before, "{after}");

    // Only requests the CEL filter accepts are logged.
    let dropped = mesh
        .get_with_headers(&url, &[("x-request-id", "telemetry-dropped-1")])
        .await
        .unwrap();
    assert_eq!(dropped.status, 200);
    let kept = mesh
        .get_with_headers(
            &url,
            &[("x-request-id", "telemetry-kept-1"), ("x-log-me", "yes")],
        )
        .await
        .unwrap();
    assert_eq!(kept.status, 200);
    let deadline = Instant::now() + DEADLINE;
    let prefix = format!("[{}/sidecar] ", productpage.pod);
    loop {
        let output = mesh.output();
        let sidecar: Vec<&String> = output.iter().filter(|l| l.starts_with(&prefix)).collect();
        if sidecar.iter().any(|l| l.contains("telemetry-kept-1")) {
            assert!(
                !sidecar.iter().any(|l| l.contains("telemetry-dropped-1")),
                "the filter let a request without x-log-me through:\n{}",
                output.join("\n")
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no log line for the request the filter accepts:\n{}",
            output.join("\n")
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_expression_is_refused_naming_the_field() {
    let mesh = UpMesh::start(TRELLIS, "telemetry_api_invalid").await;
    let broken = TELEMETRY.replace("value: request.host", "value: request.host +");
    mesh.write_config("telemetry.yaml", &broken);
    let deadline = Instant::now() + DEADLINE;
    loop {
        let output = mesh.output();
        if let Some(line) = output.iter().find(|l| l.contains("invalid CEL expression")) {
            assert!(line.contains("telemetry.yaml"), "{line}");
            assert!(
                line.contains("tagOverrides.request_host.value"),
                "names the field: {line}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no error for the invalid expression:\n{}",
            output.join("\n")
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The last good config stays: requests still flow and are counted.
    assert_eq!(
        mesh.get(&mesh.url("productpage")).await.unwrap().status,
        200
    );
}
