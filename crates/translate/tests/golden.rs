//! Golden tests: Bookinfo YAML in, each proxy's xDS resources out as the
//! JSON Envoy would print. Set `UPDATE_GOLDEN=1` to rewrite the files after
//! an intended change, and review the diff.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use trellis_config::Snapshot;
use trellis_xds::node::{Interception, ProxyKind};
use trellis_xds::{NodeInfo, json};

fn samples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../samples/bookinfo")
}

/// Bookinfo's Services plus WorkloadEntries for its workloads, and the
/// given networking files.
fn snapshot(networking: &[&str]) -> Snapshot {
    let mut files = vec![samples().join("platform/bookinfo.yaml")];
    files.extend(
        networking
            .iter()
            .map(|f| samples().join("networking").join(f)),
    );
    let mut resources = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let outcome = trellis_api::parse_yaml(&file, &text);
        assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
        resources.extend(outcome.resources.into_iter().map(Arc::new));
    }
    let entries = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/workload-entries.yaml");
    let text = std::fs::read_to_string(&entries).unwrap();
    resources.extend(
        trellis_api::parse_yaml(&entries, &text)
            .resources
            .into_iter()
            .map(Arc::new),
    );
    Snapshot::new(1, resources)
}

fn sidecar(workload: &str, ip: &str, app: &str, version: &str, account: &str) -> NodeInfo {
    NodeInfo {
        kind: ProxyKind::Sidecar,
        ip: ip.parse().unwrap(),
        pod_name: format!("{workload}-0"),
        namespace: "default".into(),
        service_account: account.into(),
        workload_name: workload.into(),
        labels: [
            ("app".to_string(), app.to_string()),
            ("version".to_string(), version.to_string()),
        ]
        .into(),
        interception: Interception::None,
        app_ports: [(9080, 20000)].into(),
        outbound_port: 15001,
        locality: String::new(),
    }
}

fn as_json(resources: &trellis_xds::ProxyResources) -> String {
    let encoded = resources.encode();
    let dump: serde_json::Map<String, serde_json::Value> = encoded
        .by_type
        .iter()
        .map(|(type_url, typed)| {
            let items = typed
                .by_name
                .values()
                .map(|any| json::any_to_json(any).unwrap())
                .collect();
            (
                type_url.rsplit('.').next().unwrap().to_string(),
                serde_json::Value::Array(items),
            )
        })
        .collect();
    serde_json::to_string_pretty(&dump).unwrap() + "\n"
}

fn check(name: &str, actual: String) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(format!("{name}.json"));
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

fn productpage() -> NodeInfo {
    sidecar(
        "productpage-v1",
        "127.10.0.5",
        "productpage",
        "v1",
        "bookinfo-productpage",
    )
}

fn translated(networking: &[&str], node: &NodeInfo) -> String {
    as_json(&trellis_translate::translate(&snapshot(networking), node))
}

const REVIEWS_90_10: [&str; 2] = [
    "destination-rule-all.yaml",
    "virtual-service-reviews-90-10.yaml",
];

#[test]
fn productpage_with_reviews_90_10() {
    check(
        "productpage-reviews-90-10",
        translated(&REVIEWS_90_10, &productpage()),
    );
}

#[test]
fn reviews_v2_with_jason_header_route() {
    let node = sidecar(
        "reviews-v2",
        "127.10.0.3",
        "reviews",
        "v2",
        "bookinfo-reviews",
    );
    let networking = [
        "destination-rule-all.yaml",
        "virtual-service-reviews-jason-v2-v3.yaml",
    ];
    // With access logging on (mesh config `accessLogFile`), as `trellis up` runs.
    let mesh = trellis_translate::MeshOptions {
        access_log_file: Some(trellis_translate::DEFAULT_ACCESS_LOG_FILE.into()),
        ..Default::default()
    };
    let resources = trellis_translate::translate_with(&snapshot(&networking), &node, &mesh);
    check("reviews-v2-jason-v2-v3", as_json(&resources));
}

#[test]
fn translation_is_deterministic() {
    let snapshot = snapshot(&REVIEWS_90_10);
    let first = trellis_translate::translate(&snapshot, &productpage()).encode();
    let second = trellis_translate::translate(&snapshot, &productpage()).encode();
    assert_eq!(first, second);
}

#[test]
fn a_virtual_service_host_that_is_no_service_gets_its_own_virtual_host() {
    let mut snapshot = snapshot(&REVIEWS_90_10);
    let text = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: by-ip}\n\
                spec:\n  hosts: [127.0.0.2]\n  http:\n  - route:\n    - destination: {host: ratings}\n";
    let outcome = trellis_api::parse_yaml(Path::new("by-ip.yaml"), text);
    assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
    let mut resources = snapshot.resources.clone();
    resources.extend(outcome.resources.into_iter().map(Arc::new));
    snapshot = Snapshot::new(2, resources);
    let routes = trellis_translate::translate(&snapshot, &productpage()).routes;
    let vhost = routes[0]
        .virtual_hosts
        .iter()
        .find(|v| v.name == "127.0.0.2")
        .expect("a virtual host for the IP");
    assert_eq!(vhost.domains, ["127.0.0.2", "127.0.0.2:*"]);
    let json = json::message_to_json(&vhost.routes[0]).unwrap();
    assert_eq!(
        json["route"]["cluster"],
        "outbound|9080||ratings.default.svc.cluster.local"
    );
}

/// Istio's ingress gateway (`trellis proxy --type router`) in local mode.
fn ingress_gateway() -> NodeInfo {
    NodeInfo {
        kind: ProxyKind::Router,
        ip: "127.10.0.9".parse().unwrap(),
        pod_name: "istio-ingressgateway-0".into(),
        namespace: "istio-system".into(),
        service_account: "istio-ingressgateway-service-account".into(),
        workload_name: "istio-ingressgateway".into(),
        labels: [
            ("app".to_string(), "istio-ingressgateway".to_string()),
            ("istio".to_string(), "ingressgateway".to_string()),
        ]
        .into(),
        interception: Interception::None,
        app_ports: Default::default(),
        outbound_port: 15001,
        locality: String::new(),
    }
}

#[test]
fn ingress_gateway_with_bookinfo_gateway() {
    let networking = [
        "bookinfo-gateway.yaml",
        "destination-rule-all.yaml",
        "virtual-service-reviews-90-10.yaml",
    ];
    check(
        "ingress-gateway-bookinfo",
        translated(&networking, &ingress_gateway()),
    );
}

/// Bookinfo with networking from one of testdata's files.
fn with_testdata(file: &str) -> Snapshot {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    let outcome = trellis_api::parse_yaml(&path, &text);
    assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
    let mut resources = snapshot(&[]).resources.clone();
    resources.extend(outcome.resources.into_iter().map(Arc::new));
    Snapshot::new(2, resources)
}

/// A DestinationRule's traffic policy as productpage's sidecar gets it:
/// the clusters and outbound virtual hosts of `hosts` only.
fn traffic_policy_golden(name: &str, hosts: &[&str]) {
    let resources =
        trellis_translate::translate(&with_testdata(&format!("{name}.yaml")), &productpage());
    let fqdn = |host: &str| format!("{host}.default.svc.cluster.local");
    let clusters: Vec<_> = resources
        .clusters
        .iter()
        .filter(|c| {
            hosts
                .iter()
                .any(|h| c.name.ends_with(&format!("|{}", fqdn(h))))
        })
        .map(|c| json::message_to_json(c).unwrap())
        .collect();
    let virtual_hosts: Vec<_> = resources
        .routes
        .iter()
        .flat_map(|r| &r.virtual_hosts)
        .filter(|v| {
            hosts
                .iter()
                .any(|h| v.name.starts_with(&format!("{}:", fqdn(h))))
        })
        .map(|v| json::message_to_json(v).unwrap())
        .collect();
    let dump = serde_json::json!({ "clusters": clusters, "virtual_hosts": virtual_hosts });
    check(name, serde_json::to_string_pretty(&dump).unwrap() + "\n");
}

#[test]
fn circuit_breaking_connection_pools() {
    traffic_policy_golden("circuit-breaking", &["reviews"]);
}

#[test]
fn outlier_detection() {
    traffic_policy_golden("outlier-detection", &["reviews"]);
}

#[test]
fn load_balancers_and_route_hash_policies() {
    traffic_policy_golden("load-balancer", &["reviews", "ratings", "details"]);
}

/// Locality failover and distribution: the helloworld clusters and their
/// endpoints as a sidecar in region1/zone1 gets them.
#[test]
fn locality_priorities_and_weights() {
    let node = NodeInfo {
        locality: "region1/zone1".into(),
        ..productpage()
    };
    let resources = trellis_translate::translate(&with_testdata("locality.yaml"), &node);
    let hello = |name: &str| name.ends_with("|helloworld.default.svc.cluster.local");
    let clusters: Vec<_> = resources
        .clusters
        .iter()
        .filter(|c| hello(&c.name))
        .map(|c| json::message_to_json(c).unwrap())
        .collect();
    let endpoints: Vec<_> = resources
        .endpoints
        .iter()
        .filter(|e| hello(&e.cluster_name))
        .map(|e| json::message_to_json(e).unwrap())
        .collect();
    let dump = serde_json::json!({ "clusters": clusters, "endpoints": endpoints });
    check(
        "locality",
        serde_json::to_string_pretty(&dump).unwrap() + "\n",
    );
}
