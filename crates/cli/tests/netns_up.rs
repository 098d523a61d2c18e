//! `trellis up --netns` end to end (root only): Bookinfo with every
//! workload in a network namespace of its own, real iptables capture, and
//! the ingress gateway on real ports, reached from the host through the
//! bridge. Without root (or `ip`/`iptables`) the mesh test skips with a
//! message; CI runs as root.

use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use trellis_testbed::netns::{existing_namespaces, is_root, unavailable};
use trellis_testbed::{UpMesh, UpState};

const TRELLIS: &str = env!("CARGO_BIN_EXE_trellis");
const DEADLINE: Duration = Duration::from_secs(60);
const NOBODY: u32 = 65534;

/// A Gateway server on port 80 (below 1024: served only because the
/// gateway's namespace allows it, as Istio's gateway pods do) routing to
/// the product page.
const GATEWAY_80: &str = "\
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: web-80}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ['*']
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web-80}
spec:
  hosts: ['*']
  gateways: [web-80]
  http:
  - match: [{uri: {exact: /productpage}}]
    route: [{destination: {host: productpage, port: {number: 9080}}}]
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bookinfo_runs_in_captured_pods_and_leaves_nothing_behind() {
    if let Some(reason) = unavailable() {
        eprintln!("skipping the `up --netns` end-to-end test: {reason}");
        return;
    }
    let mesh = UpMesh::builder(TRELLIS, "netns_up").netns().start().await;
    let state = mesh.state().clone();
    let network = state.network.as_ref().expect("up.json names the bridge");
    assert!(state.workloads.iter().all(|w| w.netns.is_some()));

    let page = mesh.ingress_gateway().url.clone().expect("a gateway URL");
    let reply = mesh
        .get(&page)
        .await
        .expect("the product page via the gateway");
    assert_eq!(reply.status, 200, "{}", reply.text());
    let demo = reply.demo();
    assert!(demo.undelivered_calls().is_empty(), "{}", reply.text());
    for service in ["details", "reviews"] {
        let call = demo
            .call(service)
            .unwrap_or_else(|| panic!("no {service} call"));
        assert!(call.answered_by_app(), "{}", reply.text());
    }
    reviews_saw_mtls_from_productpage(&mesh).await;
    serves_a_real_privileged_port(&mesh).await;
    routes_live_to_reviews_v3(&mesh, &page).await;

    let bridge = network.bridge.clone();
    drop(mesh);
    nothing_left(&state, &bridge);
}

/// Each hop was captured: the reviews sidecar counted productpage's
/// calls as the destination, over mutual TLS.
async fn reviews_saw_mtls_from_productpage(mesh: &UpMesh) {
    let wanted = [
        "reporter=\"destination\"",
        "source_workload=\"productpage-v1\"",
        "connection_security_policy=\"mutual_tls\"",
    ];
    let mut seen = String::new();
    for reviews in mesh.workloads_of("reviews") {
        let url = format!(
            "http://{}:{}/stats/prometheus",
            reviews.address, reviews.stats_port
        );
        let stats = mesh.get(&url).await.expect("reviews' metrics").text();
        let counted = stats.lines().any(|line| {
            line.starts_with("istio_requests_total{") && wanted.iter().all(|l| line.contains(l))
        });
        if counted {
            return;
        }
        seen.push_str(&stats);
    }
    panic!("no reviews sidecar counted an mTLS request from productpage:\n{seen}");
}

/// A Gateway added live on port 80 is served on port 80 itself.
async fn serves_a_real_privileged_port(mesh: &UpMesh) {
    mesh.write_config("web-80.yaml", GATEWAY_80);
    let address = mesh.ingress_gateway().address;
    let url = format!("http://{address}:80/productpage");
    let deadline = Instant::now() + DEADLINE;
    loop {
        match mesh.get(&url).await {
            Ok(reply) if reply.status == 200 => return,
            outcome if Instant::now() > deadline => {
                panic!("{url} never answered 200: {:?}", outcome.map(|r| r.text()))
            }
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// Replacing the 90/10 split with "all to v3" takes effect live.
async fn routes_live_to_reviews_v3(mesh: &UpMesh, page: &str) {
    let v3 = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../samples/bookinfo/networking/virtual-service-reviews-v3.yaml"),
    )
    .expect("the bundled sample");
    mesh.write_config("virtual-service-reviews-90-10.yaml", &v3);
    let deadline = Instant::now() + DEADLINE;
    let mut in_a_row = 0;
    while in_a_row < 10 {
        assert!(
            Instant::now() < deadline,
            "reviews did not move to v3 within {DEADLINE:?}"
        );
        let reply = mesh.get(page).await.expect("the product page");
        if reply.status == 200 && reply.version_of("reviews").as_deref() == Some("v3") {
            in_a_row += 1;
        } else {
            in_a_row = 0;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// After `up` has exited: no namespace, veth, bridge, hosts file or lock.
fn nothing_left(state: &UpState, bridge: &str) {
    let namespaces: Vec<&str> = state
        .workloads
        .iter()
        .filter_map(|w| w.netns.as_deref())
        .collect();
    let left = existing_namespaces().expect("listing namespaces");
    let stale: Vec<_> = namespaces
        .iter()
        .filter(|n| left.iter().any(|l| l == *n))
        .collect();
    assert!(stale.is_empty(), "namespaces left: {stale:?}");
    for name in &namespaces {
        let etc = Path::new("/etc/netns").join(name);
        assert!(!etc.exists(), "{} left", etc.display());
    }
    assert!(
        !Path::new("/sys/class/net").join(bridge).exists(),
        "bridge {bridge} left"
    );
    let id = bridge.trim_start_matches("trellis-");
    let veths = std::fs::read_dir("/sys/class/net")
        .expect("listing interfaces")
        .flatten()
        .filter_map(|entry| entry.file_name().into_string().ok())
        .filter(|name| name.starts_with(&format!("tr{id}-")))
        .collect::<Vec<_>>();
    assert!(veths.is_empty(), "veths left: {veths:?}");
    let lock = format!("/run/trellis/up-{id}.lock");
    assert!(!Path::new(&lock).exists(), "{lock} left");
}

#[test]
fn netns_without_root_is_refused_with_the_reason() {
    let mut command = Command::new(TRELLIS);
    command.args(["up", "--netns"]);
    if is_root() {
        command.uid(NOBODY).gid(NOBODY);
    }
    let output = command.output().expect("running trellis up --netns");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("--netns needs root"), "{stderr}");
    if is_root() {
        assert!(stderr.contains(&format!("uid {NOBODY}")), "{stderr}");
    }
}
