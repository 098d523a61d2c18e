//! HTTPRoute and GRPCRoute rules from the Gateway API's CRD schemas.

use std::collections::BTreeSet;
use std::time::Duration;

use super::filters::{backend_refs, filters, is_token};
use super::{Violations, hostnames, parent_refs};
use crate::gateway_api::{
    GrpcMethodMatch, GrpcRouteSpec, HeaderMatch, HttpFilterType, HttpPathMatch, HttpRouteMatch,
    HttpRouteRule, HttpRouteSpec, HttpRouteTimeouts, PathMatchType, PathModifierType,
    ValueMatchType,
};

const MAX_RULES: usize = 16;
const METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
];

pub(in crate::validate) fn validate_http_route(violations: &mut Violations, route: &HttpRouteSpec) {
    parent_refs(violations, &route.parent_refs);
    hostnames(violations, &route.hostnames);
    if route.rules.len() > MAX_RULES {
        violations.push("spec.rules", format!("must have at most {MAX_RULES} items"));
    }
    for (index, rule) in route.rules.iter().enumerate() {
        validate_http_rule(violations, &format!("spec.rules[{index}]"), rule);
    }
}

fn validate_http_rule(violations: &mut Violations, field: &str, rule: &HttpRouteRule) {
    for (index, route_match) in rule.matches.iter().enumerate() {
        validate_http_match(
            violations,
            &format!("{field}.matches[{index}]"),
            route_match,
        );
    }
    filters(
        violations,
        &format!("{field}.filters"),
        &rule.filters,
        false,
    );
    let has = |wanted: HttpFilterType| rule.filters.iter().any(|f| f.type_ == Some(wanted));
    if has(HttpFilterType::RequestRedirect) && has(HttpFilterType::UrlRewrite) {
        violations.push(
            format!("{field}.filters"),
            "May specify either httpRouteFilterRequestRedirect or httpRouteFilterRequestRewrite, but not both",
        );
    }
    if has(HttpFilterType::RequestRedirect) && !rule.backend_refs.is_empty() {
        violations.push(
            format!("{field}.backendRefs"),
            "RequestRedirect filter must not be used together with backendRefs",
        );
    }
    let replaces_prefix = rule.filters.iter().any(|filter| {
        let path = filter.url_rewrite.as_ref().and_then(|r| r.path.as_ref());
        path.is_some_and(|p| p.type_ == Some(PathModifierType::ReplacePrefixMatch))
    });
    let prefix_matches = rule
        .matches
        .iter()
        .filter(|m| {
            m.path.as_ref().is_none_or(|p| {
                p.type_.unwrap_or(PathMatchType::PathPrefix) == PathMatchType::PathPrefix
            })
        })
        .count();
    if replaces_prefix && (rule.matches.len() != 1 || prefix_matches != 1) {
        violations.push(
            format!("{field}.filters"),
            "When using URLRewrite filter with path.replacePrefixMatch, exactly one PathPrefix match must be specified",
        );
    }
    backend_refs(
        violations,
        &format!("{field}.backendRefs"),
        &rule.backend_refs,
        false,
    );
    if let Some(timeouts) = &rule.timeouts {
        validate_timeouts(violations, &format!("{field}.timeouts"), timeouts);
    }
}

fn validate_http_match(violations: &mut Violations, field: &str, route_match: &HttpRouteMatch) {
    if let Some(path) = &route_match.path {
        validate_path_match(violations, &format!("{field}.path"), path);
    }
    header_matches(
        violations,
        &format!("{field}.headers"),
        &route_match.headers,
    );
    header_matches(
        violations,
        &format!("{field}.queryParams"),
        &route_match.query_params,
    );
    if let Some(method) = route_match.method.as_deref()
        && !METHODS.contains(&method)
    {
        violations.push(
            format!("{field}.method"),
            format!("unsupported method {method:?}"),
        );
    }
}

fn validate_path_match(violations: &mut Violations, field: &str, path: &HttpPathMatch) {
    let value = path.value.as_deref().unwrap_or("/");
    let field = format!("{field}.value");
    if path.type_ == Some(PathMatchType::RegularExpression) {
        violations.regex(&field, value);
        return;
    }
    let problem = if !value.starts_with('/') {
        Some(
            "value must be an absolute path and start with '/' when type one of ['Exact', 'PathPrefix']",
        )
    } else if value.contains("//") {
        Some("must not contain '//' when type one of ['Exact', 'PathPrefix']")
    } else if value.contains("/./") || value.contains("/../") {
        Some("must not contain '/./' or '/../' when type one of ['Exact', 'PathPrefix']")
    } else if value.to_ascii_lowercase().contains("%2f") || value.contains('#') {
        Some("must not contain '%2f', '%2F' or '#' when type one of ['Exact', 'PathPrefix']")
    } else if value.ends_with("/..") || value.ends_with("/.") {
        Some("must not end with '/..' or '/.' when type one of ['Exact', 'PathPrefix']")
    } else {
        None
    };
    if let Some(problem) = problem {
        violations.push(field, problem);
    }
}

fn header_matches(violations: &mut Violations, field: &str, matches: &[HeaderMatch]) {
    let mut names = BTreeSet::new();
    for (index, header) in matches.iter().enumerate() {
        let field = format!("{field}[{index}]");
        if !is_token(&header.name) {
            violations.push(
                format!("{field}.name"),
                format!("invalid name: {:?}", header.name),
            );
        } else if !names.insert(header.name.to_ascii_lowercase()) {
            violations.push(
                format!("{field}.name"),
                format!("duplicate name {:?}", header.name),
            );
        }
        if header.type_ == Some(ValueMatchType::RegularExpression) {
            violations.regex(&format!("{field}.value"), &header.value);
        }
    }
}

fn validate_timeouts(violations: &mut Violations, field: &str, timeouts: &HttpRouteTimeouts) {
    let request = gateway_duration(
        violations,
        &format!("{field}.request"),
        timeouts.request.as_deref(),
    );
    let backend = gateway_duration(
        violations,
        &format!("{field}.backendRequest"),
        timeouts.backend_request.as_deref(),
    );
    if let (Some(request), Some(backend)) = (request, backend)
        && !request.is_zero()
        && backend > request
    {
        violations.push(
            field,
            "backendRequest timeout cannot be longer than request timeout",
        );
    }
}

/// A Gateway API duration (GEP-2257): one to four `<1-5 digits><unit>`
/// parts, units `h`, `m`, `s`, `ms`.
fn gateway_duration(
    violations: &mut Violations,
    field: &str,
    value: Option<&str>,
) -> Option<Duration> {
    let value = value?;
    let parsed = parse_gateway_duration(value);
    if parsed.is_none() {
        violations.push(
            field,
            format!(
                "invalid duration {value:?}: use up to four parts such as 1h, 30m, 10s or 500ms"
            ),
        );
    }
    parsed
}

fn parse_gateway_duration(value: &str) -> Option<Duration> {
    let mut rest = value;
    let mut total = Duration::ZERO;
    let mut parts = 0;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if !(1..=5).contains(&digits) {
            return None;
        }
        let amount: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let (unit, millis) = if rest.starts_with("ms") {
            ("ms", 1)
        } else if rest.starts_with('h') {
            ("h", 3_600_000)
        } else if rest.starts_with('m') {
            ("m", 60_000)
        } else if rest.starts_with('s') {
            ("s", 1_000)
        } else {
            return None;
        };
        rest = &rest[unit.len()..];
        total += Duration::from_millis(amount * millis);
        parts += 1;
    }
    (1..=4).contains(&parts).then_some(total)
}

pub(in crate::validate) fn validate_grpc_route(violations: &mut Violations, route: &GrpcRouteSpec) {
    parent_refs(violations, &route.parent_refs);
    hostnames(violations, &route.hostnames);
    if route.rules.len() > MAX_RULES {
        violations.push("spec.rules", format!("must have at most {MAX_RULES} items"));
    }
    for (index, rule) in route.rules.iter().enumerate() {
        let field = format!("spec.rules[{index}]");
        for (m, route_match) in rule.matches.iter().enumerate() {
            let field = format!("{field}.matches[{m}]");
            if let Some(method) = &route_match.method {
                grpc_method(violations, &format!("{field}.method"), method);
            }
            header_matches(
                violations,
                &format!("{field}.headers"),
                &route_match.headers,
            );
        }
        filters(violations, &format!("{field}.filters"), &rule.filters, true);
        backend_refs(
            violations,
            &format!("{field}.backendRefs"),
            &rule.backend_refs,
            true,
        );
    }
}

fn grpc_method(violations: &mut Violations, field: &str, method: &GrpcMethodMatch) {
    let service = method.service.as_deref();
    let name = method.method.as_deref();
    if service.is_none() && name.is_none() {
        violations.push(
            field,
            "One or both of 'service' or 'method' must be specified",
        );
        return;
    }
    if method.type_ == Some(ValueMatchType::RegularExpression) {
        for (part, value) in [("service", service), ("method", name)] {
            if let Some(value) = value {
                violations.regex(&format!("{field}.{part}"), value);
            }
        }
        return;
    }
    if let Some(service) = service
        && !is_grpc_service(service)
    {
        violations.push(
            format!("{field}.service"),
            format!(
                "service {service:?} must be a dot-separated list of identifiers, e.g. foo.v1.Echo"
            ),
        );
    }
    if let Some(name) = name
        && !is_identifier(name)
    {
        violations.push(
            format!("{field}.method"),
            format!("method {name:?} must be an identifier"),
        );
    }
}

fn is_identifier(value: &str) -> bool {
    let mut bytes = value.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

fn is_grpc_service(value: &str) -> bool {
    let value = value.strip_prefix('.').unwrap_or(value);
    value.split('.').all(is_identifier)
}

#[cfg(test)]
mod tests {
    use super::parse_gateway_duration;
    use std::time::Duration;

    #[test]
    fn gateway_durations_follow_gep_2257() {
        assert_eq!(
            parse_gateway_duration("1h30m"),
            Some(Duration::from_secs(5400))
        );
        assert_eq!(
            parse_gateway_duration("500ms"),
            Some(Duration::from_millis(500))
        );
        assert_eq!(parse_gateway_duration("0s"), Some(Duration::ZERO));
        for bad in [
            "",
            "1",
            "1d",
            "1.5s",
            "123456s",
            "1h1m1s1ms1h",
            "-1s",
            "1 s",
        ] {
            assert_eq!(parse_gateway_duration(bad), None, "{bad}");
        }
    }
}
