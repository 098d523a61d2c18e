//! Golden test: what a proxyless gRPC client (node metadata
//! `GENERATOR: grpc`) is sent for a service with subsets and a
//! VirtualService. Set `UPDATE_GOLDEN=1` to rewrite the file after an
//! intended change, and review the diff.

use std::path::Path;
use std::sync::Arc;

use trellis_config::Snapshot;
use trellis_xds::node::{Interception, ProxyKind};
use trellis_xds::{NodeInfo, json};

fn testdata(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(name)
}

fn snapshot() -> Snapshot {
    let file = testdata("grpc-echo.yaml");
    let text = std::fs::read_to_string(&file).unwrap();
    let outcome = trellis_api::parse_yaml(&file, &text);
    assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
    Snapshot::new(1, outcome.resources.into_iter().map(Arc::new).collect())
}

fn grpc_client() -> NodeInfo {
    NodeInfo {
        kind: ProxyKind::ProxylessGrpc,
        ip: "127.11.0.9".parse().unwrap(),
        pod_name: "client-0".into(),
        namespace: "default".into(),
        service_account: "client".into(),
        workload_name: "client".into(),
        labels: [("app".to_string(), "client".to_string())].into(),
        interception: Interception::None,
        app_ports: Default::default(),
        outbound_port: 15001,
        locality: "us-east/us-east-1a".into(),
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

#[test]
fn proxyless_grpc_client_of_a_split_service() {
    let actual = as_json(&trellis_translate::translate_proxyless_grpc(
        &snapshot(),
        &grpc_client(),
    ));
    let path = testdata("grpc-echo.json");
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

/// What gRPC would reject or ignore never reaches it.
#[test]
fn only_what_grpc_implements() {
    let resources = trellis_translate::translate_proxyless_grpc(&snapshot(), &grpc_client());
    let names: Vec<&str> = resources
        .listeners
        .iter()
        .map(|l| l.name.as_str())
        .collect();
    assert_eq!(
        names,
        [
            "echo.default.svc.cluster.local:7070",
            "echo.default.svc:7070",
            "echo.default:7070",
            "echo:7070",
        ]
    );
    assert!(resources.listeners.iter().all(|l| l.api_listener.is_some()));
    let text = as_json(&resources);
    for absent in [
        "cors",
        "LEAST_REQUEST",
        "transportSocket",
        "previous_hosts",
        "5xx",
    ] {
        assert!(!text.contains(absent), "{absent} in\n{text}");
    }
    for present in ["maxStreamDuration", "HEALTHY"] {
        assert!(text.contains(present), "{present} missing in\n{text}");
    }
    // Ring hash for the hashed subset; round robin (the proto default) for the rest.
    let policies: Vec<(&str, i32)> = resources
        .clusters
        .iter()
        .map(|c| (c.name.as_str(), c.lb_policy))
        .collect();
    use envoy_types::pb::envoy::config::cluster::v3::cluster::LbPolicy;
    assert_eq!(
        policies,
        [
            (
                "outbound|7070||echo.default.svc.cluster.local",
                LbPolicy::RoundRobin as i32
            ),
            (
                "outbound|7070|v1|echo.default.svc.cluster.local",
                LbPolicy::RoundRobin as i32
            ),
            (
                "outbound|7070|v2|echo.default.svc.cluster.local",
                LbPolicy::RingHash as i32
            ),
        ]
    );
    let weights: Vec<u32> = resources
        .endpoints
        .iter()
        .flat_map(|e| &e.endpoints)
        .filter_map(|locality| Some(locality.load_balancing_weight?.value))
        .collect();
    assert!(!weights.is_empty() && weights.iter().all(|w| *w > 0));
    let groups = resources.endpoints.iter().flat_map(|e| &e.endpoints);
    assert!(groups.clone().all(|group| group.locality.is_some()));
    assert!(
        groups
            .clone()
            .any(|group| group.locality == Some(Default::default()))
    );
}

/// `xds:///echo:7070` means the client's own namespace, as in Kubernetes DNS.
#[test]
fn short_names_only_in_the_clients_namespace() {
    let mut client = grpc_client();
    client.namespace = "other".into();
    let resources = trellis_translate::translate_proxyless_grpc(&snapshot(), &client);
    let names: Vec<&str> = resources
        .listeners
        .iter()
        .map(|l| l.name.as_str())
        .collect();
    assert_eq!(
        names,
        [
            "echo.default.svc.cluster.local:7070",
            "echo.default.svc:7070",
            "echo.default:7070",
        ]
    );
}
