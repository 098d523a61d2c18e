//! The route configuration of gateway servers (all HTTP servers of a
//! port, or one HTTPS server): a virtual host per host that a
//! VirtualService bound to a server's Gateway shares with that server's
//! hosts, with the VirtualService's HTTP rules as routes (the sidecars'
//! translation). Several VirtualServices for one host merge their routes
//! in order, as Istio does for gateways.

use envoy_types::pb::envoy::config::route::v3::{
    RedirectAction, Route, RouteConfiguration, VirtualHost, redirect_action, route::Action,
};
use envoy_types::pb::google::protobuf::BoolValue;
use trellis_api::{Gateway, HttpMatchRequest, Resource, VirtualService};
use trellis_config::Snapshot;
use trellis_xds::NodeInfo;

use super::hosts::{domains, intersection, qualified_vs_host};
use super::server_kind::ServerKind;
use super::servers::BoundServer;
use crate::routes::{envoy_routes, prefix_match};

/// Istio's name for the routes of a port's HTTP servers: `http.8080`.
pub fn http_route_name(listen_port: u16) -> String {
    format!("http.{listen_port}")
}

/// Istio's name for an HTTPS server's routes:
/// `https.443.PORT_NAME.GATEWAY.NAMESPACE`.
pub fn https_route_name(listen_port: u16, server: &BoundServer<'_>) -> String {
    format!(
        "https.{listen_port}.{}.{}.{}",
        server.port_name,
        server.gateway.name(),
        server.gateway.namespace()
    )
}

/// The route configuration `name` for `servers` on `server_port`.
pub fn route_configuration(
    snapshot: &Snapshot,
    node: &NodeInfo,
    name: String,
    server_port: u16,
    servers: &[BoundServer<'_>],
) -> RouteConfiguration {
    let mut virtual_hosts: Vec<VirtualHost> = Vec::new();
    for server in servers {
        for vs in snapshot
            .virtual_services()
            .filter(|vs| binds(vs, server.gateway))
        {
            for host in shared_hosts(vs, server) {
                let routes = server_routes(snapshot, node, vs, server, server_port);
                match virtual_hosts.iter_mut().find(|v| v.domains[0] == host) {
                    Some(existing) => {
                        // An identical earlier route already answers.
                        let fresh: Vec<Route> = routes
                            .into_iter()
                            .filter(|r| !existing.routes.contains(r))
                            .collect();
                        existing.routes.extend(fresh);
                    }
                    None => virtual_hosts.push(VirtualHost {
                        name: format!("{host}:{server_port}"),
                        domains: domains(&host),
                        routes,
                        include_request_attempt_count: true,
                        ..Default::default()
                    }),
                }
            }
        }
    }
    RouteConfiguration {
        name,
        virtual_hosts,
        validate_clusters: Some(BoolValue { value: false }),
        ..Default::default()
    }
}

/// Whether `vs` lists `gateway` in its `gateways` (`name` in the
/// VirtualService's namespace, or `namespace/name`; `mesh` is the sidecars).
pub(super) fn binds(vs: &Resource<VirtualService>, gateway: &Resource<Gateway>) -> bool {
    vs.spec
        .gateways
        .iter()
        .any(|entry| names(entry, vs.namespace(), gateway))
}

pub(super) fn names(entry: &str, vs_namespace: &str, gateway: &Resource<Gateway>) -> bool {
    let (namespace, name) = entry.split_once('/').unwrap_or((vs_namespace, entry));
    namespace == gateway.namespace() && name == gateway.name()
}

/// The VirtualService's hosts as this server serves them, each once.
pub(super) fn shared_hosts(vs: &Resource<VirtualService>, server: &BoundServer<'_>) -> Vec<String> {
    let mut shared = Vec::new();
    for vs_host in &vs.spec.hosts {
        let vs_host = qualified_vs_host(vs_host, vs.namespace());
        for server_host in &server.hosts {
            if !server_host.admits(vs.namespace(), server.gateway.namespace()) {
                continue;
            }
            if let Some(host) = intersection(&vs_host, server_host.host())
                && !shared.contains(&host)
            {
                shared.push(host);
            }
        }
    }
    shared
}

/// The rules' routes; a server with `httpsRedirect` redirects every
/// request to HTTPS instead (Envoy's `require_tls: ALL` as a route).
fn server_routes(
    snapshot: &Snapshot,
    node: &NodeInfo,
    vs: &Resource<VirtualService>,
    server: &BoundServer<'_>,
    server_port: u16,
) -> Vec<Route> {
    if server.kind
        == (ServerKind::Http {
            https_redirect: true,
        })
    {
        return vec![https_redirect()];
    }
    let bound_here = |m: &HttpMatchRequest| {
        m.gateways.is_empty()
            || m.gateways
                .iter()
                .any(|entry| names(entry, vs.namespace(), server.gateway))
    };
    vs.spec
        .http
        .iter()
        .flat_map(|rule| envoy_routes(snapshot, node, vs, rule, Some(server_port), bound_here))
        .collect()
}

fn https_redirect() -> Route {
    Route {
        name: "https_redirect".into(),
        r#match: Some(prefix_match("/")),
        action: Some(Action::Redirect(RedirectAction {
            scheme_rewrite_specifier: Some(redirect_action::SchemeRewriteSpecifier::HttpsRedirect(
                true,
            )),
            ..Default::default()
        })),
        ..Default::default()
    }
}
