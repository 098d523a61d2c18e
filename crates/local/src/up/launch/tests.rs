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
    let control_plane =
        control_plane(&paths, &MeshFlags::default(), addresses.allocate().unwrap()).unwrap();
    let workloads = place_workloads(&plan, &mut addresses, &paths, Isolation::Loopback).unwrap();
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
fn the_ingress_gateway_runs_a_router_proxy_alone() {
    let root = tempfile::tempdir().unwrap();
    let paths = paths_in(root.path());
    let mut plan = plan::plan(manifests::load(&[]).unwrap().resources()).unwrap();
    crate::up::ingress_gateway::add_to(&mut plan);
    let mut addresses = "127.77.8.0/24".parse::<AddressRange>().unwrap().allocator();
    let control_plane =
        control_plane(&paths, &MeshFlags::default(), addresses.allocate().unwrap()).unwrap();
    let workloads = place_workloads(&plan, &mut addresses, &paths, Isolation::Loopback).unwrap();
    let gateway = workloads.last().unwrap();
    assert_eq!(gateway.pod, "istio-ingressgateway-0");
    assert_eq!(gateway.namespace, "istio-system");
    assert!(gateway.app_ports.is_empty());
    let command = proxy(&paths, &control_plane, gateway).unwrap().join(" ");
    let credentials = root.path().join("config/credentials");
    assert!(
        command.contains(&format!(
            "--type router --credentials-dir {} ",
            credentials.display()
        )),
        "{command}"
    );
    assert!(command.contains("--service-account istio-ingressgateway-service-account "));
    assert!(command.contains("--label istio=ingressgateway"));
    assert!(!command.contains("--app-port"));
    // Nothing else serves a Service from the gateway's address.
    assert!(
        services(&plan, &workloads)
            .iter()
            .all(|s| !s.url.contains(&gateway.address.to_string()))
    );
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

#[test]
fn workloads_in_namespaces_are_captured_and_keep_their_ports() {
    let root = tempfile::tempdir().unwrap();
    let paths = paths_in(root.path());
    let manifests = manifests::load(&[]).unwrap();
    let plan = plan::plan(manifests.resources()).unwrap();
    let mut addresses = "10.42.0.0/16".parse::<AddressRange>().unwrap().allocator();
    let control_plane =
        control_plane(&paths, &MeshFlags::default(), addresses.allocate().unwrap()).unwrap();
    let mut workloads = place_workloads(&plan, &mut addresses, &paths, Isolation::Netns).unwrap();
    let index = workloads
        .iter()
        .position(|w| w.pod == "reviews-v2-0")
        .unwrap();
    let placed = &mut workloads[index];
    assert_eq!(placed.app_ports, BTreeMap::from([(9080, 9080)]));
    placed.netns = Some("trellis-abc123-reviews-v2-0".to_owned());

    let proxy = proxy(&paths, &control_plane, placed).unwrap();
    let mode = proxy
        .iter()
        .position(|a| a == "--interception-mode")
        .unwrap();
    assert_eq!(proxy[mode + 1], "REDIRECT");
    assert!(!proxy.iter().any(|a| a == "--app-port"), "{proxy:?}");

    let planned = &plan.workloads[index];
    let app = demo_app("/bin/trellis", planned, placed, &planned.containers[0]);
    assert!(!app.iter().any(|a| a == "--outbound-proxy"), "{app:?}");
    let parsed = DemoAppCli::try_parse_from(&app[1..]).unwrap().args;
    assert_eq!(
        parsed.listen,
        ["0.0.0.0:9080".parse::<SocketAddr>().unwrap()]
    );
}

#[test]
fn passes_mesh_settings_through_to_the_control_plane() {
    let root = tempfile::tempdir().unwrap();
    let mut addresses = "127.77.9.0/24".parse::<AddressRange>().unwrap().allocator();
    let address = addresses.allocate().unwrap();
    let paths = paths_in(root.path());
    let default = control_plane(&paths, &MeshFlags::default(), address).unwrap();
    let default = default.command.join(" ");
    assert!(
        default.ends_with("--access-log-file /dev/stdout"),
        "{default}"
    );
    assert!(!default.contains("--mesh-config"), "{default}");
    assert!(!default.contains("--outbound-traffic-policy"), "{default}");
    assert!(!default.contains("--access-log-encoding"), "{default}");

    let mesh = MeshFlags {
        mesh_config: Some(root.path().join("mesh.yaml")),
        outbound_traffic_policy: Some("REGISTRY_ONLY".to_owned()),
        access_log_encoding: Some("JSON".to_owned()),
        dashboard_prometheus_url: None,
    };
    let given = control_plane(&paths, &mesh, address)
        .unwrap()
        .command
        .join(" ");
    let mesh_config = format!("--mesh-config {}", root.path().join("mesh.yaml").display());
    assert!(given.contains(&mesh_config), "{given}");
    assert!(
        given.ends_with("--outbound-traffic-policy REGISTRY_ONLY --access-log-encoding JSON"),
        "{given}"
    );
    // The mesh config decides about access logs.
    assert!(!given.contains("--access-log-file"), "{given}");
}
