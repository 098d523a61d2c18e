//! What an HTTP rule does once it matched, as Istio's pilot emits it:
//! forward to weighted destinations (with rewrites, header operations,
//! retries and mirrors), redirect, or answer directly. Faults live in the
//! route's per-filter config (see [`crate::fault`]).

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use envoy_types::pb::envoy::config::core::v3::{
    DataSource, HeaderValue, HeaderValueOption, RuntimeFractionalPercent, data_source,
    header_value_option::HeaderAppendAction,
};
use envoy_types::pb::envoy::config::route::v3::{
    DirectResponseAction, RedirectAction, Route, RouteAction, WeightedCluster,
    redirect_action::{PathRewriteSpecifier, RedirectResponseCode, SchemeRewriteSpecifier},
    route::Action,
    route_action::{ClusterSpecifier, HashPolicy, HostRewriteSpecifier, RequestMirrorPolicy},
    weighted_cluster::ClusterWeight,
};
use envoy_types::pb::envoy::r#type::matcher::v3::{RegexMatchAndSubstitute, RegexMatcher};
use trellis_api::{
    Destination, HeaderOperations, Headers, HttpDirectResponse, HttpRedirect, HttpRoute,
    RedirectPortSelection, Resource, VirtualService,
};
use trellis_config::{MeshService, Snapshot};

use crate::build::{duration, uint32};
use crate::cluster_policy::route_hash_policy;
use crate::fault::fractional_percent;
use crate::names::outbound_cluster_name;

/// The route a rule becomes, without its name and match (one Envoy route
/// per match condition shares it).
pub fn route_template(
    snapshot: &Snapshot,
    vs: &Resource<VirtualService>,
    rule: &HttpRoute,
    port: Option<u16>,
) -> Option<Route> {
    let mut route = Route::default();
    let action = if let Some(redirect) = &rule.redirect {
        Action::Redirect(redirect_action(redirect, port))
    } else if let Some(direct) = &rule.direct_response {
        Action::DirectResponse(direct_response(vs, direct)?)
    } else if !rule.route.is_empty() {
        let (action, single_destination_headers) = forward_action(snapshot, vs, rule, port)?;
        // With one destination there is no ClusterWeight to carry its
        // headers, so Istio puts them on the route, after the rule's own.
        if let Some(headers) = &single_destination_headers {
            add_headers(&mut route, headers);
        }
        Action::Route(action)
    } else {
        tracing::warn!(
            virtual_service = vs.name(),
            "HTTP rule without route, redirect or directResponse skipped"
        );
        return None;
    };
    if let Some(headers) = &rule.headers {
        prepend_headers(&mut route, headers);
    }
    route.action = Some(action);
    route.typed_per_filter_config = crate::fault::per_route_config(vs, rule);
    route
        .typed_per_filter_config
        .extend(crate::cors::per_route_config(vs, rule));
    Some(route)
}

fn forward_action(
    snapshot: &Snapshot,
    vs: &Resource<VirtualService>,
    rule: &HttpRoute,
    port: Option<u16>,
) -> Option<(RouteAction, Option<Headers>)> {
    let clusters: Vec<ClusterWeight> = rule
        .route
        .iter()
        .filter_map(|destination| {
            let name = cluster_for(snapshot, vs, &destination.destination, port)?;
            let weight = if rule.route.len() == 1 {
                100
            } else {
                destination.weight.max(0) as u32
            };
            let mut cluster = ClusterWeight {
                name,
                weight: Some(uint32(weight)),
                ..Default::default()
            };
            if let (Some(headers), true) = (&destination.headers, rule.route.len() > 1) {
                let request = header_operations(headers.request.as_ref());
                let response = header_operations(headers.response.as_ref());
                (
                    cluster.request_headers_to_add,
                    cluster.request_headers_to_remove,
                ) = request;
                (
                    cluster.response_headers_to_add,
                    cluster.response_headers_to_remove,
                ) = response;
            }
            Some(cluster)
        })
        .filter(|c| c.weight.as_ref().is_some_and(|w| w.value > 0))
        .collect();
    if clusters.is_empty() {
        tracing::warn!(
            virtual_service = vs.name(),
            "no destination of the rule is a known service port"
        );
        return None;
    }
    let cluster_specifier = if clusters.len() == 1 {
        ClusterSpecifier::Cluster(clusters[0].name.clone())
    } else {
        ClusterSpecifier::WeightedClusters(WeightedCluster {
            clusters,
            ..Default::default()
        })
    };
    let timeout = rule
        .timeout
        .as_deref()
        .and_then(|t| trellis_api::parse_duration(t).ok())
        .unwrap_or_default();
    let mut action = RouteAction {
        cluster_specifier: Some(cluster_specifier),
        timeout: Some(duration(timeout)),
        retry_policy: crate::retry_policy::retry_policy(rule.retries.as_ref()),
        request_mirror_policies: mirror_policies(snapshot, vs, rule, port),
        hash_policy: hash_policies(snapshot, vs, rule, port),
        ..Default::default()
    };
    apply_rewrite(&mut action, rule);
    let single = (rule.route.len() == 1)
        .then(|| rule.route[0].headers.clone())
        .flatten();
    Some((action, single))
}

/// Istio's outbound cluster for a destination: its port, else the
/// Service's only port, else the port the request came in on.
fn cluster_for(
    snapshot: &Snapshot,
    vs: &Resource<VirtualService>,
    destination: &Destination,
    port: Option<u16>,
) -> Option<String> {
    let (target, target_port, subset) = resolve(snapshot, vs, destination, port)?;
    Some(outbound_cluster_name(target_port, subset, &target.hostname))
}

/// The Service, port and subset (maybe empty) a destination names.
fn resolve<'a>(
    snapshot: &'a Snapshot,
    vs: &Resource<VirtualService>,
    destination: &'a Destination,
    port: Option<u16>,
) -> Option<(&'a MeshService, u16, &'a str)> {
    let target = snapshot
        .registry
        .service_by_host(&destination.host, vs.namespace())?;
    let target_port = destination
        .port
        .map(|p| p.number as u16)
        .or_else(|| (target.ports.len() == 1).then(|| target.ports[0].port))
        .or(port)?;
    Some((
        target,
        target_port,
        destination.subset.as_deref().unwrap_or(""),
    ))
}

/// The consistent-hash key of the rule's destinations' DestinationRules.
/// A request is hashed before its weighted destination is known, so the
/// route carries a key only when every destination agrees on it.
fn hash_policies(
    snapshot: &Snapshot,
    vs: &Resource<VirtualService>,
    rule: &HttpRoute,
    port: Option<u16>,
) -> Vec<HashPolicy> {
    let mut policies = rule.route.iter().map(|d| {
        let (service, port, subset) = resolve(snapshot, vs, &d.destination, port)?;
        route_hash_policy(snapshot, service, port, subset)
    });
    let Some(Some(first)) = policies.next() else {
        return Vec::new();
    };
    if policies.all(|p| p.as_ref() == Some(&first)) {
        vec![first]
    } else {
        Vec::new()
    }
}

fn apply_rewrite(action: &mut RouteAction, rule: &HttpRoute) {
    // `headers.request.set` of the authority rewrites the host, as in Istio.
    let authority_header = rule
        .headers
        .as_ref()
        .and_then(|h| h.request.as_ref())
        .and_then(|ops| {
            ops.set
                .iter()
                .find(|(name, _)| is_authority(name))
                .map(|(_, value)| value.clone())
        });
    let Some(rewrite) = &rule.rewrite else {
        if let Some(host) = authority_header {
            action.host_rewrite_specifier = Some(HostRewriteSpecifier::HostRewriteLiteral(host));
        }
        return;
    };
    if let Some(regex) = &rewrite.uri_regex_rewrite {
        action.regex_rewrite = Some(RegexMatchAndSubstitute {
            pattern: Some(RegexMatcher {
                regex: regex.r#match.clone(),
                ..Default::default()
            }),
            substitution: regex.rewrite.clone(),
        });
    } else if let Some(uri) = &rewrite.uri {
        action.prefix_rewrite = uri.clone();
    }
    if let Some(host) = rewrite.authority.clone().or(authority_header) {
        action.host_rewrite_specifier = Some(HostRewriteSpecifier::HostRewriteLiteral(host));
    }
}

fn is_authority(name: &str) -> bool {
    name.eq_ignore_ascii_case("host") || name.eq_ignore_ascii_case(":authority")
}

/// `mirror` (with `mirrorPercentage` or the deprecated `mirrorPercent`)
/// and `mirrors`; a mirror without a percentage gets every request.
fn mirror_policies(
    snapshot: &Snapshot,
    vs: &Resource<VirtualService>,
    rule: &HttpRoute,
    port: Option<u16>,
) -> Vec<RequestMirrorPolicy> {
    let legacy_percent = rule
        .mirror_percentage
        .map(|p| p.value)
        .or(rule.mirror_percent.map(f64::from));
    let mirrors = rule
        .mirror
        .iter()
        .map(|destination| (destination, legacy_percent))
        .chain(
            rule.mirrors
                .iter()
                .map(|m| (&m.destination, m.percentage.map(|p| p.value))),
        );
    mirrors
        .filter_map(|(destination, percent)| {
            let cluster = cluster_for(snapshot, vs, destination, port);
            if cluster.is_none() {
                tracing::warn!(
                    virtual_service = vs.name(),
                    host = destination.host,
                    "mirror destination is not a known service port"
                );
            }
            Some(RequestMirrorPolicy {
                cluster: cluster?,
                runtime_fraction: Some(RuntimeFractionalPercent {
                    default_value: Some(fractional_percent(percent.unwrap_or(100.0))),
                    ..Default::default()
                }),
                ..Default::default()
            })
        })
        .collect()
}

/// Istio's redirect: `uri` replaces the path, `authority` the host, and
/// `derivePort: FROM_REQUEST_PORT` becomes the port this route serves.
fn redirect_action(redirect: &HttpRedirect, port: Option<u16>) -> RedirectAction {
    let port_redirect = match (redirect.port, redirect.derive_port) {
        (Some(port), _) => port,
        (None, Some(RedirectPortSelection::FromRequestPort)) => port.map_or(0, u32::from),
        _ => 0,
    };
    RedirectAction {
        host_redirect: redirect.authority.clone().unwrap_or_default(),
        port_redirect,
        scheme_rewrite_specifier: redirect
            .scheme
            .clone()
            .map(SchemeRewriteSpecifier::SchemeRedirect),
        path_rewrite_specifier: redirect.uri.clone().map(PathRewriteSpecifier::PathRedirect),
        response_code: redirect_code(redirect.redirect_code.unwrap_or(301)) as i32,
        ..Default::default()
    }
}

fn redirect_code(code: u32) -> RedirectResponseCode {
    match code {
        302 => RedirectResponseCode::Found,
        303 => RedirectResponseCode::SeeOther,
        307 => RedirectResponseCode::TemporaryRedirect,
        308 => RedirectResponseCode::PermanentRedirect,
        301 => RedirectResponseCode::MovedPermanently,
        other => {
            tracing::warn!(code = other, "unsupported redirect code; using 301");
            RedirectResponseCode::MovedPermanently
        }
    }
}

fn direct_response(
    vs: &Resource<VirtualService>,
    direct: &HttpDirectResponse,
) -> Option<DirectResponseAction> {
    let body = match direct.body.as_ref() {
        None => None,
        Some(body) => match (&body.string, &body.bytes) {
            (Some(text), _) => Some(data_source::Specifier::InlineString(text.clone())),
            (None, Some(encoded)) => match BASE64.decode(encoded.trim()) {
                Ok(bytes) => Some(data_source::Specifier::InlineBytes(bytes)),
                Err(_) => {
                    tracing::warn!(
                        virtual_service = vs.name(),
                        "directResponse.body.bytes is not base64; rule skipped"
                    );
                    return None;
                }
            },
            (None, None) => None,
        },
    };
    Some(DirectResponseAction {
        status: direct.status,
        body: body.map(|specifier| DataSource {
            specifier: Some(specifier),
            ..Default::default()
        }),
        ..Default::default()
    })
}

/// `set` overwrites, `add` appends; the authority is not a header Envoy
/// sets this way (see [`apply_rewrite`]).
fn header_operations(ops: Option<&HeaderOperations>) -> (Vec<HeaderValueOption>, Vec<String>) {
    let Some(ops) = ops else {
        return (Vec::new(), Vec::new());
    };
    let option = |name: &str, value: &str, action: HeaderAppendAction| HeaderValueOption {
        header: Some(HeaderValue {
            key: name.to_ascii_lowercase(),
            value: value.to_string(),
            ..Default::default()
        }),
        append_action: action as i32,
        ..Default::default()
    };
    let mut options: Vec<HeaderValueOption> = ops
        .set
        .iter()
        .filter(|(name, _)| !is_authority(name))
        .map(|(n, v)| option(n, v, HeaderAppendAction::OverwriteIfExistsOrAdd))
        .collect();
    options.extend(
        ops.add
            .iter()
            .map(|(n, v)| option(n, v, HeaderAppendAction::AppendIfExistsOrAdd)),
    );
    let remove = ops.remove.iter().map(|n| n.to_ascii_lowercase()).collect();
    (options, remove)
}

fn add_headers(route: &mut Route, headers: &Headers) {
    let (request_add, request_remove) = header_operations(headers.request.as_ref());
    let (response_add, response_remove) = header_operations(headers.response.as_ref());
    route.request_headers_to_add.extend(request_add);
    route.request_headers_to_remove.extend(request_remove);
    route.response_headers_to_add.extend(response_add);
    route.response_headers_to_remove.extend(response_remove);
}

/// The rule's own operations come before any single destination's.
fn prepend_headers(route: &mut Route, headers: &Headers) {
    let destination = std::mem::take(route);
    add_headers(route, headers);
    route
        .request_headers_to_add
        .extend(destination.request_headers_to_add);
    route
        .request_headers_to_remove
        .extend(destination.request_headers_to_remove);
    route
        .response_headers_to_add
        .extend(destination.response_headers_to_add);
    route
        .response_headers_to_remove
        .extend(destination.response_headers_to_remove);
}

#[cfg(test)]
mod tests;
