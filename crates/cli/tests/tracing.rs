//! Distributed tracing end to end on `trellis up` with Bookinfo: the mesh
//! config names Zipkin and OpenTelemetry collectors (the test's own, on
//! loopback, reached through ServiceEntries), Telemetry resources send the
//! ratings and details spans over OTLP gRPC and OTLP/HTTP, and every hop's
//! span arrives with one trace id, parent/child links across sidecars,
//! server and client kinds, and Istio's tags.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use trellis_testbed::{CollectedSpan, Received, TraceCollector, UpMesh};

const TRELLIS: &str = env!("CARGO_BIN_EXE_trellis");
const SPAN_DEADLINE: Duration = Duration::from_secs(20);

fn mesh_config() -> String {
    "defaultProviders: {tracing: [zipkin]}\n\
     defaultConfig: {tracing: {sampling: 100}}\n\
     extensionProviders:\n\
     - name: zipkin\n  zipkin: {service: zipkin.collector.test, port: 9411}\n\
     - name: otel-grpc\n  opentelemetry: {service: otel-grpc.collector.test, port: 4317}\n\
     - name: otel-http\n  opentelemetry: {service: otel-http.collector.test, port: 4318, http: {path: /v1/traces}}\n"
        .to_string()
}

fn collector_entries(collector: &TraceCollector) -> String {
    let entry = |name: &str, port: u16, protocol: &str, target: u16| {
        format!(
            "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: {name}}}\nspec:\n  \
             hosts: [{name}.collector.test]\n  ports: [{{number: {port}, name: {p}, protocol: {protocol}, targetPort: {target}}}]\n  \
             resolution: STATIC\n  endpoints: [{{address: 127.0.0.1}}]\n---\n",
            p = protocol.to_lowercase(),
        )
    };
    let http = collector.http_address.port();
    let grpc = collector.grpc_address.port();
    let telemetry = |workload: &str, provider: &str| {
        format!(
            "apiVersion: telemetry.istio.io/v1\nkind: Telemetry\nmetadata: {{name: {workload}-tracing, namespace: default}}\n\
             spec:\n  selector: {{matchLabels: {{app: {workload}}}}}\n  tracing:\n  - providers: [{{name: {provider}}}]\n---\n"
        )
    };
    [
        entry("zipkin", 9411, "HTTP", http),
        entry("otel-http", 4318, "HTTP", http),
        entry("otel-grpc", 4317, "GRPC", grpc),
        telemetry("ratings", "otel-grpc"),
        telemetry("details", "otel-http"),
    ]
    .concat()
}

fn of_request<'a>(spans: &'a [CollectedSpan], request_id: &str) -> Vec<&'a CollectedSpan> {
    spans
        .iter()
        .filter(|s| s.tags.get("guid:x-request-id").map(String::as_str) == Some(request_id))
        .collect()
}

/// productpage (server, then client to details and reviews), details and
/// reviews (servers); reviews v2/v3 also call ratings.
fn complete(spans: &[&CollectedSpan]) -> bool {
    let servers: HashSet<&str> = spans
        .iter()
        .filter(|s| s.kind == "SERVER")
        .filter_map(|s| s.tags.get("istio.canonical_service").map(String::as_str))
        .collect();
    let calls_ratings = spans
        .iter()
        .any(|s| s.kind == "CLIENT" && s.name.starts_with("ratings"));
    ["productpage", "details", "reviews"]
        .iter()
        .all(|s| servers.contains(s))
        && (!calls_ratings || servers.contains("ratings"))
        && spans.iter().filter(|s| s.kind == "CLIENT").count() >= 2
        // Sidecars export in their own batches: wait for every parent too.
        && spans.iter().all(|s| {
            s.parent_id
                .as_deref()
                .is_none_or(|parent| spans.iter().any(|p| p.span_id == parent))
        })
}

async fn traced_request(
    mesh: &UpMesh,
    collector: &TraceCollector,
    request_id: &str,
) -> Vec<CollectedSpan> {
    let headers = [("x-request-id", request_id)];
    let reply = mesh
        .get_with_headers(&mesh.url("productpage"), &headers)
        .await
        .unwrap();
    assert_eq!(reply.status, 200, "{}", reply.text());
    let spans = collector
        .wait_for(SPAN_DEADLINE, |spans| {
            complete(&of_request(spans, request_id))
        })
        .await;
    let mine: Vec<CollectedSpan> = of_request(&spans, request_id)
        .into_iter()
        .cloned()
        .collect();
    assert!(
        complete(&mine.iter().collect::<Vec<_>>()),
        "spans of {request_id}: {mine:#?}\nall: {}",
        spans.len()
    );
    mine
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_hop_reports_a_linked_span_to_its_collector() {
    let collector = TraceCollector::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mesh_file = dir.path().join("mesh.yaml");
    std::fs::write(&mesh_file, mesh_config()).unwrap();
    let entries = dir.path().join("collectors.yaml");
    std::fs::write(&entries, collector_entries(&collector)).unwrap();
    let bookinfo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../samples/bookinfo/platform/bookinfo.yaml");
    let mesh = UpMesh::builder(TRELLIS, "tracing")
        .file(bookinfo)
        .file(&entries)
        .arg("--mesh-config")
        .arg(mesh_file.display().to_string())
        .start()
        .await;

    let spans = traced_request(&mesh, &collector, "trace-e2e-1").await;
    let trace_ids: HashSet<&str> = spans.iter().map(|s| s.trace_id.as_str()).collect();
    assert_eq!(trace_ids.len(), 1, "one trace across every hop: {spans:#?}");
    let by_id: HashMap<&str, &CollectedSpan> =
        spans.iter().map(|s| (s.span_id.as_str(), s)).collect();
    let roots: Vec<_> = spans.iter().filter(|s| s.parent_id.is_none()).collect();
    assert_eq!(roots.len(), 1, "{spans:#?}");
    assert_eq!(roots[0].kind, "SERVER");
    assert_eq!(roots[0].tags["istio.canonical_service"], "productpage");
    for span in spans.iter().filter(|s| s.parent_id.is_some()) {
        let parent = by_id[span.parent_id.as_deref().unwrap()];
        match span.kind.as_str() {
            // A server span's parent is the calling sidecar's client span.
            "SERVER" => {
                assert_eq!(parent.kind, "CLIENT", "{span:#?}");
                assert_ne!(parent.tags["node_id"], span.tags["node_id"]);
            }
            // A client span's parent is its own workload's server span
            // (the app forwarded the headers).
            "CLIENT" => {
                assert_eq!(parent.kind, "SERVER", "{span:#?}");
                assert_eq!(
                    parent.tags["istio.canonical_service"],
                    span.tags["istio.canonical_service"]
                );
            }
            other => panic!("kind {other}"),
        }
    }
    for span in &spans {
        for tag in [
            "component",
            "node_id",
            "http.method",
            "http.url",
            "http.status_code",
            "response_flags",
            "upstream_cluster",
            "peer.address",
            "request_size",
            "response_size",
            "user_agent",
            "downstream_cluster",
            "istio.namespace",
            "istio.canonical_service",
        ] {
            assert!(span.tags.contains_key(tag), "{tag} missing: {span:#?}");
        }
        assert_eq!(span.tags["http.status_code"], "200");
        assert_eq!(span.tags["component"], "proxy");
        let expected_via = match span.tags["istio.canonical_service"].as_str() {
            "ratings" => Received::OtlpGrpc,
            "details" => Received::OtlpHttp,
            _ => Received::Zipkin,
        };
        assert_eq!(span.via, expected_via, "{span:#?}");
    }
    let client = spans
        .iter()
        .find(|s| s.kind == "CLIENT" && s.name.starts_with("reviews"))
        .unwrap();
    assert!(
        client.tags["upstream_cluster"].starts_with("outbound|9080|"),
        "{client:#?}"
    );

    // A caller's "not sampled" is honoured at every hop; sampling at 100%
    // traces every other request.
    let unsampled = [("x-request-id", "trace-e2e-off"), ("x-b3-sampled", "0")];
    let reply = mesh
        .get_with_headers(&mesh.url("productpage"), &unsampled)
        .await
        .unwrap();
    assert_eq!(reply.status, 200);
    for round in 2..5 {
        traced_request(&mesh, &collector, &format!("trace-e2e-{round}")).await;
    }
    // Each sidecar exports in order, so the unsampled request's spans
    // would have come before these.
    let spans = collector.spans();
    let unsampled = of_request(&spans, "trace-e2e-off");
    assert!(unsampled.is_empty(), "{unsampled:#?}");
}
