//! AuthorizationPolicy on the ingress gateway, as Istio's ingress task
//! pages use it: a policy in istio-system selecting the gateway allows
//! only listed client addresses (`ipBlocks`), and a DENY on a path refuses
//! it at the edge, before any sidecar sees the request.

use std::time::{Duration, Instant};

use trellis_testbed::UpMesh;

const TRELLIS: &str = env!("CARGO_BIN_EXE_trellis");
const CONVERGENCE_DEADLINE: Duration = Duration::from_secs(20);

fn gateway_policy(name: &str, spec: &str) -> String {
    format!(
        "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {{name: {name}, namespace: istio-system}}\nspec:\n  selector: {{matchLabels: {{istio: ingressgateway}}}}\n{spec}"
    )
}

async fn status_until(mesh: &UpMesh, url: &str, wanted: u16) -> (u16, String) {
    let deadline = Instant::now() + CONVERGENCE_DEADLINE;
    loop {
        let reply = mesh
            .get(url)
            .await
            .unwrap_or_else(|e| panic!("GET {url}: {e:#}"));
        if reply.status == wanted || Instant::now() > deadline {
            return (reply.status, reply.text());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policies_selecting_the_ingress_gateway_apply_at_the_edge() {
    let mesh = UpMesh::start(TRELLIS, "gateway_authz").await;
    let page = format!("{}/productpage", mesh.gateway_base_url(8080));
    assert_eq!(status_until(&mesh, &page, 200).await.0, 200);

    // Only clients from 10.0.0.0/8: the test's loopback client is not one.
    mesh.write_config(
        "ingress-policy.yaml",
        &gateway_policy(
            "ingress-policy",
            "  action: ALLOW\n  rules:\n  - from:\n    - source: {ipBlocks: [10.0.0.0/8]}\n",
        ),
    );
    assert_eq!(
        status_until(&mesh, &page, 403).await,
        (403, "RBAC: access denied".to_owned())
    );
    mesh.write_config(
        "ingress-policy.yaml",
        &gateway_policy(
            "ingress-policy",
            "  action: ALLOW\n  rules:\n  - from:\n    - source: {ipBlocks: [127.0.0.1/32]}\n",
        ),
    );
    assert_eq!(status_until(&mesh, &page, 200).await.0, 200);

    mesh.write_config(
        "ingress-deny.yaml",
        &gateway_policy(
            "deny-static",
            "  action: DENY\n  rules:\n  - to:\n    - operation: {paths: [/static*]}\n",
        ),
    );
    let stylesheet = format!("{}/static/style.css", mesh.gateway_base_url(8080));
    assert_eq!(status_until(&mesh, &stylesheet, 403).await.0, 403);
    assert_eq!(status_until(&mesh, &page, 200).await.0, 200);
}
