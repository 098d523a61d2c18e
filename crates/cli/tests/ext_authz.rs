//! Istio's external authorization task through real sidecars: httpbin
//! and the ext-authz sample (played by the demo app), the two sample
//! providers in the mesh config, and a CUSTOM AuthorizationPolicy on
//! httpbin's `/headers`, first with the gRPC provider, then the HTTP one.
//! Requests with `x-ext-authz: allow` pass, others get the authorizer's
//! 403; paths the rule does not name are never checked; a policy naming a
//! provider the mesh config lacks denies.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use trellis_testbed::{Reply, UpMesh};

const TRELLIS: &str = env!("CARGO_BIN_EXE_trellis");
const CONVERGENCE_DEADLINE: Duration = Duration::from_secs(20);
const DENIED_BODY: &str =
    "denied by ext_authz for not found header `x-ext-authz: allow` in the request";

const MESH_CONFIG: &str = "extensionProviders:
- name: sample-ext-authz-grpc
  envoyExtAuthzGrpc:
    service: ext-authz.default.svc.cluster.local
    port: 9000
- name: sample-ext-authz-http
  envoyExtAuthzHttp:
    service: ext-authz.default.svc.cluster.local
    port: 8000
    includeRequestHeadersInCheck: [x-ext-authz]
    headersToUpstreamOnAllow: [x-ext-authz-check-result]
    headersToDownstreamOnDeny: [x-ext-authz-check-result]
";

fn sample(relative: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../samples")
        .join(relative)
}

fn custom_policy(provider: &str) -> String {
    format!(
        "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {{name: ext-authz, namespace: default}}\nspec:\n  selector: {{matchLabels: {{app: httpbin}}}}\n  action: CUSTOM\n  provider: {{name: {provider}}}\n  rules:\n  - to:\n    - operation: {{paths: [\"/headers\"]}}\n"
    )
}

async fn get(mesh: &UpMesh, path: &str, verdict: &str) -> Reply {
    let url = format!("{}{path}", mesh.url("httpbin").trim_end_matches('/'));
    mesh.get_with_headers(&url, &[("x-ext-authz", verdict)])
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e:#}"))
}

async fn eventually_denied(mesh: &UpMesh, what: &str) -> Reply {
    let deadline = Instant::now() + CONVERGENCE_DEADLINE;
    loop {
        let reply = get(mesh, "/headers", "deny").await;
        if reply.status == 403 {
            return reply;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting until {what}: {reply:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What the task page shows for a provider: deny, allow (the app saw the
/// authorizer's verdict), and an unchecked path.
async fn check_task(mesh: &UpMesh, provider: &str) {
    let denied = eventually_denied(mesh, &format!("{provider} denies")).await;
    assert_eq!(denied.text(), DENIED_BODY, "{provider}");
    assert_eq!(
        denied
            .headers
            .get("x-ext-authz-check-result")
            .map(|v| v.to_str().unwrap()),
        Some("denied"),
        "{provider}"
    );
    let allowed = get(mesh, "/headers", "allow").await;
    assert_eq!(allowed.status, 200, "{provider}: {allowed:?}");
    let seen = allowed.demo();
    assert_eq!(
        seen.headers
            .get("x-ext-authz-check-result")
            .map(String::as_str),
        Some("allowed"),
        "{provider}: the app should see the authorizer's verdict: {:?}",
        seen.headers
    );
    let unchecked = get(mesh, "/ip", "deny").await;
    assert_eq!(unchecked.status, 200, "{provider}: /ip is not checked");
}

/// The authorizer's sidecar counted the Check calls as gRPC: one message
/// each way per call (Istio's `istio_request_messages_total` /
/// `istio_response_messages_total`).
async fn grpc_messages_counted(mesh: &UpMesh) {
    let authorizer = mesh.workload("ext-authz");
    let deadline = Instant::now() + CONVERGENCE_DEADLINE;
    loop {
        let stats = mesh.proxy_stats(authorizer).await;
        let messages = |metric: &str| -> f64 {
            stats
                .lines()
                .filter(|l| l.starts_with(&format!("{metric}{{")))
                .filter(|l| {
                    l.contains("reporter=\"destination\"")
                        && l.contains("request_protocol=\"grpc\"")
                        && l.contains("grpc_response_status=\"0\"")
                })
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum()
        };
        let calls = trellis_testbed::requests_counted(
            &stats,
            &["reporter=\"destination\"", "request_protocol=\"grpc\""],
        );
        let (sent, received) = (
            messages("istio_request_messages_total"),
            messages("istio_response_messages_total"),
        );
        if calls >= 2.0 && sent >= calls {
            // Unary calls: one message each way per call.
            assert_eq!(sent, received, "{stats}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no gRPC message counts on the authorizer's sidecar:\n{stats}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_policies_check_requests_with_the_grpc_and_http_sample_authorizers() {
    let config = tempfile::tempdir().unwrap();
    let mesh_config = config.path().join("mesh.yaml");
    std::fs::write(&mesh_config, MESH_CONFIG).unwrap();
    let mesh = UpMesh::builder(TRELLIS, "ext_authz")
        .file(sample("httpbin/httpbin.yaml"))
        .file(sample("ext-authz/ext-authz.yaml"))
        .arg("--mesh-config")
        .arg(mesh_config.display().to_string())
        .start()
        .await;
    assert_eq!(get(&mesh, "/headers", "deny").await.status, 200);

    mesh.write_config(
        "ext-authz-policy.yaml",
        &custom_policy("sample-ext-authz-grpc"),
    );
    check_task(&mesh, "sample-ext-authz-grpc").await;
    grpc_messages_counted(&mesh).await;

    // Switching providers: until the new config lands the old one answers
    // alike, so wait for the HTTP provider's mark (the check's path).
    mesh.write_config(
        "ext-authz-policy.yaml",
        &custom_policy("sample-ext-authz-http"),
    );
    let deadline = Instant::now() + CONVERGENCE_DEADLINE;
    loop {
        let allowed = get(&mesh, "/headers", "allow").await;
        let received = allowed
            .demo()
            .headers
            .get("x-ext-authz-check-received")
            .cloned();
        // Only the gRPC provider forwards what it received upstream.
        if allowed.status == 200 && received.is_none() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the HTTP provider never took over"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    check_task(&mesh, "sample-ext-authz-http").await;

    mesh.write_config("ext-authz-policy.yaml", &custom_policy("no-such-provider"));
    let deadline = Instant::now() + CONVERGENCE_DEADLINE;
    loop {
        let reply = get(&mesh, "/headers", "allow").await;
        if reply.status == 403 && reply.text() == "RBAC: access denied" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "an unknown provider should deny: {reply:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(get(&mesh, "/ip", "allow").await.status, 200);
}
