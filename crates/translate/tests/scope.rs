//! Each proxy gets only what it can use (Istio's SidecarScope):
//! `testdata/scope.yaml` holds Sidecars at the root, namespace and
//! workload level and exportTo on a Service, a DestinationRule and a
//! ServiceEntry; every test checks one proxy's clusters, in both
//! interception modes.

use std::path::Path;
use std::sync::Arc;

use trellis_config::Snapshot;
use trellis_translate::{applicable_sidecar, translate};
use trellis_xds::node::{Interception, ProxyKind};
use trellis_xds::{NodeInfo, ProxyResources};

fn snapshot() -> Snapshot {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/scope.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let outcome = trellis_api::parse_yaml(&path, &text);
    assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
    Snapshot::new(1, outcome.resources.into_iter().map(Arc::new).collect())
}

/// The sidecar of the WorkloadEntry `name` in `namespace`.
fn proxy(snapshot: &Snapshot, namespace: &str, name: &str, interception: Interception) -> NodeInfo {
    let entry = snapshot
        .workload_entries()
        .find(|e| e.namespace() == namespace && e.name() == name)
        .expect("a workload entry");
    NodeInfo {
        kind: ProxyKind::Sidecar,
        ip: entry.spec.address.parse().unwrap(),
        pod_name: format!("{name}-pod"),
        namespace: namespace.into(),
        service_account: entry.spec.service_account.clone().unwrap_or_default(),
        workload_name: name.into(),
        labels: entry.spec.labels.clone(),
        interception,
        app_ports: Default::default(),
        outbound_port: 15001,
        locality: String::new(),
    }
}

/// The outbound services `name` has clusters for, in both interception
/// modes (which must agree).
fn services_seen(namespace: &str, name: &str) -> Vec<String> {
    let snapshot = snapshot();
    let seen = |interception| {
        let resources = translate(&snapshot, &proxy(&snapshot, namespace, name, interception));
        outbound_hosts(&resources)
    };
    let explicit = seen(Interception::None);
    assert_eq!(explicit, seen(Interception::Redirect), "{namespace}/{name}");
    explicit
}

fn outbound_hosts(resources: &ProxyResources) -> Vec<String> {
    let mut hosts: Vec<String> = resources
        .clusters
        .iter()
        .filter_map(|c| c.name.strip_prefix("outbound|"))
        .filter_map(|rest| rest.rsplit("|").next())
        .map(str::to_string)
        .collect();
    hosts.dedup();
    hosts
}

#[test]
fn the_root_sidecar_keeps_workloads_to_their_namespace_and_istio_system() {
    assert_eq!(
        services_seen("shop", "web-0"),
        [
            // A ServiceEntry shop's VirtualService for web routes to.
            "api.cards.test",
            // cart's own Sidecar scopes cart's proxy, not who may call it.
            "cart.shop.svc.cluster.local",
            // Imported because shop's VirtualService for web routes there.
            "gateway.payments.svc.cluster.local",
            "telemetry.istio-system.svc.cluster.local",
            "web.shop.svc.cluster.local",
        ],
    );
}

#[test]
fn a_selecting_sidecar_wins_over_the_namespace_default() {
    let snapshot = snapshot();
    let cart = proxy(&snapshot, "shop", "cart-0", Interception::Redirect);
    assert_eq!(applicable_sidecar(&snapshot, &cart).unwrap().name(), "cart");
    assert_eq!(
        services_seen("shop", "cart-0"),
        ["ledger.billing.svc.cluster.local"]
    );
}

#[test]
fn a_namespace_sidecar_wins_over_the_root_one_and_sets_registry_only() {
    assert_eq!(
        services_seen("billing", "ledger-0"),
        [
            "audit.billing.svc.cluster.local",
            "ledger.billing.svc.cluster.local",
        ]
    );
    let snapshot = snapshot();
    for interception in [Interception::None, Interception::Redirect] {
        let resources = translate(
            &snapshot,
            &proxy(&snapshot, "billing", "ledger-0", interception),
        );
        let catch_alls: Vec<_> = resources
            .routes
            .iter()
            .filter_map(|route| route.virtual_hosts.last())
            .map(|host| host.name.as_str())
            .collect();
        assert!(
            !catch_alls.is_empty() && catch_alls.iter().all(|name| *name == "block_all"),
            "{interception:?}: {catch_alls:?}"
        );
    }
    // The mesh default (ALLOW_ANY) holds where the Sidecar says nothing.
    let web = translate(
        &snapshot,
        &proxy(&snapshot, "shop", "web-0", Interception::Redirect),
    );
    assert!(
        web.routes
            .iter()
            .all(|route| route.virtual_hosts.last().unwrap().name == "allow_any")
    );
}

#[test]
fn export_to_hides_what_a_sidecar_would_import() {
    // ops imports `*/*`: everything but billing's audit (exportTo `.`).
    let seen = services_seen("ops", "console-0");
    assert!(seen.contains(&"api.cards.test".to_string()), "{seen:?}");
    assert!(seen.contains(&"cart.shop.svc.cluster.local".to_string()));
    assert!(seen.contains(&"ledger.billing.svc.cluster.local".to_string()));
    assert!(
        !seen.iter().any(|host| host.starts_with("audit.")),
        "{seen:?}"
    );
}

#[test]
fn a_destination_rule_exported_to_its_namespace_shapes_only_its_clusters() {
    let snapshot = snapshot();
    let max_connections = |namespace, name| {
        let node = proxy(&snapshot, namespace, name, Interception::Redirect);
        let resources = translate(&snapshot, &node);
        let ledger = resources
            .clusters
            .iter()
            .find(|c| c.name == "outbound|80||ledger.billing.svc.cluster.local")
            .expect("a ledger cluster");
        ledger
            .circuit_breakers
            .as_ref()
            .and_then(|breakers| breakers.thresholds.first())
            .and_then(|threshold| threshold.max_connections)
            .map(|max| max.value)
    };
    assert_eq!(max_connections("billing", "ledger-0"), Some(7));
    assert_ne!(max_connections("shop", "cart-0"), Some(7));
    assert_ne!(max_connections("ops", "console-0"), Some(7));
}

#[test]
fn gateways_see_everything_exported_to_them() {
    let snapshot = snapshot();
    let mut gateway = proxy(&snapshot, "ops", "console-0", Interception::None);
    gateway.kind = ProxyKind::Router;
    assert!(applicable_sidecar(&snapshot, &gateway).is_none());
    let seen = outbound_hosts(&translate(&snapshot, &gateway));
    assert!(seen.contains(&"web.shop.svc.cluster.local".to_string()));
    assert!(
        !seen.iter().any(|host| host.starts_with("audit.")),
        "{seen:?}"
    );
}
