use std::collections::BTreeSet;
use std::sync::Arc;

use trellis_xds::node::Interception;

use super::super::store::tests::{counters, edge};
use super::super::store::{ProxyScrape, StoreMetrics};
use super::*;

fn node(kind: ProxyKind, namespace: &str, workload: &str, app: &str) -> NodeInfo {
    NodeInfo {
        kind,
        ip: "127.1.0.1".parse().unwrap(),
        pod_name: format!("{workload}-0"),
        namespace: namespace.into(),
        service_account: "default".into(),
        workload_name: workload.into(),
        labels: [("app".to_string(), app.to_string())].into(),
        interception: Interception::None,
        app_ports: Default::default(),
        outbound_port: 15001,
        locality: String::new(),
    }
}

fn sidecar(namespace: &str, workload: &str, app: &str) -> NodeInfo {
    node(ProxyKind::Sidecar, namespace, workload, app)
}

fn peer_authentication(namespace: &str, name: &str, spec: &str) -> String {
    format!(
        "---\napiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {{name: {name}, namespace: {namespace}}}\nspec: {spec}\n"
    )
}

fn snapshot(yaml: &str) -> Snapshot {
    let outcome = trellis_api::parse_yaml(std::path::Path::new("test.yaml"), yaml);
    assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
    Snapshot::new(1, outcome.resources.into_iter().map(Arc::new).collect())
}

fn empty_store() -> Store {
    Store::new(
        Duration::from_secs(600),
        Duration::from_secs(5),
        100,
        StoreMetrics::default(),
    )
}

/// (id, mode, accepts plaintext, differing ports, proxies) of a workload.
type Summary<'a> = (&'a str, &'a str, &'a str, Vec<(u16, &'a str)>, usize);

fn summary(posture: &Posture) -> Vec<Summary<'_>> {
    posture
        .workloads
        .iter()
        .map(|w| {
            let ports = w.ports.iter().map(|p| (p.port, p.mode)).collect();
            (w.id.as_str(), w.mode, w.accepts_plaintext, ports, w.proxies)
        })
        .collect()
}

#[test]
fn without_policies_every_sidecar_is_permissive() {
    let config = snapshot("");
    let nodes = [
        sidecar("default", "reviews-v1", "reviews"),
        node(
            ProxyKind::Router,
            "istio-system",
            "istio-ingressgateway",
            "gw",
        ),
    ];
    let posture = posture(
        &empty_store(),
        Some(&config),
        &nodes,
        Duration::from_secs(60),
    );
    assert_eq!(
        summary(&posture),
        [(
            "workload/default/reviews-v1",
            "PERMISSIVE",
            "all",
            vec![],
            1
        )],
        "gateways are not subject to PeerAuthentication"
    );
}

#[test]
fn modes_follow_mesh_namespace_workload_and_port_precedence() {
    let config = snapshot(
        &[
            peer_authentication("istio-system", "mesh", "{mtls: {mode: STRICT}}"),
            peer_authentication("legacy", "default", "{mtls: {mode: PERMISSIVE}}"),
            peer_authentication(
                "legacy",
                "older",
                "{selector: {matchLabels: {app: older}}, mtls: {mode: DISABLE}}",
            ),
            peer_authentication(
                "default",
                "productpage",
                "{selector: {matchLabels: {app: productpage}}, mtls: {mode: PERMISSIVE}}",
            ),
            peer_authentication(
                "default",
                "reviews-metrics",
                "{selector: {matchLabels: {app: reviews}}, portLevelMtls: {9090: {mode: PERMISSIVE}}}",
            ),
        ]
        .concat(),
    );
    let nodes = [
        sidecar("default", "productpage-v1", "productpage"),
        sidecar("default", "reviews-v1", "reviews"),
        sidecar("default", "ratings-v1", "ratings"),
        sidecar("default", "ratings-v1", "ratings"),
        sidecar("legacy", "old", "old"),
        sidecar("legacy", "older", "older"),
    ];
    let posture = posture(
        &empty_store(),
        Some(&config),
        &nodes,
        Duration::from_secs(60),
    );
    assert_eq!(
        summary(&posture),
        [
            (
                "workload/default/productpage-v1",
                "PERMISSIVE",
                "all",
                vec![],
                1
            ),
            (
                "workload/default/reviews-v1",
                "STRICT",
                "some",
                vec![(9090, "PERMISSIVE")],
                1
            ),
            ("workload/legacy/old", "PERMISSIVE", "all", vec![], 1),
            ("workload/legacy/older", "DISABLE", "all", vec![], 1),
            ("workload/default/ratings-v1", "STRICT", "none", vec![], 2),
        ]
    );
    // Before any config is loaded no mode is known.
    let unknown = super::posture(&empty_store(), None, &nodes, Duration::from_secs(60));
    assert!(unknown.workloads.is_empty());
}

#[test]
fn a_strict_port_of_a_permissive_workload_is_partial() {
    let config = snapshot(&peer_authentication(
        "default",
        "reviews",
        "{selector: {matchLabels: {app: reviews}}, mtls: {mode: PERMISSIVE}, portLevelMtls: {9080: {mode: STRICT}}}",
    ));
    let nodes = [sidecar("default", "reviews-v1", "reviews")];
    let posture = posture(
        &empty_store(),
        Some(&config),
        &nodes,
        Duration::from_secs(60),
    );
    assert_eq!(
        summary(&posture),
        [(
            "workload/default/reviews-v1",
            "PERMISSIVE",
            "some",
            vec![(9080, "STRICT")],
            1
        )]
    );
}

#[test]
fn lists_plaintext_edges_and_requests_refused_by_policy() {
    let mut store = empty_store();
    let proxies: BTreeSet<String> = ["a".to_string()].into();
    let secure = edge("productpage-v1", "v1", "mutual_tls");
    let plaintext = edge("unknown", "v2", "none");
    let denied = |requests: f64, rbac: f64, ext_authz: f64| Counters {
        rbac_denied: rbac,
        ext_authz_denied: ext_authz,
        ..counters(requests, 0.0)
    };
    for (at, secure_count, plain) in [
        (0, counters(0.0, 0.0), denied(0.0, 0.0, 0.0)),
        (5_000, counters(20.0, 0.0), denied(10.0, 6.0, 2.0)),
        (10_000, counters(40.0, 0.0), denied(20.0, 8.0, 4.0)),
    ] {
        let scrape: ProxyScrape =
            [(secure.clone(), secure_count), (plaintext.clone(), plain)].into();
        store.record(at, vec![("a".into(), scrape)], &proxies);
    }
    let posture = posture(&store, Some(&snapshot("")), &[], Duration::from_secs(60));
    assert_eq!(posture.window_seconds, 10.0);
    assert_eq!(
        posture.plaintext_edges,
        [PlaintextEdge {
            source: "workload/default/unknown".into(),
            target: "service/default/reviews".into(),
            requests_per_second: 2.0,
            security: "none",
        }]
    );
    assert_eq!(
        posture.denials,
        [Denial {
            source: "workload/default/unknown".into(),
            target: "service/default/reviews".into(),
            destination: "workload/default/reviews-v2".into(),
            rbac: 8.0,
            ext_authz: 4.0,
            requests_per_second: 1.2,
        }]
    );
}
