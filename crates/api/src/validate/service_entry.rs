//! ServiceEntry checks, after Istio's `ValidateServiceEntry`.

use std::collections::BTreeSet;

use super::gateway::unix_address;
use super::network::{Protocol, fqdn, ip_address, ip_or_cidr, wildcard_domain};
use super::{Violations, export_to, is_dns1123_label, labels, workload_labels};
use crate::istio::{ServiceEntry, ServiceEntryResolution, WorkloadEntry};

const UNIX_PREFIX: &str = "unix://";

pub(super) fn validate(violations: &mut Violations, entry: &ServiceEntry) {
    if entry.workload_selector.is_some() && !entry.endpoints.is_empty() {
        violations.push(
            "spec.workloadSelector",
            "only one of WorkloadSelector or Endpoints is allowed in Service Entry",
        );
    }
    if let Some(selector) = &entry.workload_selector {
        workload_labels(violations, "spec.workloadSelector.labels", &selector.labels);
    }
    validate_hosts_and_addresses(violations, entry);
    let port_names = validate_ports(violations, entry);
    for (index, endpoint) in entry.endpoints.iter().enumerate() {
        let field = format!("spec.endpoints[{index}]");
        validate_endpoint(violations, &field, entry.resolution, endpoint, &port_names);
    }
    validate_resolution(violations, entry);
    export_to(violations, "spec.exportTo", &entry.export_to, true);
}

fn validate_hosts_and_addresses(violations: &mut Violations, entry: &ServiceEntry) {
    if entry.hosts.is_empty() {
        violations.push("spec.hosts", "service entry must have at least one host");
    }
    for (index, host) in entry.hosts.iter().enumerate() {
        let field = format!("spec.hosts[{index}]");
        if host == "*" {
            violations.push(field, format!("invalid host {host}"));
        } else if let Err(message) = wildcard_domain(host) {
            violations.push(field, message);
        }
    }
    let mut cidr_found = false;
    for (index, address) in entry.addresses.iter().enumerate() {
        cidr_found |= address.contains('/');
        if let Err(message) = ip_or_cidr(address) {
            violations.push(format!("spec.addresses[{index}]"), message);
        }
    }
    let static_or_none = matches!(
        entry.resolution,
        ServiceEntryResolution::None | ServiceEntryResolution::Static
    );
    if cidr_found && !static_or_none {
        violations.push(
            "spec.addresses",
            "CIDR addresses are allowed only for NONE/STATIC resolution types",
        );
    }
}

/// Returns the names of the ports, which endpoints refer to.
fn validate_ports<'a>(violations: &mut Violations, entry: &'a ServiceEntry) -> BTreeSet<&'a str> {
    let mut names = BTreeSet::new();
    let mut numbers = BTreeSet::new();
    for (index, port) in entry.ports.iter().enumerate() {
        let field = format!("spec.ports[{index}]");
        if !names.insert(port.name.as_str()) {
            violations.push(
                format!("{field}.name"),
                format!("service entry port name {:?} already defined", port.name),
            );
        }
        if !numbers.insert(port.number) {
            violations.push(
                format!("{field}.number"),
                format!("service entry port {} already defined", port.number),
            );
        }
        if !is_dns1123_label(&port.name) {
            violations.push(
                format!("{field}.name"),
                format!("invalid port name: {}", port.name),
            );
        }
        if let Some(protocol) = port.protocol.as_deref().filter(|p| !p.is_empty())
            && Protocol::parse(protocol).is_none()
        {
            violations.push(
                format!("{field}.protocol"),
                format!("unsupported protocol: {protocol}"),
            );
        }
        violations.port(&format!("{field}.number"), Some(port.number));
        if let Some(target) = port.target_port.filter(|t| *t != 0) {
            violations.port(&format!("{field}.targetPort"), Some(target));
        }
    }
    names
}

fn validate_endpoint(
    violations: &mut Violations,
    field: &str,
    resolution: ServiceEntryResolution,
    endpoint: &WorkloadEntry,
    port_names: &BTreeSet<&str>,
) {
    let address = endpoint.address.as_str();
    let address_field = format!("{field}.address");
    if let Some(path) = address.strip_prefix(UNIX_PREFIX) {
        if let Err(message) = unix_address(path) {
            violations.push(&address_field, message);
        }
        if !endpoint.ports.is_empty() {
            violations.push(
                format!("{field}.ports"),
                format!("unix endpoint {address} must not include ports"),
            );
        }
    } else if resolution == ServiceEntryResolution::Static && !address.is_empty() {
        if let Err(message) = ip_address(address) {
            violations.push(&address_field, message);
        }
    } else if !address.is_empty() && ip_address(address).is_err() && fqdn(address).is_err() {
        violations.push(
            &address_field,
            format!("endpoint address {address:?} is not a valid FQDN or an IP address"),
        );
    }
    for (name, port) in &endpoint.ports {
        let port_field = crate::yaml::child_key(&format!("{field}.ports"), name);
        if !port_names.contains(name.as_str()) {
            violations.push(
                &port_field,
                format!("endpoint port {port} is not defined by the service entry"),
            );
        }
        violations.port(&port_field, Some(*port));
    }
    labels(violations, &format!("{field}.labels"), &endpoint.labels);
}

fn validate_resolution(violations: &mut Violations, entry: &ServiceEntry) {
    match entry.resolution {
        ServiceEntryResolution::None if !entry.endpoints.is_empty() => {
            violations.push(
                "spec.endpoints",
                "no endpoints should be provided for resolution type none",
            );
        }
        ServiceEntryResolution::Static => {
            let unix = entry
                .endpoints
                .iter()
                .any(|e| e.address.starts_with(UNIX_PREFIX));
            if unix && entry.ports.len() != 1 {
                violations.push(
                    "spec.ports",
                    "exactly 1 service port required for unix endpoints",
                );
            }
        }
        ServiceEntryResolution::Dns | ServiceEntryResolution::DnsRoundRobin
            if entry.endpoints.is_empty() && entry.workload_selector.is_none() =>
        {
            for (index, host) in entry.hosts.iter().enumerate() {
                if fqdn(host).is_err() {
                    violations.push(
                        format!("spec.hosts[{index}]"),
                        "hosts must be FQDN if no endpoints are provided for resolution mode DNS",
                    );
                }
            }
        }
        _ => {}
    }
    if entry.resolution != ServiceEntryResolution::None && entry.hosts.len() > 1 {
        let distinguishable = entry.ports.iter().all(|port| {
            port.protocol
                .as_deref()
                .and_then(Protocol::parse)
                .is_some_and(|p| p.is_http() || p.is_tls())
        });
        if !distinguishable {
            violations.push(
                "spec.hosts",
                "multiple hosts provided with non-HTTP, non-TLS ports",
            );
        }
    }
}
