//! HTTP routes: a virtual host per Service port, whose routes come from the
//! VirtualService for that host (first matching rule wins, as in Istio) or,
//! without one, send everything to the whole Service. VirtualService hosts
//! that name no Service (an IP address, an external name) get a virtual
//! host of their own, on any port.

use envoy_types::pb::envoy::config::route::v3::{
    HeaderMatcher, Route, RouteAction, RouteConfiguration, RouteMatch, VirtualHost,
    header_matcher::HeaderMatchSpecifier, route::Action, route_action::ClusterSpecifier,
    route_match::PathSpecifier,
};
use envoy_types::pb::envoy::r#type::matcher::v3::{
    RegexMatcher, StringMatcher, string_matcher::MatchPattern,
};
use envoy_types::pb::google::protobuf::BoolValue;
use trellis_api::{HttpMatchRequest, HttpRoute, Resource, StringMatch, VirtualService};
use trellis_config::{MeshService, MeshServicePort, Protocol, Snapshot};
use trellis_xds::NodeInfo;

use crate::build::duration;
use crate::names::{HTTP_PROXY_ROUTE, istio_config_metadata, outbound_cluster_name};
use crate::route_action::route_template;

/// The route table of the explicit HTTP proxy listener: every HTTP port of
/// every Service, keyed by the names a client may use for it.
pub fn http_proxy(snapshot: &Snapshot, node: &NodeInfo) -> RouteConfiguration {
    let mut virtual_hosts = Vec::new();
    let visible = snapshot.registry.services().iter();
    for service in visible.filter(|s| s.visible_from(&node.namespace)) {
        for port in service.ports.iter().filter(|p| is_http(p)) {
            virtual_hosts.push(virtual_host(snapshot, node, service, port));
        }
    }
    virtual_hosts.extend(non_service_hosts(snapshot, node));
    RouteConfiguration {
        name: HTTP_PROXY_ROUTE.into(),
        virtual_hosts,
        validate_clusters: Some(BoolValue { value: false }),
        ..Default::default()
    }
}

fn is_http(port: &MeshServicePort) -> bool {
    matches!(
        port.protocol,
        Protocol::Http | Protocol::Http2 | Protocol::Grpc | Protocol::Unknown
    )
}

pub(crate) fn virtual_host(
    snapshot: &Snapshot,
    node: &NodeInfo,
    service: &MeshService,
    port: &MeshServicePort,
) -> VirtualHost {
    let routes = match virtual_service_for(snapshot, service) {
        Some(vs) => vs
            .spec
            .http
            .iter()
            .flat_map(|rule| envoy_routes(snapshot, node, vs, rule, Some(port.port), any_gateway))
            .collect(),
        None => vec![default_route(snapshot, service, port.port)],
    };
    VirtualHost {
        name: format!("{}:{}", service.hostname, port.port),
        domains: domains(service, port.port),
        routes,
        include_request_attempt_count: true,
        ..Default::default()
    }
}

/// Every way a client in the mesh may write this host and port.
fn domains(service: &MeshService, port: u16) -> Vec<String> {
    // A ServiceEntry host has no short names.
    let names = match service.entry {
        Some(_) => vec![service.hostname.clone()],
        None => vec![
            service.hostname.clone(),
            format!("{}.{}.svc", service.name, service.namespace),
            format!("{}.{}", service.name, service.namespace),
            service.name.clone(),
        ],
    };
    let mut domains: Vec<String> = names.iter().map(|n| format!("{n}:{port}")).collect();
    if port == 80 {
        domains.extend(names);
    }
    domains
}

/// Virtual hosts for mesh VirtualService hosts that are not Services. The
/// first VirtualService naming a host wins; wildcard hosts are not
/// translated yet.
fn non_service_hosts(snapshot: &Snapshot, node: &NodeInfo) -> Vec<VirtualHost> {
    let mut seen = std::collections::BTreeSet::new();
    let mut virtual_hosts = Vec::new();
    for vs in snapshot
        .virtual_services()
        .filter(|vs| applies_to_sidecars(vs))
    {
        for host in &vs.spec.hosts {
            let host = host.to_ascii_lowercase();
            let is_service = snapshot
                .registry
                .service_by_host(&host, vs.namespace())
                .is_some();
            if is_service || host.contains('*') || !seen.insert(host.clone()) {
                continue;
            }
            let routes = vs
                .spec
                .http
                .iter()
                .flat_map(|rule| envoy_routes(snapshot, node, vs, rule, None, any_gateway));
            virtual_hosts.push(VirtualHost {
                name: host.clone(),
                domains: vec![host.clone(), format!("{host}:*")],
                routes: routes.collect(),
                include_request_attempt_count: true,
                ..Default::default()
            });
        }
    }
    virtual_hosts
}

/// VirtualServices bound to the mesh (no `gateways`, or `mesh` among them).
fn applies_to_sidecars(vs: &Resource<VirtualService>) -> bool {
    vs.spec.gateways.is_empty() || vs.spec.gateways.iter().any(|g| g == "mesh")
}

/// The VirtualService that routes this host (the first by namespace and name).
fn virtual_service_for<'a>(
    snapshot: &'a Snapshot,
    service: &MeshService,
) -> Option<&'a Resource<VirtualService>> {
    snapshot.virtual_services().find(|vs| {
        applies_to_sidecars(vs)
            && vs.spec.hosts.iter().any(|host| {
                snapshot
                    .registry
                    .service_by_host(host, vs.namespace())
                    .is_some_and(|s| s.hostname == service.hostname)
            })
    })
}

/// Everything to the whole Service, with Istio's default retries.
fn default_route(snapshot: &Snapshot, service: &MeshService, port: u16) -> Route {
    Route {
        name: "default".into(),
        r#match: Some(prefix_match("/")),
        action: Some(Action::Route(RouteAction {
            cluster_specifier: Some(ClusterSpecifier::Cluster(outbound_cluster_name(
                port,
                "",
                &service.hostname,
            ))),
            timeout: Some(duration(std::time::Duration::ZERO)),
            retry_policy: crate::retry_policy::retry_policy(None),
            hash_policy: crate::cluster_policy::route_hash_policy(snapshot, service, port, "")
                .into_iter()
                .collect(),
            ..Default::default()
        })),
        ..Default::default()
    }
}

/// Sidecars do not filter match conditions by their `gateways`.
fn any_gateway(_: &HttpMatchRequest) -> bool {
    true
}

/// One Envoy route per match condition of a rule (Istio ORs them), all
/// with the rule's action; a rule without matches catches everything.
/// `bound` decides which conditions apply to the proxy at hand by their
/// `gateways` (a gateway passes only those naming it, or none).
pub(crate) fn envoy_routes(
    snapshot: &Snapshot,
    node: &NodeInfo,
    vs: &Resource<VirtualService>,
    rule: &HttpRoute,
    port: Option<u16>,
    bound: impl Fn(&HttpMatchRequest) -> bool,
) -> Vec<Route> {
    crate::delegate::expand(snapshot, vs, rule)
        .iter()
        .flat_map(|(vs, rule)| rule_routes(snapshot, node, vs, rule, port, &bound))
        .collect()
}

/// [`envoy_routes`] for a rule that does not delegate.
fn rule_routes(
    snapshot: &Snapshot,
    node: &NodeInfo,
    vs: &Resource<VirtualService>,
    rule: &HttpRoute,
    port: Option<u16>,
    bound: &dyn Fn(&HttpMatchRequest) -> bool,
) -> Vec<Route> {
    let Some(template) = route_template(snapshot, vs, rule, port) else {
        return Vec::new();
    };
    let name = rule.name.clone().unwrap_or_default();
    let metadata = Some(istio_config_metadata(vs));
    let matches: Vec<RouteMatch> = if rule.r#match.is_empty() {
        vec![prefix_match("/")]
    } else {
        rule.r#match
            .iter()
            .filter(|m| bound(m) && applies(m, node, port))
            .map(route_match)
            .collect()
    };
    matches
        .into_iter()
        .map(|m| Route {
            name: name.clone(),
            r#match: Some(m),
            metadata: metadata.clone(),
            ..template.clone()
        })
        .collect()
}

/// Conditions decided at translation time: the port (unknown for hosts
/// that are not Services, where a port condition cannot hold) and the
/// caller's labels.
fn applies(m: &HttpMatchRequest, node: &NodeInfo, port: Option<u16>) -> bool {
    m.port
        .is_none_or(|p| port.is_some_and(|port| p == u32::from(port)))
        && m.source_labels
            .iter()
            .all(|(k, v)| node.labels.get(k) == Some(v))
        && m.source_namespace
            .as_ref()
            .is_none_or(|ns| *ns == node.namespace)
}

pub(crate) fn prefix_match(prefix: &str) -> RouteMatch {
    RouteMatch {
        path_specifier: Some(PathSpecifier::Prefix(prefix.into())),
        ..Default::default()
    }
}

fn route_match(m: &HttpMatchRequest) -> RouteMatch {
    let path_specifier = match &m.uri {
        Some(StringMatch::Exact(path)) => PathSpecifier::Path(path.clone()),
        Some(StringMatch::Prefix(prefix)) => PathSpecifier::Prefix(prefix.clone()),
        Some(StringMatch::Regex(regex)) => PathSpecifier::SafeRegex(RegexMatcher {
            regex: regex.clone(),
            ..Default::default()
        }),
        Some(StringMatch::Present) | None => PathSpecifier::Prefix("/".into()),
    };
    let mut headers: Vec<HeaderMatcher> = m
        .headers
        .iter()
        .map(|(name, value)| header_matcher(name, value, false))
        .collect();
    headers.extend(
        m.without_headers
            .iter()
            .map(|(name, value)| header_matcher(name, value, true)),
    );
    for (pseudo, value) in [
        (":method", &m.method),
        (":authority", &m.authority),
        (":scheme", &m.scheme),
    ] {
        if let Some(value) = value {
            headers.push(header_matcher(pseudo, value, false));
        }
    }
    RouteMatch {
        path_specifier: Some(path_specifier),
        case_sensitive: m.ignore_uri_case.then_some(BoolValue { value: false }),
        headers,
        ..Default::default()
    }
}

fn header_matcher(name: &str, value: &StringMatch, invert: bool) -> HeaderMatcher {
    let pattern = match value {
        StringMatch::Exact(v) => MatchPattern::Exact(v.clone()),
        StringMatch::Prefix(v) => MatchPattern::Prefix(v.clone()),
        StringMatch::Regex(v) => MatchPattern::SafeRegex(RegexMatcher {
            regex: v.clone(),
            ..Default::default()
        }),
        StringMatch::Present => {
            return HeaderMatcher {
                name: name.to_ascii_lowercase(),
                header_match_specifier: Some(HeaderMatchSpecifier::PresentMatch(true)),
                invert_match: invert,
                ..Default::default()
            };
        }
    };
    HeaderMatcher {
        name: name.to_ascii_lowercase(),
        header_match_specifier: Some(HeaderMatchSpecifier::StringMatch(StringMatcher {
            match_pattern: Some(pattern),
            ..Default::default()
        })),
        invert_match: invert,
        ..Default::default()
    }
}
