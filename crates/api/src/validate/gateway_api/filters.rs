//! Gateway API route filters and backend references, shared by HTTPRoute
//! and GRPCRoute.

use std::collections::BTreeSet;

use super::Violations;
use crate::gateway_api::{
    HeaderModifier, HttpBackendRef, HttpFilterType, HttpRouteFilter, PathModifier, PathModifierType,
};

const MAX_WEIGHT: i64 = 1_000_000;
const REDIRECT_CODES: [u32; 5] = [301, 302, 303, 307, 308];

/// An HTTP token (RFC 7230): what header names are made of.
pub(super) fn is_token(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Each filter's `type` names the one field that configures it; `grpc`
/// restricts the types to those GRPCRoute supports.
pub(super) fn filters(
    violations: &mut Violations,
    field: &str,
    filters: &[HttpRouteFilter],
    grpc: bool,
) {
    let mut seen = BTreeSet::new();
    for (index, filter) in filters.iter().enumerate() {
        let field = format!("{field}[{index}]");
        let Some(filter_type) = filter.type_ else {
            violations.push(format!("{field}.type"), "type is required");
            continue;
        };
        let name = filter_type_name(filter_type);
        if grpc
            && matches!(
                filter_type,
                HttpFilterType::RequestRedirect | HttpFilterType::UrlRewrite
            )
        {
            violations.push(
                format!("{field}.type"),
                format!("filter type {name} is not supported by GRPCRoute"),
            );
        }
        for (config, present) in filter_configs(filter) {
            let wanted = config == config_field(filter_type);
            if wanted && !present {
                violations.push(
                    &field,
                    format!("filter.{config} must be specified for {name} filter.type"),
                );
            } else if !wanted && present {
                violations.push(
                    &field,
                    format!(
                        "filter.{config} must be nil if the filter.type is not {}",
                        config_type(config)
                    ),
                );
            }
        }
        if filter_type != HttpFilterType::RequestMirror
            && filter_type != HttpFilterType::ExtensionRef
            && !seen.insert(name)
        {
            violations.push(&field, format!("{name} filter cannot be repeated"));
        }
        validate_filter_config(violations, &field, filter);
    }
}

fn filter_configs(filter: &HttpRouteFilter) -> [(&'static str, bool); 6] {
    [
        (
            "requestHeaderModifier",
            filter.request_header_modifier.is_some(),
        ),
        (
            "responseHeaderModifier",
            filter.response_header_modifier.is_some(),
        ),
        ("requestMirror", filter.request_mirror.is_some()),
        ("requestRedirect", filter.request_redirect.is_some()),
        ("urlRewrite", filter.url_rewrite.is_some()),
        ("extensionRef", filter.extension_ref.is_some()),
    ]
}

fn filter_type_name(filter_type: HttpFilterType) -> &'static str {
    match filter_type {
        HttpFilterType::RequestHeaderModifier => "RequestHeaderModifier",
        HttpFilterType::ResponseHeaderModifier => "ResponseHeaderModifier",
        HttpFilterType::RequestMirror => "RequestMirror",
        HttpFilterType::RequestRedirect => "RequestRedirect",
        HttpFilterType::UrlRewrite => "URLRewrite",
        HttpFilterType::ExtensionRef => "ExtensionRef",
    }
}

fn config_field(filter_type: HttpFilterType) -> &'static str {
    match filter_type {
        HttpFilterType::RequestHeaderModifier => "requestHeaderModifier",
        HttpFilterType::ResponseHeaderModifier => "responseHeaderModifier",
        HttpFilterType::RequestMirror => "requestMirror",
        HttpFilterType::RequestRedirect => "requestRedirect",
        HttpFilterType::UrlRewrite => "urlRewrite",
        HttpFilterType::ExtensionRef => "extensionRef",
    }
}

fn config_type(config: &str) -> &'static str {
    match config {
        "requestHeaderModifier" => "RequestHeaderModifier",
        "responseHeaderModifier" => "ResponseHeaderModifier",
        "requestMirror" => "RequestMirror",
        "requestRedirect" => "RequestRedirect",
        "urlRewrite" => "URLRewrite",
        _ => "ExtensionRef",
    }
}

fn validate_filter_config(violations: &mut Violations, field: &str, filter: &HttpRouteFilter) {
    let modifiers = [
        ("requestHeaderModifier", &filter.request_header_modifier),
        ("responseHeaderModifier", &filter.response_header_modifier),
    ];
    for (name, modifier) in modifiers {
        if let Some(modifier) = modifier {
            header_modifier(violations, &format!("{field}.{name}"), modifier);
        }
    }
    if let Some(redirect) = &filter.request_redirect {
        let field = format!("{field}.requestRedirect");
        if let Some(scheme) = redirect.scheme.as_deref()
            && !matches!(scheme, "http" | "https")
        {
            violations.push(
                format!("{field}.scheme"),
                format!("scheme {scheme:?} must be http or https"),
            );
        }
        if let Some(code) = redirect.status_code
            && !REDIRECT_CODES.contains(&code)
        {
            violations.push(
                format!("{field}.statusCode"),
                format!("statusCode {code} must be one of 301, 302, 303, 307, 308"),
            );
        }
        violations.port(&format!("{field}.port"), redirect.port);
        path_modifier(violations, &format!("{field}.path"), redirect.path.as_ref());
    }
    if let Some(rewrite) = &filter.url_rewrite {
        path_modifier(
            violations,
            &format!("{field}.urlRewrite.path"),
            rewrite.path.as_ref(),
        );
    }
    if let Some(mirror) = &filter.request_mirror {
        let field = format!("{field}.requestMirror");
        if mirror.percent.is_some_and(|percent| percent > 100) {
            violations.push(
                format!("{field}.percent"),
                "percent must be in range 0..100",
            );
        }
        if let Some(fraction) = &mirror.fraction {
            let denominator = fraction.denominator.unwrap_or(100);
            if denominator == 0 || fraction.numerator > denominator {
                violations.push(format!("{field}.fraction"), "numerator must be less than or equal to denominator, and denominator greater than 0");
            }
        }
        if mirror.percent.is_some() && mirror.fraction.is_some() {
            violations.push(
                &field,
                "Only one of percent or fraction may be specified in HTTPRequestMirrorFilter",
            );
        }
        backend_port(
            violations,
            &format!("{field}.backendRef"),
            mirror.backend_ref.kind.as_deref(),
            mirror.backend_ref.group.as_deref(),
            mirror.backend_ref.port,
        );
    }
}

fn header_modifier(violations: &mut Violations, field: &str, modifier: &HeaderModifier) {
    for (list, headers) in [("set", &modifier.set), ("add", &modifier.add)] {
        let mut names = BTreeSet::new();
        for (index, header) in headers.iter().enumerate() {
            let field = format!("{field}.{list}[{index}].name");
            if !is_token(&header.name) {
                violations.push(field, format!("invalid name: {:?}", header.name));
            } else if !names.insert(header.name.to_ascii_lowercase()) {
                violations.push(field, format!("duplicate name {:?}", header.name));
            }
        }
    }
    for (index, name) in modifier.remove.iter().enumerate() {
        if !is_token(name) {
            violations.push(
                format!("{field}.remove[{index}]"),
                format!("invalid name: {name:?}"),
            );
        }
    }
}

fn path_modifier(violations: &mut Violations, field: &str, modifier: Option<&PathModifier>) {
    let Some(modifier) = modifier else { return };
    match modifier.type_ {
        None => violations.push(format!("{field}.type"), "type is required"),
        Some(PathModifierType::ReplaceFullPath) if modifier.replace_full_path.is_none() => {
            violations.push(
                field,
                "replaceFullPath must be specified when type is set to 'ReplaceFullPath'",
            );
        }
        Some(PathModifierType::ReplacePrefixMatch) if modifier.replace_prefix_match.is_none() => {
            violations.push(
                field,
                "replacePrefixMatch must be specified when type is set to 'ReplacePrefixMatch'",
            );
        }
        Some(_) => {}
    }
}

pub(super) fn backend_refs(
    violations: &mut Violations,
    field: &str,
    backends: &[HttpBackendRef],
    grpc: bool,
) {
    for (index, backend) in backends.iter().enumerate() {
        let field = format!("{field}[{index}]");
        if backend.name.is_empty() {
            violations.push(format!("{field}.name"), "name is required");
        }
        if let Some(weight) = backend.weight
            && !(0..=MAX_WEIGHT).contains(&weight)
        {
            violations.push(
                format!("{field}.weight"),
                format!("weight {weight} must be in range 0..{MAX_WEIGHT}"),
            );
        }
        backend_port(
            violations,
            &field,
            backend.kind.as_deref(),
            backend.group.as_deref(),
            backend.port,
        );
        filters(
            violations,
            &format!("{field}.filters"),
            &backend.filters,
            grpc,
        );
    }
}

/// A Service backend (the default kind) needs a port.
fn backend_port(
    violations: &mut Violations,
    field: &str,
    kind: Option<&str>,
    group: Option<&str>,
    port: Option<u32>,
) {
    let is_service = kind.unwrap_or("Service") == "Service" && group.unwrap_or_default().is_empty();
    if is_service && port.is_none() {
        violations.push(field, "Must have port for Service reference");
    }
    violations.port(&format!("{field}.port"), port);
}
