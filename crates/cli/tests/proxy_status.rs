//! `trellis proxy-status` against a running mesh: every sidecar listed and
//! synced, and a named proxy's config matching what the control plane
//! would send it.

use std::process::Command;

use trellis_testbed::UpMesh;

const TRELLIS: &str = env!("CARGO_BIN_EXE_trellis");

fn proxy_status(mesh: &UpMesh, args: &[&str]) -> String {
    let monitoring = mesh.state().control_plane.monitoring_address.to_string();
    let output = Command::new(TRELLIS)
        .arg("proxy-status")
        .args(["--control-plane", &monitoring])
        .args(args)
        .output()
        .expect("running trellis proxy-status");
    assert!(
        output.status.success(),
        "proxy-status failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8 output")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_synced_proxies_and_compares_one_with_the_control_plane() {
    let mesh = UpMesh::start(TRELLIS, "proxy_status").await;
    let table = proxy_status(&mesh, &["-v"]);
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0].starts_with("NAME") && lines[0].contains("SUBSCRIBED TYPES"),
        "{table}"
    );
    assert_eq!(lines.len(), 1 + mesh.state().workloads.len(), "{table}");
    for workload in &mesh.state().workloads {
        let name = format!("{}.{}", workload.pod, workload.namespace);
        let line = lines
            .iter()
            .find(|l| l.starts_with(&name))
            .unwrap_or_else(|| panic!("{name} missing:\n{table}"));
        assert!(line.contains("4 (CDS,LDS,EDS,RDS)"), "{line}");
        assert_eq!(line.matches("SYNCED").count(), 4, "{line}");
    }

    let comparison = proxy_status(&mesh, &["productpage-v1-0.default"]);
    assert_eq!(
        comparison,
        "Clusters Match\nListeners Match\nRoutes Match\n"
    );

    // The sidecar's own admin views, as Envoy's.
    let productpage = mesh.workload("productpage-v1");
    let admin = |path: &str| {
        format!(
            "http://{}:{}{path}",
            productpage.address, productpage.admin_port
        )
    };
    let clusters = mesh.get(&admin("/clusters")).await.unwrap().text();
    let reviews_v1 = mesh.workload("reviews-v1");
    let line = format!(
        "outbound|9080|v1|reviews.default.svc.cluster.local::{}:9080::health_flags::healthy",
        reviews_v1.address
    );
    assert!(
        clusters.lines().any(|l| l == line),
        "{line} missing:\n{clusters}"
    );
    let listeners = mesh.get(&admin("/listeners")).await.unwrap().text();
    let outbound = format!(
        "virtualOutbound::{}:{}",
        productpage.address, productpage.outbound_port
    );
    assert!(
        listeners.lines().any(|l| l == outbound),
        "{outbound} missing:\n{listeners}"
    );

    // `/quitquitquit` makes a sidecar drain and exit.
    let ratings = mesh.workload("ratings-v1");
    let address = std::net::SocketAddr::new(ratings.address.into(), ratings.admin_port);
    let reply = trellis_testbed::send_raw(
        address,
        b"POST /quitquitquit HTTP/1.1\r\nHost: admin\r\nContent-Length: 0\r\n\r\n",
    )
    .await
    .unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    let pid = nix::unistd::Pid::from_raw(ratings.proxy_pid as i32);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while nix::sys::signal::kill(pid, None).is_ok() {
        assert!(
            std::time::Instant::now() < deadline,
            "the ratings sidecar did not exit"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
