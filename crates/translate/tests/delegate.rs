//! Golden test of delegate VirtualServices: the root's rule expands into
//! the delegates' rules, merged as Istio merges them. `UPDATE_GOLDEN=1`
//! rewrites the file; review the diff.

use std::path::Path;
use std::sync::Arc;

use trellis_config::Snapshot;
use trellis_xds::NodeInfo;
use trellis_xds::json::message_to_json;
use trellis_xds::node::{Interception, ProxyKind};

fn snapshot() -> Snapshot {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut resources = Vec::new();
    for file in [
        root.join("../../samples/bookinfo/platform/bookinfo.yaml"),
        root.join("../../samples/bookinfo/networking/destination-rule-all.yaml"),
        root.join("testdata/delegate.yaml"),
    ] {
        let text = std::fs::read_to_string(&file).unwrap();
        let outcome = trellis_api::parse_yaml(&file, &text);
        assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
        resources.extend(outcome.resources.into_iter().map(Arc::new));
    }
    Snapshot::new(1, resources)
}

fn productpage() -> NodeInfo {
    NodeInfo {
        kind: ProxyKind::Sidecar,
        ip: "127.10.0.5".parse().unwrap(),
        pod_name: "productpage-v1-0".into(),
        namespace: "default".into(),
        service_account: "bookinfo-productpage".into(),
        workload_name: "productpage-v1".into(),
        labels: [("app".to_string(), "productpage".to_string())].into(),
        interception: Interception::None,
        app_ports: [(9080, 20000)].into(),
        outbound_port: 15001,
        locality: String::new(),
    }
}

#[test]
fn delegates_expand_under_the_root_rule() {
    let routes = trellis_translate::translate(&snapshot(), &productpage()).routes;
    let vhost = routes[0]
        .virtual_hosts
        .iter()
        .find(|v| v.name == "reviews.default.svc.cluster.local:9080")
        .expect("the reviews virtual host");
    let json: Vec<_> = vhost
        .routes
        .iter()
        .map(|route| message_to_json(route).unwrap())
        .collect();
    let actual = serde_json::to_string_pretty(&json).unwrap() + "\n";
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/delegate-routes.json");
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
