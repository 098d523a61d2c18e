//! VirtualService checks, after Istio's `ValidateVirtualService`.

use super::Violations;
use crate::istio::{
    FaultAbort, FaultDelay, HttpFaultInjection, HttpMatchRequest, HttpRedirect, HttpRetry,
    HttpRewrite, HttpRoute, HttpRouteDestination, RouteDestination, StringMatch, TlsRoute,
    VirtualService,
};

pub(super) fn validate(violations: &mut Violations, vs: &VirtualService) {
    // Without hosts, a VirtualService is a delegate (as in Istio), which
    // only makes sense with HTTP rules to hand over.
    let delegate = vs.hosts.is_empty();
    if delegate && vs.http.is_empty() {
        violations.push("spec.hosts", "virtual service must have at least one host");
    } else if delegate {
        validate_delegate_vs(violations, vs);
    }
    for (index, host) in vs.hosts.iter().enumerate() {
        if host.is_empty() {
            violations.push(
                format!("spec.hosts[{index}]"),
                "empty domain name not allowed",
            );
        }
    }
    for (index, http) in vs.http.iter().enumerate() {
        let field = format!("spec.http[{index}]");
        validate_http_route(violations, &field, http);
        validate_delegate_rule(violations, &field, http, delegate);
    }
    for (index, tls) in vs.tls.iter().enumerate() {
        validate_tls_route(violations, &format!("spec.tls[{index}]"), tls);
    }
    for (index, tcp) in vs.tcp.iter().enumerate() {
        let field = format!("spec.tcp[{index}]");
        for (m, l4) in tcp.r#match.iter().enumerate() {
            violations.port(&format!("{field}.match[{m}].port"), l4.port);
        }
        validate_l4_destinations(violations, &field, &tcp.route);
    }
}

/// A delegate is only ever used through a root, for HTTP.
fn validate_delegate_vs(violations: &mut Violations, vs: &VirtualService) {
    if !vs.gateways.is_empty() {
        violations.push(
            "spec.gateways",
            "delegate virtual service must have no gateways specified",
        );
    }
    if !vs.tls.is_empty() {
        violations.push(
            "spec.tls",
            "delegate virtual service must have no tls route specified",
        );
    }
    if !vs.tcp.is_empty() {
        violations.push(
            "spec.tcp",
            "delegate virtual service must have no tcp route specified",
        );
    }
}

fn validate_delegate_rule(
    violations: &mut Violations,
    field: &str,
    http: &HttpRoute,
    in_delegate: bool,
) {
    let Some(target) = &http.delegate else {
        return;
    };
    let field = format!("{field}.delegate");
    if in_delegate {
        violations.push(&field, "delegate virtual service cannot have delegate");
    }
    if target.name.is_empty() {
        violations.push(format!("{field}.name"), "delegate.name is required");
    }
    if let Some(namespace) = &target.namespace
        && !super::is_dns1123_label(namespace)
    {
        violations.push(
            format!("{field}.namespace"),
            format!("namespace {namespace:?} is not a valid DNS-1123 label"),
        );
    }
}

fn validate_http_route(violations: &mut Violations, field: &str, http: &HttpRoute) {
    validate_conflicts(violations, field, http);
    for (index, request) in http.r#match.iter().enumerate() {
        validate_match(violations, &format!("{field}.match[{index}]"), request);
    }
    validate_weights(
        violations,
        field,
        http.route.iter().map(|d: &HttpRouteDestination| d.weight),
    );
    for (index, route) in http.route.iter().enumerate() {
        let route_field = format!("{field}.route[{index}]");
        violations.destination(&format!("{route_field}.destination"), &route.destination);
    }
    if let Some(redirect) = &http.redirect {
        validate_redirect(violations, &format!("{field}.redirect"), redirect);
    }
    if let Some(response) = &http.direct_response {
        let response_field = format!("{field}.directResponse");
        if !(200..=599).contains(&response.status) {
            violations.push(
                format!("{response_field}.status"),
                format!(
                    "directResponse.status {} must be in range 200..599",
                    response.status
                ),
            );
        }
        if response
            .body
            .as_ref()
            .is_some_and(|b| b.string.is_some() && b.bytes.is_some())
        {
            violations.push(
                format!("{response_field}.body"),
                "only one of string or bytes may be set",
            );
        }
    }
    validate_route_policies(violations, field, http);
}

/// Istio's `validateHTTPRouteConflict`: what may not be combined.
fn validate_conflicts(violations: &mut Violations, field: &str, http: &HttpRoute) {
    let has_route = !http.route.is_empty();
    let mut conflict = |message: &str| violations.push(field, message);
    if http.redirect.is_some() {
        if has_route {
            conflict("HTTP route cannot contain both route and redirect");
        }
        if http.fault.is_some() {
            conflict("HTTP route cannot contain both fault and redirect");
        }
        if http.rewrite.is_some() {
            conflict("HTTP route rule cannot contain both rewrite and redirect");
        }
    }
    if http.direct_response.is_some() {
        if has_route {
            conflict("HTTP route cannot contain both route and direct_response");
        }
        if http.redirect.is_some() {
            conflict("HTTP route rule cannot contain both direct_response and redirect");
        }
        if http.fault.is_some() {
            conflict("HTTP route cannot contain both fault and direct_response");
        }
        if http.rewrite.is_some() {
            conflict("HTTP route rule cannot contain both rewrite and direct_response");
        }
    }
    if http.delegate.is_some() && (has_route || http.redirect.is_some()) {
        conflict("HTTP route cannot contain both delegate and route or redirect");
    }
    if !has_route
        && http.redirect.is_none()
        && http.direct_response.is_none()
        && http.delegate.is_none()
    {
        conflict("HTTP route, redirect, direct_response or delegate is required");
    }
}

fn validate_match(violations: &mut Violations, field: &str, request: &HttpMatchRequest) {
    let single = [
        ("uri", &request.uri),
        ("scheme", &request.scheme),
        ("method", &request.method),
        ("authority", &request.authority),
    ];
    for (name, string_match) in single {
        violations.string_match(&format!("{field}.{name}"), string_match.as_ref());
    }
    let maps = [
        ("headers", &request.headers),
        ("queryParams", &request.query_params),
        ("withoutHeaders", &request.without_headers),
    ];
    for (name, map) in maps {
        for (key, string_match) in map {
            let entry_field = crate::yaml::child_key(&format!("{field}.{name}"), key);
            if key.is_empty() {
                violations.push(&entry_field, "header name cannot be empty");
            }
            violations.string_match(&entry_field, Some(string_match));
        }
    }
    violations.port(&format!("{field}.port"), request.port);
}

/// Istio's weight rules: each 0..=100 and, with several destinations, a
/// total of 100. A lone destination may omit its weight (0 means 100).
fn validate_weights(violations: &mut Violations, field: &str, weights: impl Iterator<Item = i32>) {
    let mut total: i64 = 0;
    let mut count = 0;
    for (index, weight) in weights.enumerate() {
        if !(0..=100).contains(&weight) {
            violations.push(
                format!("{field}.route[{index}].weight"),
                format!("percentage {weight} is not in range 0..100"),
            );
        }
        total += i64::from(weight);
        count += 1;
    }
    if count > 1 && total != 100 {
        violations.push(
            format!("{field}.route"),
            format!("total destination weight {total} != 100"),
        );
    }
}

fn validate_redirect(violations: &mut Violations, field: &str, redirect: &HttpRedirect) {
    if redirect.uri.is_none()
        && redirect.authority.is_none()
        && redirect.port.is_none()
        && redirect.derive_port.is_none()
        && redirect.scheme.is_none()
    {
        violations.push(
            field,
            "redirect must specify URI, authority, scheme, or port",
        );
    }
    if redirect.port.is_some() && redirect.derive_port.is_some() {
        violations.push(field, "only one of port or derivePort may be set");
    }
    violations.port(&format!("{field}.port"), redirect.port);
    if let Some(code) = redirect.redirect_code
        && !(300..=399).contains(&code)
    {
        violations.push(
            format!("{field}.redirectCode"),
            format!("{code} is not a valid redirect code, must be 3xx"),
        );
    }
}

/// Timeouts, retries, faults, mirrors, CORS and rewrites.
fn validate_route_policies(violations: &mut Violations, field: &str, http: &HttpRoute) {
    violations.duration(&format!("{field}.timeout"), http.timeout.as_deref(), true);
    if let Some(retries) = &http.retries {
        validate_retries(violations, &format!("{field}.retries"), retries);
    }
    if let Some(fault) = &http.fault {
        validate_fault(violations, &format!("{field}.fault"), fault);
    }
    validate_mirrors(violations, field, http);
    if let Some(cors) = &http.cors_policy {
        let cors_field = format!("{field}.corsPolicy");
        for (index, origin) in cors.allow_origins.iter().enumerate() {
            violations.string_match(&format!("{cors_field}.allowOrigins[{index}]"), Some(origin));
        }
        let max_age = cors.max_age.as_deref();
        violations.duration(&format!("{cors_field}.maxAge"), max_age, true);
    }
    if let Some(rewrite) = &http.rewrite {
        validate_rewrite(violations, &format!("{field}.rewrite"), rewrite);
    }
}

fn validate_retries(violations: &mut Violations, field: &str, retries: &HttpRetry) {
    if retries.attempts < 0 {
        violations.push(format!("{field}.attempts"), "attempts cannot be negative");
    }
    let per_try = retries.per_try_timeout.as_deref();
    violations.duration(&format!("{field}.perTryTimeout"), per_try, false);
    let backoff = retries.backoff.as_deref();
    violations.duration(&format!("{field}.backoff"), backoff, false);
}

fn validate_mirrors(violations: &mut Violations, field: &str, http: &HttpRoute) {
    if let Some(mirror) = &http.mirror {
        violations.destination(&format!("{field}.mirror"), mirror);
    }
    let percentage = http.mirror_percentage.as_ref();
    violations.percent(&format!("{field}.mirrorPercentage.value"), percentage);
    for (index, mirror) in http.mirrors.iter().enumerate() {
        let mirror_field = format!("{field}.mirrors[{index}]");
        violations.destination(&format!("{mirror_field}.destination"), &mirror.destination);
        let percentage = mirror.percentage.as_ref();
        violations.percent(&format!("{mirror_field}.percentage.value"), percentage);
    }
}

fn validate_rewrite(violations: &mut Violations, field: &str, rewrite: &HttpRewrite) {
    let Some(regex_rewrite) = &rewrite.uri_regex_rewrite else {
        return;
    };
    if rewrite.uri.is_some() {
        violations.push(
            field,
            "rewrite may only contain one of uri or uriRegexRewrite",
        );
    }
    let pattern = StringMatch::Regex(regex_rewrite.r#match.clone());
    violations.string_match(&format!("{field}.uriRegexRewrite.match"), Some(&pattern));
}

fn validate_fault(violations: &mut Violations, field: &str, fault: &HttpFaultInjection) {
    if fault.delay.is_none() && fault.abort.is_none() {
        violations.push(
            field,
            "HTTP fault injection must have an abort and/or a delay",
        );
    }
    if let Some(delay) = &fault.delay {
        validate_delay(violations, &format!("{field}.delay"), delay);
    }
    if let Some(abort) = &fault.abort {
        validate_abort(violations, &format!("{field}.abort"), abort);
    }
}

fn validate_delay(violations: &mut Violations, field: &str, delay: &FaultDelay) {
    match (&delay.fixed_delay, &delay.exponential_delay) {
        (Some(_), Some(_)) => {
            violations.push(
                field,
                "only one of fixedDelay or exponentialDelay may be set",
            );
        }
        (None, None) => violations.push(field, "delay must specify fixedDelay"),
        _ => {}
    }
    let fixed = delay.fixed_delay.as_deref();
    violations.duration(&format!("{field}.fixedDelay"), fixed, false);
    let exponential = delay.exponential_delay.as_deref();
    violations.duration(&format!("{field}.exponentialDelay"), exponential, false);
    let percentage = delay.percentage.as_ref();
    violations.percent(&format!("{field}.percentage.value"), percentage);
}

fn validate_abort(violations: &mut Violations, field: &str, abort: &FaultAbort) {
    let kinds = [
        abort.http_status.is_some(),
        abort.grpc_status.is_some(),
        abort.http2_error.is_some(),
    ];
    match kinds.iter().filter(|set| **set).count() {
        0 => violations.push(
            field,
            "abort must specify httpStatus, grpcStatus or http2Error",
        ),
        1 => {}
        _ => violations.push(
            field,
            "only one of httpStatus, grpcStatus or http2Error may be set",
        ),
    }
    if let Some(status) = abort.http_status
        && !(200..=599).contains(&status)
    {
        let message = format!("invalid http status {status}");
        violations.push(format!("{field}.httpStatus"), message);
    }
    let percentage = abort.percentage.as_ref();
    violations.percent(&format!("{field}.percentage.value"), percentage);
}

fn validate_tls_route(violations: &mut Violations, field: &str, tls: &TlsRoute) {
    if tls.r#match.is_empty() {
        violations.push(
            format!("{field}.match"),
            "TLS route must have at least one match condition",
        );
    }
    for (index, attributes) in tls.r#match.iter().enumerate() {
        let match_field = format!("{field}.match[{index}]");
        if attributes.sni_hosts.is_empty() {
            violations.push(
                format!("{match_field}.sniHosts"),
                "TLS match must have at least one SNI host",
            );
        }
        violations.port(&format!("{match_field}.port"), attributes.port);
    }
    validate_l4_destinations(violations, field, &tls.route);
}

fn validate_l4_destinations(violations: &mut Violations, field: &str, routes: &[RouteDestination]) {
    if routes.is_empty() {
        violations.push(format!("{field}.route"), "route is required");
    }
    validate_weights(violations, field, routes.iter().map(|d| d.weight));
    for (index, route) in routes.iter().enumerate() {
        violations.destination(
            &format!("{field}.route[{index}].destination"),
            &route.destination,
        );
    }
}

#[cfg(test)]
mod tests;
