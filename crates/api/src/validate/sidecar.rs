//! Sidecar checks, after Istio's `ValidateSidecar`.

use std::collections::BTreeSet;

use super::gateway::{unix_address, validate_server_tls};
use super::network::{HostScope, Protocol, fqdn, ip_address, namespace_slash_host};
use super::{Violations, connection_pool, is_dns1123_label, workload_labels};
use crate::istio::{
    CaptureMode, IstioEgressListener, IstioIngressListener, OutboundTrafficMode,
    OutboundTrafficPolicy, ServerTlsMode, Sidecar, SidecarPort,
};

const UNIX_PREFIX: &str = "unix://";

pub(super) fn validate(violations: &mut Violations, sidecar: &Sidecar) {
    if let Some(selector) = &sidecar.workload_selector {
        workload_labels(violations, "spec.workloadSelector.labels", &selector.labels);
    }
    if sidecar.egress.is_empty()
        && sidecar.ingress.is_empty()
        && sidecar.outbound_traffic_policy.is_none()
        && sidecar.inbound_connection_pool.is_none()
    {
        violations.push("spec", "sidecar: empty configuration provided");
        return;
    }
    let mut ports = BTreeSet::new();
    for (index, ingress) in sidecar.ingress.iter().enumerate() {
        validate_ingress(
            violations,
            &format!("spec.ingress[{index}]"),
            ingress,
            &mut ports,
        );
    }
    if let Some(pool) = &sidecar.inbound_connection_pool {
        connection_pool(violations, "spec.inboundConnectionPool", pool);
    }
    validate_egress_listeners(violations, &sidecar.egress);
    if let Some(policy) = &sidecar.outbound_traffic_policy {
        validate_outbound_policy(violations, "spec.outboundTrafficPolicy", policy);
    }
}

fn validate_ingress(
    violations: &mut Violations,
    field: &str,
    ingress: &IstioIngressListener,
    ports: &mut BTreeSet<u32>,
) {
    let Some(port) = &ingress.port else {
        violations.push(
            format!("{field}.port"),
            "sidecar: port is required for ingress listeners",
        );
        return;
    };
    validate_port(violations, &format!("{field}.port"), port);
    violations.port(&format!("{field}.port.number"), Some(port.number));
    if let Some(bind) = ingress.bind.as_deref().filter(|b| !b.is_empty())
        && let Err(message) = ip_address(bind)
    {
        violations.push(format!("{field}.bind"), message);
    }
    if !ports.insert(port.number) {
        violations.push(
            format!("{field}.port.number"),
            "sidecar: ports on IP bound listeners must be unique",
        );
    }
    if let Some(endpoint) = ingress
        .default_endpoint
        .as_deref()
        .filter(|e| !e.is_empty())
    {
        validate_default_endpoint(violations, &format!("{field}.defaultEndpoint"), endpoint);
    }
    if let Some(tls) = &ingress.tls {
        let tls_field = format!("{field}.tls");
        let unsupported = [
            (
                !tls.subject_alt_names.is_empty(),
                "sidecar: subjectAltNames is not supported in ingress tls",
            ),
            (
                tls.https_redirect,
                "sidecar: httpsRedirect is not supported",
            ),
            (
                tls.credential_name
                    .as_deref()
                    .is_some_and(|c| !c.is_empty()),
                "sidecar: credentialName is not currently supported",
            ),
        ];
        for (_, message) in unsupported.iter().filter(|(set, _)| *set) {
            violations.push(&tls_field, *message);
        }
        if matches!(
            tls.mode,
            ServerTlsMode::IstioMutual | ServerTlsMode::AutoPassthrough
        ) {
            violations.push(
                format!("{tls_field}.mode"),
                format!(
                    "configuration is invalid: cannot set mode to {} in sidecar ingress tls",
                    tls.mode.as_str()
                ),
            );
        }
        validate_server_tls(violations, &tls_field, tls);
    }
    if let Some(pool) = &ingress.connection_pool {
        connection_pool(violations, &format!("{field}.connectionPool"), pool);
    }
}

/// `127.0.0.1:PORT`, `0.0.0.0:PORT`, `[::1]:PORT`, `[::]:PORT`, `:PORT` or `unix://PATH`.
fn validate_default_endpoint(violations: &mut Violations, field: &str, endpoint: &str) {
    if let Some(path) = endpoint.strip_prefix(UNIX_PREFIX) {
        if let Err(message) = unix_address(path) {
            violations.push(field, message);
        }
        return;
    }
    let Some((host, port)) = endpoint.rsplit_once(':') else {
        violations.push(
            field,
            format!("address {endpoint}: missing port in address"),
        );
        return;
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if !matches!(host, "" | "127.0.0.1" | "0.0.0.0" | "::1" | "::") {
        violations.push(
            field,
            "sidecar: defaultEndpoint must be of form 127.0.0.1:<port>,0.0.0.0:<port>,[::1]:port,[::]:port,unix://filepath or unset",
        );
    }
    match port.parse::<u32>() {
        Ok(number) => violations.port(field, Some(number)),
        Err(_) => violations.push(
            field,
            format!("sidecar: defaultEndpoint port ({port}) is not a number"),
        ),
    }
}

/// Name (optional) and protocol of a sidecar listener port.
fn validate_port(violations: &mut Violations, field: &str, port: &SidecarPort) {
    if !port.name.is_empty() && !is_dns1123_label(&port.name) {
        violations.push(
            format!("{field}.name"),
            format!("invalid port name: {}", port.name),
        );
    }
    if !port.protocol.is_empty() && Protocol::parse(&port.protocol).is_none() {
        violations.push(
            format!("{field}.protocol"),
            format!("unsupported protocol: {}", port.protocol),
        );
    }
    if port.target_port.is_some_and(|target| target > 0) {
        violations.push(
            format!("{field}.targetPort"),
            "targetPort has no impact on Sidecars",
        );
    }
}

fn validate_egress_listeners(violations: &mut Violations, listeners: &[IstioEgressListener]) {
    let mut ports = BTreeSet::new();
    let mut sockets = BTreeSet::new();
    let last = listeners.len().saturating_sub(1);
    for (index, egress) in listeners.iter().enumerate() {
        let field = format!("spec.egress[{index}]");
        let bind = egress.bind.as_deref().unwrap_or("");
        match &egress.port {
            None if index != last => violations.push(
                format!("{field}.port"),
                "sidecar: the egress listener with empty port should be the last listener in the list",
            ),
            None => {}
            Some(port) => {
                validate_port(violations, &format!("{field}.port"), port);
                validate_egress_bind(violations, &field, port, bind, egress.capture_mode);
                let unique = if port.number == 0 {
                    sockets.insert(bind)
                } else {
                    ports.insert(port.number)
                };
                if !unique {
                    let what = if port.number == 0 {
                        "sidecar: unix domain socket values for listeners must be unique"
                    } else {
                        "sidecar: ports on IP bound listeners must be unique"
                    };
                    violations.push(format!("{field}.port"), what);
                }
            }
        }
        if egress.hosts.is_empty() {
            violations.push(
                format!("{field}.hosts"),
                "sidecar: egress listener must contain at least one host",
            );
        }
        for (h, host) in egress.hosts.iter().enumerate() {
            if let Err(message) = namespace_slash_host(host, HostScope::Sidecar) {
                violations.push(format!("{field}.hosts[{h}]"), message);
            }
        }
    }
}

fn validate_egress_bind(
    violations: &mut Violations,
    field: &str,
    port: &SidecarPort,
    bind: &str,
    capture_mode: CaptureMode,
) {
    if port.number != 0 {
        violations.port(&format!("{field}.port.number"), Some(port.number));
        if !bind.is_empty()
            && let Err(message) = ip_address(bind)
        {
            violations.push(format!("{field}.bind"), message);
        }
        return;
    }
    match bind.strip_prefix(UNIX_PREFIX) {
        None => violations.push(
            format!("{field}.bind"),
            "sidecar: ports with 0 value must have a unix domain socket bind address",
        ),
        Some(path) => {
            if let Err(message) = unix_address(path) {
                violations.push(format!("{field}.bind"), message);
            }
        }
    }
    if capture_mode == CaptureMode::Iptables {
        violations.push(
            format!("{field}.captureMode"),
            "sidecar: captureMode must be DEFAULT/NONE for unix domain socket listeners",
        );
    }
}

fn validate_outbound_policy(
    violations: &mut Violations,
    field: &str,
    policy: &OutboundTrafficPolicy,
) {
    let Some(proxy) = &policy.egress_proxy else {
        return;
    };
    let proxy_field = format!("{field}.egressProxy");
    if policy.mode != OutboundTrafficMode::AllowAny {
        violations.push(
            &proxy_field,
            "sidecar: egress_proxy must be set only with ALLOW_ANY outbound_traffic_policy mode",
        );
        return;
    }
    if let Err(message) = fqdn(&proxy.host) {
        violations.push(format!("{proxy_field}.host"), message);
    }
    if proxy.port.is_none() {
        violations.push(
            format!("{proxy_field}.port"),
            "sidecar: egress_proxy port must be non-nil",
        );
        return;
    }
    violations.destination(&proxy_field, proxy);
}
