//! ServiceEntry translation: `testdata/egress.yaml` in, a local-mode
//! sidecar's clusters, endpoints and HTTP proxy routes out as JSON
//! (`UPDATE_GOLDEN=1` rewrites the file; review the diff), plus the rules
//! the golden file shows, asserted one by one.

use std::path::Path;
use std::sync::Arc;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::cluster::v3::cluster::{ClusterDiscoveryType, DiscoveryType};
use trellis_config::Snapshot;
use trellis_translate::{MeshOptions, OutboundTrafficPolicy, translate, translate_with};
use trellis_xds::node::{Interception, ProxyKind};
use trellis_xds::{NodeInfo, ProxyResources, json};

fn testdata(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(name)
}

fn snapshot() -> Snapshot {
    let path = testdata("egress.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let outcome = trellis_api::parse_yaml(&path, &text);
    assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
    Snapshot::new(1, outcome.resources.into_iter().map(Arc::new).collect())
}

fn sidecar(namespace: &str) -> NodeInfo {
    sidecar_with(namespace, Interception::None)
}

fn sidecar_with(namespace: &str, interception: Interception) -> NodeInfo {
    NodeInfo {
        kind: ProxyKind::Sidecar,
        ip: "127.0.0.2".parse().unwrap(),
        pod_name: "web-0".into(),
        namespace: namespace.into(),
        service_account: "web".into(),
        workload_name: "web".into(),
        labels: [("app".to_string(), "web".to_string())].into(),
        interception,
        app_ports: Default::default(),
        outbound_port: 15001,
        locality: String::new(),
    }
}

fn as_json(resources: &ProxyResources) -> String {
    let encoded = resources.encode();
    let dump: serde_json::Map<String, serde_json::Value> = encoded
        .by_type
        .iter()
        .filter(|(type_url, _)| !type_url.ends_with("Listener"))
        .map(|(type_url, typed)| {
            let items = typed
                .by_name
                .values()
                .map(|any| json::any_to_json(any).unwrap())
                .collect();
            let kind = type_url.rsplit('.').next().unwrap().to_string();
            (kind, serde_json::Value::Array(items))
        })
        .collect();
    serde_json::to_string_pretty(&dump).unwrap() + "\n"
}

fn cluster<'a>(resources: &'a ProxyResources, name: &str) -> Option<&'a Cluster> {
    resources.clusters.iter().find(|c| c.name == name)
}

fn discovery(cluster: &Cluster) -> DiscoveryType {
    match cluster.cluster_discovery_type {
        Some(ClusterDiscoveryType::Type(t)) => DiscoveryType::try_from(t).unwrap(),
        _ => panic!("{} has no discovery type", cluster.name),
    }
}

#[test]
fn golden_local_mode_sidecar() {
    let actual = as_json(&translate(&snapshot(), &sidecar("shop")));
    let path = testdata("egress.json");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &actual).unwrap();
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        expected == actual,
        "{} differs from the translation; rerun with UPDATE_GOLDEN=1 and review the diff",
        path.display()
    );
}

#[test]
fn resolution_picks_the_cluster_type() {
    let resources = translate(&snapshot(), &sidecar("shop"));
    let kind = |name: &str| discovery(cluster(&resources, name).unwrap());
    assert_eq!(kind("outbound|80||api.external.test"), DiscoveryType::Eds);
    assert_eq!(
        kind("outbound|80||dns.external.test"),
        DiscoveryType::StrictDns
    );
    assert_eq!(
        kind("outbound|8080||logical.external.test"),
        DiscoveryType::LogicalDns
    );
    assert_eq!(
        kind("outbound|5432||passthrough.external.test"),
        DiscoveryType::OriginalDst
    );
    let eds: Vec<&str> = resources
        .endpoints
        .iter()
        .map(|e| e.cluster_name.as_str())
        .collect();
    assert!(eds.contains(&"outbound|80||api.external.test"));
    assert!(!eds.contains(&"outbound|80||dns.external.test"));
}

#[test]
fn only_mesh_internal_entries_get_auto_mtls() {
    let resources = translate(&snapshot(), &sidecar("shop"));
    let socket = |name: &str| cluster(&resources, name).unwrap().transport_socket.clone();
    assert!(socket("outbound|80||api.external.test").is_none());
    assert!(socket("outbound|80||dns.external.test").is_none());
    let vm = socket("outbound|9090||vm.internal.test").expect("mesh mTLS");
    let vm = serde_json::to_string(&json::any_to_json(&envoy_types::util::pack_any(vm)).unwrap())
        .unwrap();
    assert!(
        vm.contains("spiffe://cluster.local/ns/vms/sa/vm-runner"),
        "{vm}"
    );
    // The DestinationRule originates TLS on 443 only.
    assert!(socket("outbound|443||dns.external.test").is_some());
}

#[test]
fn export_to_dot_hides_an_entry_from_other_namespaces() {
    let name = "outbound|80||private.external.test";
    let shop = translate(&snapshot(), &sidecar("shop"));
    assert!(cluster(&shop, name).is_none());
    let domains: Vec<&String> = shop.routes[0]
        .virtual_hosts
        .iter()
        .flat_map(|vh| &vh.domains)
        .collect();
    assert!(!domains.iter().any(|d| d.starts_with("private.")));
    assert!(domains.contains(&&"api.external.test".to_string()));
    assert!(cluster(&translate(&snapshot(), &sidecar("billing")), name).is_some());
}

fn with_policy(node: &NodeInfo, policy: OutboundTrafficPolicy) -> ProxyResources {
    let mesh = MeshOptions {
        outbound_traffic_policy: policy,
        ..MeshOptions::default()
    };
    translate_with(&snapshot(), node, &mesh)
}

#[test]
fn registry_only_blocks_other_hosts_at_the_explicit_proxy_too() {
    let last_host = |policy| {
        let resources = with_policy(&sidecar("shop"), policy);
        let route = &resources.routes[0];
        route.virtual_hosts.last().unwrap().clone()
    };
    let blocked = last_host(OutboundTrafficPolicy::RegistryOnly);
    assert_eq!(
        (blocked.name.as_str(), blocked.domains.as_slice()),
        ("block_all", &["*".to_string()][..])
    );
    assert_ne!(last_host(OutboundTrafficPolicy::AllowAny).name, "block_all");
}

#[test]
fn capture_routes_reach_an_entry_by_its_host_and_address_only() {
    let node = sidecar_with("shop", Interception::Redirect);
    let resources = with_policy(&node, OutboundTrafficPolicy::AllowAny);
    let route = resources.routes.iter().find(|r| r.name == "80").unwrap();
    let host = route
        .virtual_hosts
        .iter()
        .find(|vh| vh.name == "api.external.test:80")
        .unwrap();
    for domain in [
        "api.external.test",
        "api.external.test:80",
        "240.240.0.1:80",
    ] {
        assert!(
            host.domains.contains(&domain.to_string()),
            "{:?}",
            host.domains
        );
    }
    assert!(
        host.domains
            .iter()
            .all(|d| !d.contains(".svc") && !d.contains(".shop")),
        "{:?}",
        host.domains
    );
}

/// Every (domain, cluster) pair of a route configuration.
fn routed(
    route: &envoy_types::pb::envoy::config::route::v3::RouteConfiguration,
) -> Vec<(String, String)> {
    use envoy_types::pb::envoy::config::route::v3::{
        route::Action, route_action::ClusterSpecifier,
    };
    let mut pairs = Vec::new();
    for host in &route.virtual_hosts {
        for r in &host.routes {
            if let Some(Action::Route(action)) = &r.action
                && let Some(ClusterSpecifier::Cluster(cluster)) = &action.cluster_specifier
            {
                pairs.extend(host.domains.iter().map(|d| (d.clone(), cluster.clone())));
            }
        }
    }
    pairs
}

/// Istio's "Egress Gateways" task, translated: the sidecar routes the
/// external host to the gateway (mesh mTLS), the gateway to the host's DNS
/// cluster (no mesh mTLS).
#[test]
fn egress_gateway_task() {
    let path = testdata("egress-gateway.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let outcome = trellis_api::parse_yaml(&path, &text);
    assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
    let snapshot = Snapshot::new(1, outcome.resources.into_iter().map(Arc::new).collect());
    let to_gateway = "outbound|80|cnn|istio-egressgateway.istio-system.svc.cluster.local";
    let to_cnn = "outbound|80||edition.cnn.com";

    let sidecar = translate(&snapshot, &sidecar("default"));
    let pairs = routed(&sidecar.routes[0]);
    assert!(
        pairs.contains(&("edition.cnn.com".into(), to_gateway.into())),
        "{pairs:?}"
    );
    assert!(
        cluster(&sidecar, to_gateway)
            .unwrap()
            .transport_socket
            .is_some()
    );

    let gateway = NodeInfo {
        kind: ProxyKind::Router,
        ip: "127.0.0.70".parse().unwrap(),
        pod_name: "istio-egressgateway-0".into(),
        namespace: "istio-system".into(),
        service_account: "istio-egressgateway-service-account".into(),
        workload_name: "istio-egressgateway".into(),
        labels: [("istio".to_string(), "egressgateway".to_string())].into(),
        ..sidecar_with("istio-system", Interception::None)
    };
    let gateway = translate(&snapshot, &gateway);
    let pairs: Vec<_> = gateway.routes.iter().flat_map(routed).collect();
    assert!(
        pairs
            .iter()
            .any(|(d, c)| d.starts_with("edition.cnn.com") && c == to_cnn),
        "{pairs:?}"
    );
    let external = cluster(&gateway, to_cnn).unwrap();
    assert_eq!(discovery(external), DiscoveryType::StrictDns);
    assert!(external.transport_socket.is_none());
}

#[test]
fn capture_reaches_an_entry_without_addresses_by_host_on_its_port() {
    let node = sidecar_with("shop", Interception::Redirect);
    let resources = with_policy(&node, OutboundTrafficPolicy::RegistryOnly);
    assert!(resources.listeners.iter().any(|l| l.name == "0.0.0.0_80"));
    let route = resources.routes.iter().find(|r| r.name == "80").unwrap();
    let pairs = routed(route);
    let expected = (
        "dns.external.test".to_string(),
        "outbound|80||dns.external.test".to_string(),
    );
    assert!(pairs.contains(&expected), "{pairs:?}");
    assert_eq!(route.virtual_hosts.last().unwrap().name, "block_all");
}
