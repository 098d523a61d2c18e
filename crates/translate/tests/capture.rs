//! Golden tests for capture-mode (REDIRECT) sidecars: `testdata/capture.yaml`
//! in, each sidecar's xDS resources out as JSON. `UPDATE_GOLDEN=1` rewrites
//! the files after an intended change; review the diff.

use std::path::Path;
use std::sync::Arc;

use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::config::route::v3::{route::Action, route_action::ClusterSpecifier};
use trellis_config::Snapshot;
use trellis_translate::{MeshOptions, OutboundTrafficPolicy, translate_with};
use trellis_xds::node::{Interception, ProxyKind};
use trellis_xds::{NodeInfo, ProxyResources, json};

fn testdata(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(name)
}

fn snapshot() -> Snapshot {
    let path = testdata("capture.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let outcome = trellis_api::parse_yaml(&path, &text);
    assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
    Snapshot::new(1, outcome.resources.into_iter().map(Arc::new).collect())
}

fn sidecar(app: &str, ip: &str) -> NodeInfo {
    NodeInfo {
        kind: ProxyKind::Sidecar,
        ip: ip.parse().unwrap(),
        pod_name: format!("{app}-0"),
        namespace: "shop".into(),
        service_account: app.into(),
        workload_name: app.into(),
        labels: [("app".to_string(), app.to_string())].into(),
        interception: Interception::Redirect,
        app_ports: Default::default(),
        outbound_port: 15001,
        locality: String::new(),
    }
}

fn translated(node: &NodeInfo, policy: OutboundTrafficPolicy) -> ProxyResources {
    let mesh = MeshOptions {
        outbound_traffic_policy: policy,
        ..MeshOptions::default()
    };
    translate_with(&snapshot(), node, &mesh)
}

fn as_json(resources: &ProxyResources) -> String {
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
            let kind = type_url.rsplit('.').next().unwrap().to_string();
            (kind, serde_json::Value::Array(items))
        })
        .collect();
    serde_json::to_string_pretty(&dump).unwrap() + "\n"
}

fn check(name: &str, actual: String) {
    let path = testdata(&format!("{name}.json"));
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
fn web_sidecar_allow_any() {
    let resources = translated(
        &sidecar("web", "10.20.0.2"),
        OutboundTrafficPolicy::AllowAny,
    );
    check("capture-web-allow-any", as_json(&resources));
}

#[test]
fn strict_db_sidecar_registry_only() {
    let resources = translated(
        &sidecar("db", "10.20.0.4"),
        OutboundTrafficPolicy::RegistryOnly,
    );
    check("capture-db-registry-only", as_json(&resources));
}

#[test]
fn port_routes_reach_every_service_by_every_name() {
    let resources = translated(
        &sidecar("web", "10.20.0.2"),
        OutboundTrafficPolicy::AllowAny,
    );
    let names: Vec<_> = resources.routes.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        names,
        ["9080", "9100"],
        "one route per HTTP or sniffed port, no explicit-proxy route"
    );
    let hosts = &resources.routes[0].virtual_hosts;
    let api = hosts
        .iter()
        .find(|h| h.name == "api.shop.svc.cluster.local:9080")
        .expect("api's virtual host");
    for domain in [
        "api",
        "api:9080",
        "api.shop",
        "10.96.0.11",
        "10.96.0.11:9080",
    ] {
        assert!(api.domains.iter().any(|d| d == domain), "{domain} missing");
    }
    let catch_all = hosts.last().expect("a catch-all virtual host");
    assert_eq!(
        (catch_all.name.as_str(), catch_all.domains.as_slice()),
        ("allow_any", ["*".to_string()].as_slice()),
        "other hosts pass through under ALLOW_ANY"
    );
    let Some(Action::Route(to_passthrough)) = &catch_all.routes[0].action else {
        panic!("allow_any routes to a cluster");
    };
    assert_eq!(
        to_passthrough.cluster_specifier,
        Some(ClusterSpecifier::Cluster("PassthroughCluster".into()))
    );
    assert!(
        !hosts.iter().any(|h| h.name.starts_with("db.")),
        "TCP services get no virtual host"
    );
}

#[test]
fn explicit_proxy_listener_only_without_capture() {
    let mut node = sidecar("web", "10.20.0.2");
    let captured = translated(&node, OutboundTrafficPolicy::AllowAny);
    let listener_names = |r: &ProxyResources| -> Vec<String> {
        r.listeners.iter().map(|l| l.name.clone()).collect()
    };
    assert_eq!(
        listener_names(&captured),
        [
            "virtualOutbound",
            "0.0.0.0_9080",
            "0.0.0.0_9100",
            "10.96.0.12_5432",
            "virtualInbound"
        ]
    );
    node.interception = Interception::None;
    node.app_ports = [(9080, 20000)].into();
    let explicit = translated(&node, OutboundTrafficPolicy::AllowAny);
    assert_eq!(
        listener_names(&explicit),
        ["10.20.0.2_9080", "virtualOutbound"]
    );
}

/// (name, application protocols, network filters) of the chains for `port`.
fn chains_for(listener: &Listener, port: Option<u32>) -> Vec<(String, Vec<String>, Vec<String>)> {
    listener
        .filter_chains
        .iter()
        .filter(|c| {
            c.filter_chain_match
                .as_ref()
                .and_then(|m| m.destination_port.map(|p| p.value))
                == port
        })
        .map(|c| {
            let alpn = c
                .filter_chain_match
                .as_ref()
                .map(|m| m.application_protocols.clone())
                .unwrap_or_default();
            let filters = c.filters.iter().map(|f| f.name.clone()).collect();
            (c.name.clone(), alpn, filters)
        })
        .collect()
}

fn listener<'a>(resources: &'a ProxyResources, name: &str) -> &'a Listener {
    resources
        .listeners
        .iter()
        .find(|l| l.name == name)
        .unwrap_or_else(|| panic!("no listener {name}"))
}

fn strings(values: &[&str]) -> Vec<String> {
    values.iter().map(|v| v.to_string()).collect()
}

#[test]
fn undeclared_ports_are_sniffed_on_both_sides() {
    const HCM: &str = "envoy.filters.network.http_connection_manager";
    const TCP: &str = "envoy.filters.network.tcp_proxy";
    // Istio's stats filter runs before every tcp_proxy.
    const TCP_STATS: [&str; 2] = ["istio.stats", TCP];
    let api = translated(
        &sidecar("api", "10.20.0.3"),
        OutboundTrafficPolicy::AllowAny,
    );
    let inbound = listener(&api, "virtualInbound");
    let filters: Vec<_> = inbound
        .listener_filters
        .iter()
        .map(|f| f.name.as_str())
        .collect();
    assert!(
        filters.contains(&"envoy.filters.listener.http_inspector"),
        "{filters:?}"
    );
    assert!(inbound.continue_on_listener_filters_timeout);
    assert_eq!(
        chains_for(inbound, Some(9100)),
        [
            (
                "inbound_9100_tls_http".to_string(),
                strings(&["istio-http/1.0", "istio-http/1.1", "istio-h2"]),
                strings(&[HCM])
            ),
            (
                "inbound_9100_raw_buffer_http".to_string(),
                strings(&["http/1.0", "http/1.1", "h2c"]),
                strings(&[HCM])
            ),
            ("inbound_9100_tls".to_string(), vec![], strings(&TCP_STATS)),
            (
                "inbound_9100_raw_buffer".to_string(),
                vec![],
                strings(&TCP_STATS)
            ),
        ]
    );
    // Ports no Service declares: plaintext HTTP goes through the connection
    // manager to its original destination.
    let passthrough: Vec<_> = chains_for(inbound, None)
        .into_iter()
        .filter(|(name, ..)| name.starts_with("virtualInbound-raw"))
        .collect();
    assert_eq!(
        passthrough,
        [
            (
                "virtualInbound-raw-http".to_string(),
                strings(&["http/1.0", "http/1.1", "h2c"]),
                strings(&[HCM])
            ),
            (
                "virtualInbound-raw".to_string(),
                vec![],
                strings(&TCP_STATS)
            ),
        ]
    );
    // Declared HTTP keeps its chains without sniffing.
    assert!(
        chains_for(inbound, Some(9080))
            .iter()
            .all(|(_, alpn, _)| alpn.is_empty())
    );

    let web = translated(
        &sidecar("web", "10.20.0.2"),
        OutboundTrafficPolicy::AllowAny,
    );
    let outbound = listener(&web, "0.0.0.0_9100");
    assert_eq!(
        outbound.listener_filters[0].name,
        "envoy.filters.listener.http_inspector"
    );
    assert_eq!(
        chains_for(outbound, None),
        [
            (
                "outbound_0.0.0.0_9100_http".to_string(),
                strings(&["http/1.0", "http/1.1", "h2c"]),
                strings(&[HCM])
            ),
            (
                "outbound|9100||api.shop.svc.cluster.local".to_string(),
                vec![],
                strings(&TCP_STATS)
            ),
            (
                "outbound_0.0.0.0_9100_passthrough_http".to_string(),
                strings(&["http/1.0", "http/1.1", "h2c"]),
                strings(&[HCM])
            ),
            (
                "PassthroughFilterChain".to_string(),
                vec![],
                strings(&TCP_STATS)
            ),
        ]
    );
    let declared = listener(&web, "0.0.0.0_9080");
    assert_eq!(
        chains_for(declared, None)
            .into_iter()
            .map(|(name, alpn, _)| (name, alpn.len()))
            .collect::<Vec<_>>(),
        [
            ("outbound_0.0.0.0_9080".to_string(), 0),
            ("outbound_0.0.0.0_9080_passthrough_http".to_string(), 3),
            ("PassthroughFilterChain".to_string(), 0),
        ],
        "HTTP to any address on a declared HTTP port is routed, other bytes pass through"
    );
}
