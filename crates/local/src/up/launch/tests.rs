use std::time::Duration;

use clap::Parser;

use super::*;
use crate::demo_app::DemoAppArgs;
use crate::up::addresses::AddressRange;
use crate::up::{manifests, plan};

struct Fixture {
    plan: MeshPlan,
    workloads: Vec<WorkloadState>,
    control_plane: ControlPlaneState,
}

fn paths_in(root: &Path) -> Paths {
    Paths {
        exe: "/bin/trellis".to_owned(),
        config_dir: root.join("config"),
        root_cert: root.join("root-cert.pem"),
        workload_tokens: root.join("workload-tokens.json"),
        tokens_dir: root.join("tokens"),
        ca_dir: root.join("ca"),
    }
}

fn bookinfo(root: &Path) -> Fixture {
    let paths = paths_in(root);
    let manifests = manifests::load(&[]).unwrap();
    let plan = plan::plan(manifests.resources()).unwrap();
    // A range of its own, so parallel tests never share an address.
    let mut addresses = "127.77.7.0/24".parse::<AddressRange>().unwrap().allocator();
    let control_plane = control_plane(&paths, addresses.allocate().unwrap()).unwrap();
    let workloads = place_workloads(&plan, &mut addresses, &paths).unwrap();
    Fixture {
        plan,
        workloads,
        control_plane,
    }
}

#[derive(Parser)]
struct DemoAppCli {
    #[command(flatten)]
    args: DemoAppArgs,
}

#[test]
fn places_workloads_after_the_control_plane() {
    let root = tempfile::tempdir().unwrap();
    let fixture = bookinfo(root.path());
    assert_eq!(fixture.control_plane.address, Ipv4Addr::new(127, 77, 7, 1));
    assert_eq!(
        fixture.control_plane.secure_address.to_string(),
        "127.77.7.1:15012"
    );
    let addresses: Vec<_> = fixture.workloads.iter().map(|w| w.address).collect();
    assert_eq!(addresses[0], Ipv4Addr::new(127, 77, 7, 2));
    assert_eq!(addresses.len(), 6);
    let reviews = fixture
        .workloads
        .iter()
        .find(|w| w.pod == "reviews-v3-0")
        .unwrap();
    assert_eq!(reviews.inbound_ports, [9080]);
    assert_ne!(reviews.app_ports[&9080], 9080);
    assert_eq!(
        reviews.token_file,
        root.path().join("tokens/default.reviews-v3-0.token")
    );
}

#[test]
fn records_the_control_plane_command() {
    let root = tempfile::tempdir().unwrap();
    let command = bookinfo(root.path()).control_plane.command;
    assert_eq!(command[..2], ["/bin/trellis", "control-plane"]);
    let flag = |name: &str| {
        let at = command.iter().position(|arg| arg == name).unwrap();
        command[at + 1].clone()
    };
    assert_eq!(flag("--listen-address"), "127.77.7.1");
    assert_eq!(
        flag("--config-dir"),
        root.path().join("config").to_str().unwrap()
    );
    assert_eq!(
        flag("--root-cert-out"),
        root.path().join("root-cert.pem").to_str().unwrap()
    );
    assert_eq!(flag("--secure-port"), "15012");
}

#[test]
fn proxies_get_identity_labels_and_app_ports() {
    let root = tempfile::tempdir().unwrap();
    let fixture = bookinfo(root.path());
    let paths = paths_in(root.path());
    let workload = &fixture.workloads[0];
    let command = proxy(&paths, &fixture.control_plane, workload)
        .unwrap()
        .join(" ");
    assert!(command.starts_with("/bin/trellis proxy --discovery-address 127.77.7.1:15012 "));
    assert!(command.contains(&format!("--ip {} ", workload.address)));
    assert!(command.contains("--service-account bookinfo-details "));
    assert!(command.contains("--pod-name details-v1-0 --workload-name details-v1 "));
    assert!(command.contains("--label app=details --label version=v1"));
    assert!(command.ends_with(&format!("--app-port 9080={}", workload.app_ports[&9080])));
}

#[test]
fn demo_app_commands_parse_back() {
    let root = tempfile::tempdir().unwrap();
    let mut fixture = bookinfo(root.path());
    let index = fixture
        .plan
        .workloads
        .iter()
        .position(|w| w.pod == "reviews-v2-0")
        .unwrap();
    fixture.plan.workloads[index].app.latency = Duration::from_micros(2500);
    fixture.plan.workloads[index].app.error_rate = 0.25;
    let (planned, placed) = (&fixture.plan.workloads[index], &fixture.workloads[index]);
    let command = demo_app("/bin/trellis", planned, placed, &planned.containers[0]);
    assert_eq!(command[1], "demo-app");
    let parsed = DemoAppCli::try_parse_from(&command[1..]).unwrap().args;
    assert_eq!(
        (parsed.service.as_str(), parsed.version.as_str()),
        ("reviews", "v2")
    );
    assert_eq!(parsed.pod, "reviews-v2-0");
    assert_eq!(
        parsed.listen,
        [SocketAddr::new(
            placed.address.into(),
            placed.app_ports[&9080]
        )]
    );
    assert_eq!(
        parsed.outbound_proxy,
        Some(placed.outbound_proxy_url().parse().unwrap())
    );
    assert_eq!(parsed.latency, Duration::from_micros(2500));
    assert_eq!(parsed.error_rate, 0.25);
}

#[test]
fn service_urls_point_at_the_first_workloads_sidecar() {
    let root = tempfile::tempdir().unwrap();
    let fixture = bookinfo(root.path());
    let urls = services(&fixture.plan, &fixture.workloads);
    let names: Vec<_> = urls.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["details", "ratings", "reviews", "productpage"]);
    let productpage = fixture
        .workloads
        .iter()
        .find(|w| w.pod == "productpage-v1-0")
        .unwrap();
    assert_eq!(
        urls[3].url,
        format!("http://{}:9080/productpage", productpage.address)
    );
    let reviews_v1 = fixture
        .workloads
        .iter()
        .find(|w| w.pod == "reviews-v1-0")
        .unwrap();
    assert_eq!(urls[2].url, format!("http://{}:9080/", reviews_v1.address));
}
