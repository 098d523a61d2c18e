//! Gateway API validation: the rules of the Gateway API's CRD schemas
//! (patterns, limits and CEL rules), with their messages where they have
//! one. Routes are in `routes`.

mod filters;
mod routes;

use std::collections::BTreeSet;
use std::net::IpAddr;

use super::{Violations, is_dns1123_label, is_dns1123_subdomain};
use crate::gateway_api::{
    FromNamespaces, GatewayClassSpec, GatewaySpec, GatewayTlsConfig, Listener, ParentReference,
    ReferenceGrantSpec, TlsMode,
};

pub(super) use routes::{validate_grpc_route, validate_http_route};

const MAX_LISTENERS: usize = 64;

pub(super) fn validate_gateway_class(violations: &mut Violations, class: &GatewayClassSpec) {
    if !is_domain_prefixed_path(&class.controller_name) {
        violations.push(
            "spec.controllerName",
            format!(
                "controllerName {:?} must be a domain-prefixed path, e.g. example.com/gateway-controller",
                class.controller_name
            ),
        );
    }
}

/// `example.com/some/path`: a DNS subdomain, a slash, a non-empty path.
fn is_domain_prefixed_path(value: &str) -> bool {
    value.len() <= 253
        && value.split_once('/').is_some_and(|(domain, path)| {
            is_dns1123_subdomain(domain) && !path.is_empty() && !path.contains(char::is_whitespace)
        })
}

pub(super) fn validate_gateway(violations: &mut Violations, gateway: &GatewaySpec) {
    if gateway.gateway_class_name.is_empty() {
        violations.push("spec.gatewayClassName", "gatewayClassName is required");
    }
    match gateway.listeners.len() {
        0 => violations.push("spec.listeners", "at least one listener is required"),
        count if count > MAX_LISTENERS => violations.push(
            "spec.listeners",
            format!("must have at most {MAX_LISTENERS} items"),
        ),
        _ => {}
    }
    let mut names = BTreeSet::new();
    let mut combinations = BTreeSet::new();
    for (index, listener) in gateway.listeners.iter().enumerate() {
        let field = format!("spec.listeners[{index}]");
        validate_listener(violations, &field, listener);
        if !names.insert(listener.name.as_str()) {
            violations.push(&field, "Listener name must be unique within the Gateway");
        }
        let combination = (
            listener.port,
            listener.protocol.as_str(),
            listener.hostname.as_deref(),
        );
        if !combinations.insert(combination) {
            violations.push(
                &field,
                "Combination of port, protocol and hostname must be unique for each listener",
            );
        }
    }
    for (index, address) in gateway.addresses.iter().enumerate() {
        let field = format!("spec.addresses[{index}].value");
        match address.type_.as_deref().unwrap_or("IPAddress") {
            "IPAddress" if address.value.parse::<IpAddr>().is_err() => {
                violations.push(field, format!("{:?} is not an IP address", address.value));
            }
            "Hostname" if hostname_problem(&address.value).is_some() => {
                violations.push(
                    field,
                    format!("{:?} is not a valid hostname", address.value),
                );
            }
            _ => {}
        }
    }
}

fn validate_listener(violations: &mut Violations, field: &str, listener: &Listener) {
    if !is_dns1123_subdomain(&listener.name) {
        violations.push(
            format!("{field}.name"),
            format!(
                "listener name {:?} must be a lowercase RFC 1123 subdomain",
                listener.name
            ),
        );
    }
    violations.port(&format!("{field}.port"), Some(listener.port));
    let protocol = listener.protocol.as_str();
    let known = matches!(protocol, "HTTP" | "HTTPS" | "TLS" | "TCP" | "UDP");
    if !known && !is_domain_prefixed_path(protocol) {
        violations.push(
            format!("{field}.protocol"),
            format!(
                "protocol {protocol:?} must be HTTP, HTTPS, TLS, TCP, UDP or a domain-prefixed name"
            ),
        );
    }
    if let Some(hostname) = listener.hostname.as_deref() {
        if matches!(protocol, "TCP" | "UDP") {
            violations.push(
                format!("{field}.hostname"),
                "hostname must not be specified for protocols ['TCP', 'UDP']",
            );
        } else if let Some(problem) = hostname_problem(hostname) {
            violations.push(format!("{field}.hostname"), problem);
        }
    }
    match (&listener.tls, protocol) {
        (Some(_), "HTTP" | "TCP" | "UDP") => violations.push(
            format!("{field}.tls"),
            "tls must not be specified for protocols ['HTTP', 'TCP', 'UDP']",
        ),
        (None, "HTTPS" | "TLS") => violations.push(
            format!("{field}.tls"),
            "tls mode must be set for protocols ['HTTPS', 'TLS']",
        ),
        (Some(tls), _) => validate_tls(violations, &format!("{field}.tls"), protocol, tls),
        (None, _) => {}
    }
    let namespaces = listener
        .allowed_routes
        .as_ref()
        .and_then(|a| a.namespaces.as_ref());
    if let Some(namespaces) = namespaces
        && namespaces.from == Some(FromNamespaces::Selector)
        && namespaces.selector.is_none()
    {
        violations.push(
            format!("{field}.allowedRoutes.namespaces.selector"),
            "selector must be specified when from is Selector",
        );
    }
}

fn validate_tls(violations: &mut Violations, field: &str, protocol: &str, tls: &GatewayTlsConfig) {
    let mode = tls.mode.unwrap_or(TlsMode::Terminate);
    if mode == TlsMode::Terminate && tls.certificate_refs.is_empty() && tls.options.is_empty() {
        violations.push(
            field,
            "certificateRefs or options must be specified when mode is Terminate",
        );
    }
    if mode == TlsMode::Passthrough && protocol == "HTTPS" {
        violations.push(
            format!("{field}.mode"),
            "Passthrough is not supported for the HTTPS protocol: use TLS",
        );
    }
    for (index, reference) in tls.certificate_refs.iter().enumerate() {
        if reference.name.is_empty() {
            violations.push(
                format!("{field}.certificateRefs[{index}].name"),
                "name is required",
            );
        }
    }
}

/// What is wrong with a Gateway API hostname: a lowercase DNS name, with
/// an optional leading `*.` wildcard label, and never an IP address.
pub(super) fn hostname_problem(hostname: &str) -> Option<String> {
    if hostname.parse::<IpAddr>().is_ok() {
        return Some(format!("hostname {hostname:?} must not be an IP address"));
    }
    let name = hostname.strip_prefix("*.").unwrap_or(hostname);
    if name.is_empty() || !is_dns1123_subdomain(name) {
        return Some(format!(
            "hostname {hostname:?} must be a lowercase DNS name, optionally prefixed by a \"*.\" wildcard label"
        ));
    }
    None
}

pub(super) fn parent_refs(violations: &mut Violations, parents: &[ParentReference]) {
    for (index, parent) in parents.iter().enumerate() {
        let field = format!("spec.parentRefs[{index}]");
        if parent.name.is_empty() {
            violations.push(format!("{field}.name"), "name is required");
        }
        if let Some(namespace) = parent.namespace.as_deref()
            && !is_dns1123_label(namespace)
        {
            violations.push(
                format!("{field}.namespace"),
                format!("namespace {namespace:?} is not a valid DNS-1123 label"),
            );
        }
        violations.port(&format!("{field}.port"), parent.port);
    }
}

pub(super) fn hostnames(violations: &mut Violations, hostnames: &[String]) {
    for (index, hostname) in hostnames.iter().enumerate() {
        if let Some(problem) = hostname_problem(hostname) {
            violations.push(format!("spec.hostnames[{index}]"), problem);
        }
    }
}

pub(super) fn validate_reference_grant(violations: &mut Violations, grant: &ReferenceGrantSpec) {
    if grant.from.is_empty() {
        violations.push("spec.from", "at least one from entry is required");
    }
    if grant.to.is_empty() {
        violations.push("spec.to", "at least one to entry is required");
    }
    for (index, from) in grant.from.iter().enumerate() {
        let field = format!("spec.from[{index}]");
        if from.kind.is_empty() {
            violations.push(format!("{field}.kind"), "kind is required");
        }
        if !is_dns1123_label(&from.namespace) {
            violations.push(
                format!("{field}.namespace"),
                format!(
                    "namespace {:?} is not a valid DNS-1123 label",
                    from.namespace
                ),
            );
        }
    }
    for (index, to) in grant.to.iter().enumerate() {
        if to.kind.is_empty() {
            violations.push(format!("spec.to[{index}].kind"), "kind is required");
        }
    }
}
