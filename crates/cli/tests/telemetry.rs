//! Telemetry end to end on `trellis up` with Bookinfo: sidecars' access
//! log lines (Istio's default text and JSON formats, on the sidecars'
//! stdout) and the source workload that the metadata exchange lets the serving side
//! name in its metrics.

use std::time::{Duration, Instant};

use trellis_testbed::UpMesh;

const TRELLIS: &str = env!("CARGO_BIN_EXE_trellis");
const LOG_DEADLINE: Duration = Duration::from_secs(10);
const PRODUCTPAGE_ID: &str = "spiffe://cluster.local/ns/default/sa/bookinfo-productpage";
const REVIEWS_CLUSTER_HOST: &str = "|reviews.default.svc.cluster.local";

/// The first line any of `pods`' sidecars printed that satisfies `wanted`,
/// waiting for it up to [`LOG_DEADLINE`].
async fn sidecar_line(mesh: &UpMesh, pods: &[&str], wanted: impl Fn(&str) -> bool) -> String {
    let prefixes: Vec<String> = pods.iter().map(|pod| format!("[{pod}/sidecar] ")).collect();
    let deadline = Instant::now() + LOG_DEADLINE;
    loop {
        let output = mesh.output();
        let found = output.iter().find(|line| {
            prefixes
                .iter()
                .any(|prefix| line.starts_with(prefix.as_str()))
                && wanted(line)
        });
        if let Some(line) = found {
            return line.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no such access log line from {pods:?}; output:\n{}",
            output.join("\n")
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sidecars_log_each_request_with_peer_identities() {
    let mesh = UpMesh::start(TRELLIS, "access_logs").await;
    let reply = mesh.get(&mesh.url("productpage")).await.unwrap();
    assert_eq!(reply.status, 200, "{}", reply.text());

    let reviews: Vec<&str> = mesh
        .workloads_of("reviews")
        .iter()
        .map(|w| w.pod.as_str())
        .collect();
    // The answered attempt: an app still binding its port right after
    // `ready` costs a first attempt a 503 UF that the caller retries.
    let inbound = sidecar_line(&mesh, &reviews, |line| {
        line.contains(PRODUCTPAGE_ID)
            && line.contains("\"GET /reviews")
            && line.contains("HTTP/1.1\" 200 - via_upstream")
    })
    .await;
    assert!(
        inbound.contains("HTTP/1.1\" 200 - via_upstream"),
        "{inbound}"
    );
    assert!(inbound.contains(" inbound|9080||"), "{inbound}");

    let productpage = mesh.workload("productpage-v1").pod.as_str();
    let outbound = sidecar_line(&mesh, &[productpage], |line| {
        line.contains(" outbound|9080|") && line.contains(REVIEWS_CLUSTER_HOST)
    })
    .await;
    assert!(outbound.contains("\" 200 - via_upstream"), "{outbound}");
    assert!(
        outbound.contains("spiffe://cluster.local/ns/default/sa/bookinfo-reviews"),
        "the outbound line names the upstream's identity: {outbound}"
    );
}

/// The JSON object a sidecar line carries after its `[pod/sidecar] `
/// prefix, if it is one.
fn json_log(line: &str) -> Option<serde_json::Value> {
    let (_, json) = line.split_once("/sidecar] ")?;
    serde_json::from_str(json).ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_access_logs_are_one_object_per_request() {
    let mesh = UpMesh::builder(TRELLIS, "json_access_logs")
        .arg("--access-log-encoding")
        .arg("json")
        .start()
        .await;
    let reply = mesh.get(&mesh.url("productpage")).await.unwrap();
    assert_eq!(reply.status, 200, "{}", reply.text());

    let reviews: Vec<&str> = mesh
        .workloads_of("reviews")
        .iter()
        .map(|w| w.pod.as_str())
        .collect();
    let inbound = sidecar_line(&mesh, &reviews, |line| {
        json_log(line).is_some_and(|log| {
            log["downstream_peer_uri_san"] == PRODUCTPAGE_ID
                && log["path"]
                    .as_str()
                    .is_some_and(|p| p.starts_with("/reviews"))
        })
    })
    .await;
    let inbound = json_log(&inbound).unwrap();
    assert_eq!(
        inbound["response_code"],
        serde_json::json!(200),
        "{inbound}"
    );
    assert_eq!(inbound["method"], "GET", "{inbound}");
    assert_eq!(
        inbound["response_code_details"], "via_upstream",
        "{inbound}"
    );
    assert!(inbound["duration"].is_u64(), "{inbound}");
    assert!(inbound["bytes_sent"].as_u64() > Some(0), "{inbound}");
    assert!(
        inbound["upstream_cluster"]
            .as_str()
            .is_some_and(|cluster| cluster.starts_with("inbound|9080||")),
        "{inbound}"
    );
    // A header the request did not carry is null, not "-".
    assert!(inbound["x_forwarded_for"].is_null(), "{inbound}");

    let productpage = mesh.workload("productpage-v1").pod.as_str();
    let outbound = sidecar_line(&mesh, &[productpage], |line| {
        json_log(line).is_some_and(|log| {
            log["upstream_cluster"].as_str().is_some_and(|cluster| {
                cluster.starts_with("outbound|9080|") && cluster.ends_with(REVIEWS_CLUSTER_HOST)
            })
        })
    })
    .await;
    let outbound = json_log(&outbound).unwrap();
    assert_eq!(
        outbound["response_code"],
        serde_json::json!(200),
        "{outbound}"
    );
    assert_eq!(
        outbound["upstream_peer_uri_san"], "spiffe://cluster.local/ns/default/sa/bookinfo-reviews",
        "{outbound}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbound_metrics_name_the_source_workload() {
    let mesh = UpMesh::start(TRELLIS, "peer_metadata").await;
    // A client outside the mesh cannot make itself a workload, and apps
    // never see the exchange headers.
    let spoofed = [
        ("x-envoy-peer-metadata", "ChYKDVdPUktMT0FEX05BTUUSBRoDZXZp"),
        (
            "x-envoy-peer-metadata-id",
            "sidecar~6.6.6.6~evil.default~default.svc.cluster.local",
        ),
    ];
    let reply = mesh
        .get_with_headers(&mesh.url("productpage"), &spoofed)
        .await
        .unwrap();
    assert_eq!(reply.status, 200, "{}", reply.text());
    let tree = reply.demo();
    for service in ["productpage", "details", "reviews"] {
        let call = tree.find(service).expect("productpage called it");
        assert!(
            !call
                .headers
                .keys()
                .any(|name| name.starts_with("x-envoy-peer-metadata")),
            "{service}'s app got exchange headers: {:?}",
            call.headers
        );
    }

    let details = mesh.workload("details-v1");
    let exposition = mesh
        .get(&format!(
            "http://{}:{}/stats/prometheus",
            details.address, details.stats_port
        ))
        .await
        .unwrap()
        .text();
    // Other inbound series (probes from outside the mesh) stay `unknown`.
    let labels = [
        "reporter=\"destination\"",
        "source_workload=\"productpage-v1\"",
        "source_workload_namespace=\"default\"",
        "source_app=\"productpage\"",
        "source_version=\"v1\"",
        "source_principal=\"spiffe://cluster.local/ns/default/sa/bookinfo-productpage\"",
        "source_canonical_service=\"productpage\"",
        "source_canonical_revision=\"v1\"",
        "source_cluster=\"Kubernetes\"",
        "destination_canonical_service=\"details\"",
        "destination_canonical_revision=\"v1\"",
        "destination_cluster=\"Kubernetes\"",
        "request_protocol=\"http\"",
        "grpc_response_status=\"\"",
    ];
    for metric in [
        "istio_requests_total{",
        "istio_request_bytes_count{",
        "istio_response_bytes_count{",
    ] {
        assert!(
            exposition
                .lines()
                .any(|line| line.starts_with(metric)
                    && labels.iter().all(|label| line.contains(label))),
            "no inbound {metric} series with {labels:?} in:\n{exposition}"
        );
    }
    // details answers a JSON body of some hundred bytes: not in the 1-100 buckets.
    let small_responses = exposition.lines().find(|line| {
        line.starts_with("istio_response_bytes_bucket{")
            && line.contains("source_workload=\"productpage-v1\"")
            && line.contains("le=\"100.0\"")
    });
    assert!(
        small_responses.is_some_and(|line| line.ends_with(" 0")),
        "{small_responses:?}"
    );

    let productpage = mesh.workload("productpage-v1");
    let exposition = mesh
        .get(&format!(
            "http://{}:{}/stats/prometheus",
            productpage.address, productpage.stats_port
        ))
        .await
        .unwrap()
        .text();
    assert!(
        !exposition.contains("source_workload=\"evi\""),
        "a plaintext client's metadata was trusted:\n{exposition}"
    );
}
