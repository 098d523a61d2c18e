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
}
