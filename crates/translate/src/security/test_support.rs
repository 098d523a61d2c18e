//! Builders shared by the security tests: a snapshot from YAML, a sidecar.

use std::path::Path;
use std::sync::Arc;

use trellis_config::Snapshot;
use trellis_xds::NodeInfo;
use trellis_xds::node::{Interception, ProxyKind};

pub fn snapshot(yaml: &str) -> Snapshot {
    let outcome = trellis_api::parse_yaml(Path::new("policies.yaml"), yaml);
    assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
    Snapshot::new(1, outcome.resources.into_iter().map(Arc::new).collect())
}

/// A sidecar of `app` in `namespace`, serving port 9080 (and 9090).
pub fn sidecar(namespace: &str, app: &str) -> NodeInfo {
    NodeInfo {
        kind: ProxyKind::Sidecar,
        ip: "127.0.0.5".parse().unwrap(),
        pod_name: format!("{app}-0"),
        namespace: namespace.into(),
        service_account: format!("bookinfo-{app}"),
        workload_name: app.into(),
        labels: [("app".to_string(), app.to_string())].into(),
        interception: Interception::None,
        app_ports: [(9080, 20000), (9090, 20001)].into(),
        outbound_port: 15001,
        locality: String::new(),
    }
}

/// A `kind` resource named `name` in `namespace` with `spec` (flow YAML).
pub fn resource(kind: &str, namespace: &str, name: &str, spec: &str) -> String {
    format!(
        "---\napiVersion: security.istio.io/v1\nkind: {kind}\nmetadata: {{name: {name}, namespace: {namespace}}}\nspec: {spec}\n"
    )
}
