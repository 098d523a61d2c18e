//! Checks on Kubernetes kinds and WorkloadEntry: only what the mesh relies
//! on (ports it will listen on or dial).

use std::collections::BTreeSet;

use super::{Violations, is_dns1123_label};
use crate::istio::WorkloadEntry;
use crate::kube::{Container, DeploymentSpec, PodSpec, PodTemplate, ServiceSpec};

pub(super) fn validate_service(violations: &mut Violations, spec: &ServiceSpec) {
    let mut names = BTreeSet::new();
    for (index, port) in spec.ports.iter().enumerate() {
        let field = format!("spec.ports[{index}]");
        if port.port == 0 {
            violations.push(
                format!("{field}.port"),
                "must be between 1 and 65535, inclusive",
            );
        }
        match port.name.as_deref() {
            None | Some("") if spec.ports.len() > 1 => violations.push(
                format!("{field}.name"),
                "name is required when a Service has more than one port",
            ),
            Some(name) if !name.is_empty() && !names.insert(name) => violations.push(
                format!("{field}.name"),
                format!("duplicate port name {name:?}"),
            ),
            _ => {}
        }
    }
}

pub(super) fn validate_deployment(violations: &mut Violations, spec: &DeploymentSpec) {
    validate_template(violations, &spec.template);
}

/// The pod template of a workload controller (Deployment, StatefulSet...).
pub(super) fn validate_template(violations: &mut Violations, template: &PodTemplate) {
    let containers = &template.spec.containers;
    validate_containers(violations, "spec.template.spec.containers", containers);
}

pub(super) fn validate_pod(violations: &mut Violations, spec: &PodSpec) {
    validate_containers(violations, "spec.containers", &spec.containers);
}

fn validate_containers(violations: &mut Violations, field: &str, containers: &[Container]) {
    for (c, container) in containers.iter().enumerate() {
        for (p, port) in container.ports.iter().enumerate() {
            if port.container_port == 0 {
                violations.push(
                    format!("{field}[{c}].ports[{p}].containerPort"),
                    "must be between 1 and 65535, inclusive",
                );
            }
        }
    }
}

pub(super) fn validate_workload_entry(violations: &mut Violations, entry: &WorkloadEntry) {
    if entry.address.is_empty() {
        violations.push("spec.address", "address must be set");
    }
    validate_entry_ports(violations, "spec.ports", entry);
}

/// Port names are DNS-1123 labels and numbers valid ports; `field` is the
/// path of the entry's `ports`.
pub(super) fn validate_entry_ports(
    violations: &mut Violations,
    field: &str,
    entry: &WorkloadEntry,
) {
    for (name, port) in &entry.ports {
        let field = crate::yaml::child_key(field, name);
        if !is_dns1123_label(name) {
            violations.push(
                &field,
                format!("port name {name:?} is not a valid DNS-1123 label"),
            );
        }
        violations.port(&field, Some(*port));
    }
}
