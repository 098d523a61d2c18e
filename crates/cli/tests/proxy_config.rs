//! `trellis proxy-config` and the proxy's admin endpoints against a running
//! Bookinfo: each table names what the sidecar really runs, a saved config
//! dump reads the same as the live one, log levels change at run time, the
//! status port merges metrics, and `/drain_listeners` stops inbound traffic.

use std::net::SocketAddr;
use std::process::Command;

use trellis_testbed::{UpMesh, send_raw};

const TRELLIS: &str = env!("CARGO_BIN_EXE_trellis");
const PRODUCTPAGE: &str = "productpage-v1-0.default";

fn trellis(mesh: &UpMesh, args: &[&str]) -> std::process::Output {
    let monitoring = mesh.state().control_plane.monitoring_address.to_string();
    let mut command = Command::new(TRELLIS);
    command.arg("proxy-config").args(args);
    if !args.iter().any(|a| *a == "-f" || *a == "--admin") {
        command.args(["--control-plane", &monitoring]);
    }
    command.output().expect("running trellis proxy-config")
}

fn proxy_config(mesh: &UpMesh, args: &[&str]) -> String {
    let output = trellis(mesh, args);
    assert!(
        output.status.success(),
        "proxy-config {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8 output")
}

/// The row whose cells are exactly `cells` (columns are space-aligned).
fn has_row(table: &str, cells: &[&str]) -> bool {
    table
        .lines()
        .any(|line| line.split_whitespace().collect::<Vec<_>>() == cells)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_config_shows_what_a_sidecar_runs() {
    let mesh = UpMesh::start(TRELLIS, "proxy_config").await;
    let reviews_v1 = mesh.workload("reviews-v1");
    let productpage = mesh.workload("productpage-v1");
    let admin = SocketAddr::new(productpage.address.into(), productpage.admin_port);

    let clusters = proxy_config(&mesh, &["cluster", PRODUCTPAGE]);
    assert!(clusters.starts_with("SERVICE FQDN"), "{clusters}");
    assert!(
        has_row(
            &clusters,
            &[
                "reviews.default.svc.cluster.local",
                "9080",
                "v1",
                "outbound",
                "EDS",
                "reviews.default"
            ]
        ),
        "{clusters}"
    );
    let only_v2 = proxy_config(
        &mesh,
        &[
            "cluster",
            PRODUCTPAGE,
            "--subset",
            "v2",
            "--fqdn",
            "reviews.default.svc.cluster.local",
        ],
    );
    assert_eq!(only_v2.lines().count(), 2, "{only_v2}");

    let listeners = proxy_config(&mesh, &["listener", PRODUCTPAGE]);
    assert!(listeners.starts_with("ADDRESSES"), "{listeners}");
    assert!(listeners.contains("Route: http_proxy"), "{listeners}");

    let routes = proxy_config(&mesh, &["route", PRODUCTPAGE, "--name", "http_proxy"]);
    let reviews_route = routes
        .lines()
        .find(|l| l.contains("reviews.default.svc.cluster.local:9080"))
        .unwrap_or_else(|| panic!("no reviews route:\n{routes}"));
    assert!(
        reviews_route.trim_end().ends_with("reviews.default"),
        "{routes}"
    );

    let cluster = "outbound|9080|v1|reviews.default.svc.cluster.local";
    let endpoints = proxy_config(&mesh, &["endpoint", PRODUCTPAGE, "--cluster", cluster]);
    let endpoint = format!("{}:9080", reviews_v1.address);
    assert!(
        has_row(&endpoints, &[&endpoint, "HEALTHY", "OK", cluster]),
        "{endpoints}"
    );
    assert_eq!(endpoints.lines().count(), 2, "{endpoints}");

    let secrets = proxy_config(&mesh, &["secret", PRODUCTPAGE]);
    let workload_cert = secrets
        .lines()
        .find(|l| l.starts_with("default "))
        .unwrap_or_else(|| panic!("no workload certificate:\n{secrets}"));
    let cells: Vec<&str> = workload_cert.split_whitespace().collect();
    assert_eq!(
        cells[1..5],
        ["Cert", "Chain", "ACTIVE", "true"],
        "{secrets}"
    );
    assert!(
        secrets
            .lines()
            .any(|l| l.starts_with("ROOTCA") && l.contains(" CA ")),
        "{secrets}"
    );

    let bootstrap = proxy_config(&mesh, &["bootstrap", PRODUCTPAGE, "-o", "json"]);
    let bootstrap: serde_json::Value = serde_json::from_str(&bootstrap).unwrap();
    let node_id = bootstrap[0]["bootstrap"]["node"]["id"].as_str().unwrap();
    assert!(node_id.contains(PRODUCTPAGE), "{node_id}");

    let yaml = proxy_config(
        &mesh,
        &[
            "cluster",
            PRODUCTPAGE,
            "--fqdn",
            "details.default.svc.cluster.local",
            "-o",
            "yaml",
        ],
    );
    assert!(
        yaml.contains("outbound|9080||details.default.svc.cluster.local"),
        "{yaml}"
    );

    // A saved dump reads as the live proxy does.
    let dump = mesh
        .get(&format!("http://{admin}/config_dump"))
        .await
        .unwrap()
        .text();
    let saved = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(saved.path(), dump).unwrap();
    let path = saved.path().to_str().unwrap();
    assert_eq!(proxy_config(&mesh, &["cluster", "-f", path]), clusters);

    // Log levels per component, changed while the proxy runs.
    let levels = proxy_config(
        &mesh,
        &["log", PRODUCTPAGE, "--level", "rbac:debug,router:trace"],
    );
    assert!(
        levels.contains("  rbac: debug\n") && levels.contains("  router: trace\n"),
        "{levels}"
    );
    assert!(levels.contains("  admin: warning\n"), "{levels}");
    let reset = proxy_config(&mesh, &["log", PRODUCTPAGE, "-r"]);
    assert!(reset.contains("  rbac: warning\n"), "{reset}");
    let refused = trellis(&mesh, &["log", PRODUCTPAGE, "--level", "nope:debug"]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("unknown logger name: nope"));

    let missing = trellis(&mesh, &["cluster", "nobody.default"]);
    assert!(!missing.status.success());
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("no proxy nobody.default is connected"),
        "{}",
        String::from_utf8_lossy(&missing.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_stats_status_port_and_drain() {
    let mesh = UpMesh::start(TRELLIS, "proxy_admin").await;
    let details = mesh.workload("details-v1");
    let admin = format!("http://{}:{}", details.address, details.admin_port);

    let stats = mesh.get(&format!("{admin}/stats")).await.unwrap().text();
    for line in [
        "server.state: 0",
        "server.live: 1",
        "listener_manager.workers_started: 1",
    ] {
        assert!(stats.lines().any(|l| l == line), "{line} missing:\n{stats}");
    }
    let accepted = stats
        .lines()
        .find_map(|l| l.strip_prefix("cluster_manager.cds.update_success: "))
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or_else(|| panic!("no CDS count:\n{stats}"));
    assert!(accepted >= 1, "{stats}");
    let filtered = mesh
        .get(&format!("{admin}/stats?format=json&filter=%5Eserver%5C."))
        .await
        .unwrap()
        .json();
    let names: Vec<&str> = filtered["stats"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["server.live", "server.state", "server.uptime"]);
    let bad = mesh.get(&format!("{admin}/stats?filter=(")).await.unwrap();
    assert_eq!(bad.status, 400);

    // The status port serves the proxy's metrics with the agent's counts.
    let productpage = mesh.workload("productpage-v1");
    let page = format!("http://{}:9080/productpage", productpage.address);
    assert_eq!(mesh.get(&page).await.unwrap().status, 200);
    let merged = mesh
        .get(&format!(
            "http://{}:15020/stats/prometheus",
            details.address
        ))
        .await
        .unwrap()
        .text();
    assert!(merged.contains("istio_requests_total{"), "{merged}");
    assert!(merged.contains("istio_agent_scrapes_total 1"), "{merged}");
    let ready = mesh
        .get(&format!("http://{}:15020/healthz/ready", details.address))
        .await
        .unwrap();
    assert_eq!(ready.status, 200);

    // Draining inbound listeners: the app is no longer reachable through
    // the sidecar and the proxy reports itself not ready.
    let address = SocketAddr::new(details.address.into(), details.admin_port);
    let reply = send_raw(
        address,
        b"POST /drain_listeners?inboundonly HTTP/1.1\r\nHost: admin\r\nContent-Length: 0\r\n\r\n",
    )
    .await
    .unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    let inbound = SocketAddr::new(details.address.into(), 9080);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while tokio::net::TcpStream::connect(inbound).await.is_ok() {
        assert!(
            std::time::Instant::now() < deadline,
            "details still accepts after the drain"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let ready = mesh.get(&format!("{admin}/ready")).await.unwrap();
    assert_eq!(ready.status, 503);
    let stats = mesh.get(&format!("{admin}/stats")).await.unwrap().text();
    assert!(stats.lines().any(|l| l == "server.state: 1"), "{stats}");
}
