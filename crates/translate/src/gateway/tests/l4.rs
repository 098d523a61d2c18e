//! TCP, TLS-terminated and passthrough servers, and TLS settings.

use serde_json::{Value, json};

use super::*;

fn gateway(servers: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: edge}}
spec:
  selector: {{istio: ingressgateway}}
  servers:
{servers}"
    )
}

fn vs(rules: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: edge}}
spec:
  hosts: ['*.example.com']
  gateways: [edge]
{rules}"
    )
}

fn listener_json(resources: &trellis_xds::ProxyResources, name: &str) -> Value {
    let listener = resources
        .listeners
        .iter()
        .find(|l| l.name == name)
        .unwrap_or_else(|| panic!("no listener {name}"));
    message_to_json(listener).unwrap()
}

/// The chain's last filter: the stats filter comes before it.
fn tcp_proxy(chain: &Value) -> &Value {
    let filters = chain["filters"].as_array().expect("a filter list");
    &filters.last().expect("a tcp_proxy")["typedConfig"]
}

#[test]
fn tcp_servers_forward_to_their_weighted_tcp_routes() {
    let servers = "  - port: {number: 31400, name: tcp, protocol: TCP}
    hosts: ['*']
";
    let rules = "  tcp:
  - match: [{port: 9999}]
    route: [{destination: {host: details}}]
  - match: [{port: 31400}]
    route:
    - {destination: {host: reviews, subset: v1, port: {number: 9080}}, weight: 80}
    - {destination: {host: reviews, subset: v2, port: {number: 9080}}, weight: 20}
";
    let resources = translate(&[&gateway(servers), &vs(rules)], &local_gateway());
    let json = listener_json(&resources, "0.0.0.0_31400");
    assert!(json.get("listenerFilters").is_none(), "{json}");
    let proxy = tcp_proxy(&json["filterChains"][0]);
    assert_eq!(
        proxy["weightedClusters"]["clusters"],
        json!([
            {"name": "outbound|9080|v1|reviews.default.svc.cluster.local", "weight": 80},
            {"name": "outbound|9080|v2|reviews.default.svc.cluster.local", "weight": 20},
        ])
    );
    // Without a route, no listener.
    let unrouted = translate(&[&gateway(servers)], &local_gateway());
    assert!(unrouted.listeners.is_empty());
}

#[test]
fn passthrough_servers_route_sni_hosts_without_terminating() {
    let servers = "  - port: {number: 443, name: tls, protocol: TLS}
    hosts: ['*.example.com']
    tls: {mode: PASSTHROUGH}
";
    let rules = "  tls:
  - match: [{sniHosts: [a.example.com, elsewhere.org], port: 443}]
    route: [{destination: {host: productpage}}]
  - match: [{sniHosts: [b.example.com], gateways: [mesh]}]
    route: [{destination: {host: details}}]
";
    let resources = translate(&[&gateway(servers), &vs(rules)], &local_gateway());
    let json = listener_json(&resources, "0.0.0.0_10443");
    assert_eq!(
        json["listenerFilters"][0]["name"],
        "envoy.filters.listener.tls_inspector"
    );
    let chains = json["filterChains"].as_array().unwrap();
    assert_eq!(chains.len(), 1, "{chains:?}");
    assert_eq!(
        chains[0]["filterChainMatch"]["serverNames"],
        json!(["a.example.com"])
    );
    assert!(chains[0].get("transportSocket").is_none());
    assert_eq!(
        tcp_proxy(&chains[0])["cluster"],
        "outbound|9080||productpage.default.svc.cluster.local"
    );
    assert!(resources.routes.is_empty());
}

#[test]
fn tls_servers_terminate_before_tcp_routes() {
    let servers = "  - port: {number: 9443, name: tls, protocol: TLS}
    hosts: [db.example.com]
    tls: {mode: OPTIONAL_MUTUAL, credentialName: db-cert}
";
    let rules = "  tcp:
  - route: [{destination: {host: ratings}}]
";
    let resources = translate(&[&gateway(servers), &vs(rules)], &local_gateway());
    let json = listener_json(&resources, "0.0.0.0_9443");
    let chain = &json["filterChains"][0];
    assert_eq!(
        chain["filterChainMatch"]["serverNames"],
        json!(["db.example.com"])
    );
    let context = &chain["transportSocket"]["typedConfig"];
    // Optional: verified when presented, not required.
    assert!(
        context.get("requireClientCertificate").is_none(),
        "{context}"
    );
    assert_eq!(
        context["commonTlsContext"]["tlsCertificateSdsSecretConfigs"][0]["name"],
        "kubernetes://db-cert"
    );
    assert_eq!(
        tcp_proxy(chain)["cluster"],
        "outbound|9080||ratings.default.svc.cluster.local"
    );
}

#[test]
fn istio_mutual_uses_the_mesh_certificate_and_versions_become_tls_params() {
    let servers = "  - port: {number: 8443, name: https-mesh, protocol: HTTPS}
    hosts: [mesh.example.com]
    tls: {mode: ISTIO_MUTUAL}
  - port: {number: 8443, name: https, protocol: HTTPS}
    hosts: [web.example.com]
    tls:
      mode: SIMPLE
      credentialName: web-cert
      minProtocolVersion: TLSV1_3
      cipherSuites: [ECDHE-RSA-AES128-GCM-SHA256]
";
    let rules = "  http:
  - route: [{destination: {host: productpage}}]
";
    let resources = translate(&[&gateway(servers), &vs(rules)], &local_gateway());
    let json = listener_json(&resources, "0.0.0.0_8443");
    let mesh = &json["filterChains"][0]["transportSocket"]["typedConfig"];
    assert_eq!(mesh["requireClientCertificate"], true);
    let common = &mesh["commonTlsContext"];
    assert_eq!(
        common["tlsCertificateSdsSecretConfigs"][0]["name"],
        "default"
    );
    assert_eq!(
        common["combinedValidationContext"]["validationContextSdsSecretConfig"]["name"],
        "ROOTCA"
    );
    let web = &json["filterChains"][1]["transportSocket"]["typedConfig"]["commonTlsContext"];
    assert_eq!(
        web["tlsParams"],
        json!({
            "tlsMinimumProtocolVersion": "TLSv1_3",
            "cipherSuites": ["ECDHE-RSA-AES128-GCM-SHA256"],
        })
    );
}
