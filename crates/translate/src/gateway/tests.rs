//! Gateway translation for a router labelled like Istio's ingress gateway,
//! against Bookinfo's Services.

use std::path::Path;
use std::sync::Arc;

use envoy_types::pb::envoy::config::route::v3::{RouteConfiguration, VirtualHost};
use serde_json::Value;
use trellis_config::Snapshot;
use trellis_xds::NodeInfo;
use trellis_xds::json::message_to_json;
use trellis_xds::node::{Interception, ProxyKind};

const BOOKINFO_GATEWAY: &str = "
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: bookinfo-gateway}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 8080, name: http, protocol: HTTP}
    hosts: ['*']
";

fn bookinfo_vs(gateways: &str) -> String {
    let vs = "
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: bookinfo}
spec:
  hosts: ['*']
  gateways: GATEWAYS
  http:
  - match:
    - uri: {exact: /productpage}
    - uri: {prefix: /static}
    route:
    - destination: {host: productpage, port: {number: 9080}}
";
    vs.replace("GATEWAYS", gateways)
}

fn snapshot(documents: &[&str]) -> Snapshot {
    let platform =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../samples/bookinfo/platform/bookinfo.yaml");
    let mut sources = vec![(
        platform.clone(),
        std::fs::read_to_string(&platform).unwrap(),
    )];
    for (index, text) in documents.iter().enumerate() {
        sources.push((format!("doc{index}.yaml").into(), text.to_string()));
    }
    let mut resources = Vec::new();
    for (path, text) in sources {
        let outcome = trellis_api::parse_yaml(&path, &text);
        assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
        resources.extend(outcome.resources.into_iter().map(Arc::new));
    }
    Snapshot::new(1, resources)
}

fn ingress_gateway(interception: Interception) -> NodeInfo {
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
        interception,
        app_ports: Default::default(),
        outbound_port: 15001,
        locality: String::new(),
    }
}

fn local_gateway() -> NodeInfo {
    ingress_gateway(Interception::None)
}

fn translate(documents: &[&str], node: &NodeInfo) -> trellis_xds::ProxyResources {
    crate::translate(&snapshot(documents), node)
}

fn only_route_config(resources: &trellis_xds::ProxyResources) -> &RouteConfiguration {
    let [config] = resources.routes.as_slice() else {
        panic!("expected one route configuration: {:?}", resources.routes);
    };
    config
}

fn vhost<'a>(config: &'a RouteConfiguration, name: &str) -> &'a VirtualHost {
    let names: Vec<_> = config.virtual_hosts.iter().map(|v| &v.name).collect();
    config
        .virtual_hosts
        .iter()
        .find(|v| v.name == name)
        .unwrap_or_else(|| panic!("no virtual host {name}: {names:?}"))
}

fn route_json(vhost: &VirtualHost) -> Vec<Value> {
    vhost
        .routes
        .iter()
        .map(|r| message_to_json(r).unwrap())
        .collect()
}

#[test]
fn bookinfo_gateway_serves_the_product_page_on_port_8080() {
    let vs = bookinfo_vs("[bookinfo-gateway]");
    let resources = translate(&[BOOKINFO_GATEWAY, &vs], &local_gateway());
    let [listener] = resources.listeners.as_slice() else {
        panic!("expected one listener: {:?}", resources.listeners);
    };
    assert_eq!(listener.name, "0.0.0.0_8080");
    let json = message_to_json(listener).unwrap();
    assert_eq!(json["address"]["socketAddress"]["address"], "127.10.0.9");
    assert_eq!(json["address"]["socketAddress"]["portValue"], 8080);
    let hcm = &json["filterChains"][0]["filters"][0]["typedConfig"];
    assert_eq!(hcm["rds"]["routeConfigName"], "http.8080");
    let config = only_route_config(&resources);
    assert_eq!(config.name, "http.8080");
    let host = vhost(config, "*:8080");
    assert_eq!(host.domains, ["*"]);
    let routes = route_json(host);
    assert_eq!(routes.len(), 2, "{routes:?}");
    assert_eq!(routes[0]["match"]["path"], "/productpage");
    assert_eq!(routes[1]["match"]["prefix"], "/static");
    assert_eq!(
        routes[0]["route"]["cluster"],
        "outbound|9080||productpage.default.svc.cluster.local"
    );
    // Outbound clusters as for sidecars, with mesh mTLS; no inbound ones.
    assert!(
        resources
            .clusters
            .iter()
            .all(|c| c.name.starts_with("outbound|"))
    );
    assert!(
        resources
            .clusters
            .iter()
            .all(|c| c.transport_socket.is_some())
    );
}

#[test]
fn gateways_select_routers_by_labels_only() {
    let vs = bookinfo_vs("[bookinfo-gateway]");
    let mut other = local_gateway();
    other.labels.insert("istio".into(), "egressgateway".into());
    let resources = translate(&[BOOKINFO_GATEWAY, &vs], &other);
    assert!(resources.listeners.is_empty());
    assert!(resources.routes.is_empty());
    // A sidecar never gets gateway listeners, and the gateway's
    // VirtualService stays off the mesh's routes.
    let mut sidecar = local_gateway();
    sidecar.kind = ProxyKind::Sidecar;
    let resources = translate(&[BOOKINFO_GATEWAY, &vs], &sidecar);
    assert!(resources.listeners.iter().all(|l| l.name != "0.0.0.0_8080"));
    assert!(
        resources.routes[0]
            .virtual_hosts
            .iter()
            .all(|v| !v.domains.contains(&"*".to_string()))
    );
}

#[test]
fn only_virtual_services_naming_the_gateway_bind_to_it() {
    let mesh_only = bookinfo_vs("[mesh]");
    let resources = translate(&[BOOKINFO_GATEWAY, &mesh_only], &local_gateway());
    assert!(only_route_config(&resources).virtual_hosts.is_empty());
    let unbound = "
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews}
";
    let resources = translate(&[BOOKINFO_GATEWAY, unbound], &local_gateway());
    assert!(only_route_config(&resources).virtual_hosts.is_empty());
    // From another namespace, by `namespace/name`.
    let elsewhere = bookinfo_vs("[default/bookinfo-gateway]")
        .replace("{name: bookinfo}", "{name: bookinfo, namespace: shop}")
        .replace(
            "host: productpage,",
            "host: productpage.default.svc.cluster.local,",
        );
    let resources = translate(&[BOOKINFO_GATEWAY, &elsewhere], &local_gateway());
    assert_eq!(only_route_config(&resources).virtual_hosts.len(), 1);
}

#[test]
fn server_hosts_filter_virtual_service_hosts_and_namespaces() {
    let gateway = BOOKINFO_GATEWAY.replace("['*']", "['shop/*.example.com', 'bookinfo.local']");
    let vs = |namespace: &str, hosts: &str| {
        bookinfo_vs("[default/bookinfo-gateway]")
            .replace(
                "{name: bookinfo}",
                &format!("{{name: bookinfo, namespace: {namespace}}}"),
            )
            .replace("hosts: ['*']", &format!("hosts: {hosts}"))
    };
    let shop = vs("shop", "['a.example.com', 'b.example.org']");
    let resources = translate(&[&gateway, &shop], &local_gateway());
    let config = only_route_config(&resources);
    let names: Vec<_> = config
        .virtual_hosts
        .iter()
        .map(|v| v.name.as_str())
        .collect();
    assert_eq!(names, ["a.example.com:8080"]);
    assert_eq!(
        vhost(config, "a.example.com:8080").domains,
        ["a.example.com", "a.example.com:*"]
    );
    // `default` may only bind `bookinfo.local`; its `*` narrows to it.
    let default = vs("default", "['*']");
    let resources = translate(&[&gateway, &default], &local_gateway());
    let config = only_route_config(&resources);
    let names: Vec<_> = config
        .virtual_hosts
        .iter()
        .map(|v| v.name.as_str())
        .collect();
    assert_eq!(names, ["bookinfo.local:8080"]);
}

#[test]
fn privileged_ports_move_up_without_capture() {
    let gateway = BOOKINFO_GATEWAY.replace("number: 8080", "number: 80");
    let vs = bookinfo_vs("[bookinfo-gateway]");
    let resources = translate(&[&gateway, &vs], &local_gateway());
    assert_eq!(resources.listeners[0].name, "0.0.0.0_10080");
    let config = only_route_config(&resources);
    assert_eq!(config.name, "http.10080");
    assert_eq!(config.virtual_hosts[0].name, "*:80");
    let resources = translate(&[&gateway, &vs], &ingress_gateway(Interception::Redirect));
    assert_eq!(resources.listeners[0].name, "0.0.0.0_80");
}

#[test]
fn servers_on_one_port_share_a_listener_and_unserved_ones_are_skipped() {
    let more_servers = "    hosts: ['*']
  - port: {number: 8080, name: http-b, protocol: HTTP}
    hosts: ['b.local']
  - port: {number: 9000, name: tcp, protocol: TCP}
    hosts: ['*']
";
    let gateway = BOOKINFO_GATEWAY.replace("    hosts: ['*']\n", more_servers);
    let vs = bookinfo_vs("[bookinfo-gateway]");
    let resources = translate(&[&gateway, &vs], &local_gateway());
    let names: Vec<_> = resources
        .listeners
        .iter()
        .map(|l| l.name.as_str())
        .collect();
    assert_eq!(names, ["0.0.0.0_8080"]);
    let config = only_route_config(&resources);
    let hosts: Vec<_> = config
        .virtual_hosts
        .iter()
        .map(|v| v.name.as_str())
        .collect();
    assert_eq!(hosts, ["*:8080", "b.local:8080"]);
}

#[test]
fn match_conditions_for_other_gateways_do_not_apply() {
    let vs = bookinfo_vs("[bookinfo-gateway, mesh]").replace(
        "    - uri: {exact: /productpage}\n",
        "    - uri: {exact: /productpage}\n      gateways: [mesh]\n",
    );
    let resources = translate(&[BOOKINFO_GATEWAY, &vs], &local_gateway());
    let routes = route_json(&only_route_config(&resources).virtual_hosts[0]);
    assert_eq!(routes.len(), 1, "{routes:?}");
    assert_eq!(routes[0]["match"]["prefix"], "/static");
}

#[test]
fn https_redirect_answers_every_request_with_a_redirect() {
    let gateway = BOOKINFO_GATEWAY.replace(
        "hosts: ['*']\n",
        "hosts: ['*']\n    tls: {httpsRedirect: true}\n",
    );
    let vs = bookinfo_vs("[bookinfo-gateway]");
    let resources = translate(&[&gateway, &vs], &local_gateway());
    let routes = route_json(&only_route_config(&resources).virtual_hosts[0]);
    assert_eq!(routes.len(), 1, "{routes:?}");
    assert_eq!(routes[0]["redirect"]["httpsRedirect"], true);
    assert_eq!(routes[0]["match"]["prefix"], "/");
}

#[test]
fn https_servers_are_chains_chosen_by_sni_with_their_own_certificates() {
    let servers = "    hosts: ['*']
  - port: {number: 443, name: https-shop, protocol: HTTPS}
    hosts: ['shop.example.com']
    tls: {mode: SIMPLE, credentialName: shop-cert}
  - port: {number: 443, name: https, protocol: HTTPS}
    hosts: ['*']
    tls: {mode: SIMPLE, credentialName: bookinfo-cert}
  - port: {number: 443, name: https-mutual, protocol: HTTPS}
    hosts: ['mtls.example.com']
    tls: {mode: MUTUAL, credentialName: mtls-cert}
  - port: {number: 443, name: http-on-https-port, protocol: HTTP}
    hosts: ['*']
";
    let gateway = BOOKINFO_GATEWAY.replace("    hosts: ['*']\n", servers);
    let vs = bookinfo_vs("[bookinfo-gateway]");
    let resources = translate(&[&gateway, &vs], &local_gateway());
    let names: Vec<_> = resources
        .listeners
        .iter()
        .map(|l| l.name.as_str())
        .collect();
    assert_eq!(names, ["0.0.0.0_8080", "0.0.0.0_10443"]);
    let json = message_to_json(&resources.listeners[1]).unwrap();
    assert_eq!(
        json["listenerFilters"][0]["name"],
        "envoy.filters.listener.tls_inspector"
    );
    let chains = json["filterChains"].as_array().unwrap();
    assert_eq!(chains.len(), 3, "{chains:?}");
    let shop = &chains[0];
    assert_eq!(
        shop["filterChainMatch"]["serverNames"],
        serde_json::json!(["shop.example.com"])
    );
    let tls = &shop["transportSocket"]["typedConfig"]["commonTlsContext"];
    assert_eq!(
        tls["tlsCertificateSdsSecretConfigs"][0]["name"],
        "kubernetes://shop-cert"
    );
    assert_eq!(tls["alpnProtocols"], serde_json::json!(["h2", "http/1.1"]));
    let any_name = &chains[1];
    assert!(any_name.get("filterChainMatch").is_none(), "{any_name}");
    // MUTUAL: clients verified against the credential's CA, `NAME-cacert`.
    let mutual = &chains[2]["transportSocket"]["typedConfig"];
    assert_eq!(mutual["requireClientCertificate"], true);
    assert_eq!(
        mutual["commonTlsContext"]["combinedValidationContext"]["validationContextSdsSecretConfig"]
            ["name"],
        "kubernetes://mtls-cert-cacert"
    );
    let route = |chain: &Value| {
        chain["filters"][0]["typedConfig"]["rds"]["routeConfigName"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(
        route(shop),
        "https.10443.https-shop.bookinfo-gateway.default"
    );
    // Each HTTPS server's routes hold only the hosts it serves.
    let config = resources
        .routes
        .iter()
        .find(|r| r.name == route(shop))
        .unwrap();
    let hosts: Vec<_> = config
        .virtual_hosts
        .iter()
        .map(|v| v.name.as_str())
        .collect();
    assert_eq!(hosts, ["shop.example.com:443"]);
    let config = resources
        .routes
        .iter()
        .find(|r| r.name == route(any_name))
        .unwrap();
    let hosts: Vec<_> = config
        .virtual_hosts
        .iter()
        .map(|v| v.name.as_str())
        .collect();
    assert_eq!(hosts, ["*:443"]);
}

mod l4;
