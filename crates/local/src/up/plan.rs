//! What `up` will run, decided from the manifests alone (no addresses or
//! processes yet): one workload per Deployment replica, with its identity,
//! labels, Services, ports and demo-app behaviour.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use trellis_api::{
    AnyResource, ConfigError, DeploymentSpec, IntOrString, Position, Resource, ServicePort,
    ServiceSpec, SourceRef,
};

use super::state::ProxyRole;
use crate::demo_app::parse_error_rate;
use trellis_api::parse_duration;

/// Pod annotation: extra latency for every request to the demo app.
pub const LATENCY_ANNOTATION: &str = "trellis.io/demo-latency";
/// Pod annotation: share (0..1) of requests the demo app fails with a 500.
pub const ERROR_RATE_ANNOTATION: &str = "trellis.io/demo-error-rate";

/// Ports the sidecar listens on itself, so no container may use them.
const SIDECAR_PORTS: [u16; 6] = [15000, 15001, 15006, 15020, 15021, 15090];

/// A Service as `up` uses it: to print its URL and to find its workloads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePlan {
    pub name: String,
    pub namespace: String,
    pub ports: Vec<ServicePort>,
}

/// One Deployment replica: a demo app per container, and a sidecar.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkloadPlan {
    /// The Deployment's name (Istio's workload name).
    pub workload: String,
    /// `DEPLOYMENT-INDEX`, stable across runs.
    pub pod: String,
    pub namespace: String,
    pub service_account: String,
    /// The pod template's labels.
    pub labels: BTreeMap<String, String>,
    /// Names of the Services (same namespace) whose selector matches.
    pub services: Vec<String>,
    pub app: AppPlan,
    pub containers: Vec<ContainerPlan>,
    /// Service port name -> container port, for the WorkloadEntry. Unnamed
    /// Service ports (allowed only alone) are left out: the registry then
    /// uses the Service's own target port, as for any WorkloadEntry.
    pub entry_ports: BTreeMap<String, u16>,
    /// Service name -> the container port its first port targets here:
    /// where `up` points a Service's URL.
    pub service_targets: BTreeMap<String, u16>,
    /// A sidecar beside demo apps, or a gateway's lone proxy.
    pub proxy_type: ProxyRole,
}

/// How each container's demo app presents itself and misbehaves.
#[derive(Debug, Clone, PartialEq)]
pub struct AppPlan {
    /// The `app` label (Istio's canonical service), else the Deployment name.
    pub service: String,
    /// The `version` label, else `latest` (Istio's default revision).
    pub version: String,
    pub latency: Duration,
    pub error_rate: f64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerPlan {
    pub name: String,
    /// Ports the app serves (behind the sidecar): declared container ports
    /// plus numeric Service target ports no container declares.
    pub ports: Vec<u16>,
}

impl WorkloadPlan {
    /// Every port the sidecar owns at the workload's address.
    pub fn inbound_ports(&self) -> Vec<u16> {
        let ports: BTreeSet<u16> = self
            .containers
            .iter()
            .flat_map(|c| c.ports.iter().copied())
            .collect();
        ports.into_iter().collect()
    }
}

/// Everything `up` runs.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MeshPlan {
    pub services: Vec<ServicePlan>,
    pub workloads: Vec<WorkloadPlan>,
}

/// Plans the mesh; every problem is reported at its Deployment.
pub fn plan<'a>(
    resources: impl Iterator<Item = &'a AnyResource>,
) -> Result<MeshPlan, Vec<ConfigError>> {
    let mut services = Vec::new();
    let mut deployments = Vec::new();
    for resource in resources {
        match resource {
            AnyResource::Service(service) => services.push(service),
            AnyResource::Deployment(deployment) => deployments.push(deployment),
            _ => {}
        }
    }
    let mut errors = Vec::new();
    let mut workloads = Vec::new();
    for deployment in deployments {
        match plan_deployment(deployment, &services) {
            Ok(replicas) => workloads.extend(replicas),
            Err(mut found) => errors.append(&mut found),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let services = services
        .into_iter()
        .map(|service| ServicePlan {
            name: service.name().to_owned(),
            namespace: service.namespace().to_owned(),
            ports: service.spec.ports.clone(),
        })
        .collect();
    Ok(MeshPlan {
        services,
        workloads,
    })
}

fn plan_deployment(
    deployment: &Resource<DeploymentSpec>,
    services: &[&Resource<ServiceSpec>],
) -> Result<Vec<WorkloadPlan>, Vec<ConfigError>> {
    let template = &deployment.spec.template;
    let labels = template.metadata.labels.clone();
    let selecting: Vec<&Resource<ServiceSpec>> = services
        .iter()
        .copied()
        .filter(|service| {
            service.namespace() == deployment.namespace() && selects(&service.spec, &labels)
        })
        .collect();
    let mut errors = Vec::new();
    let app = app_plan(deployment, &mut errors);
    let ports = container_plans(deployment, &selecting, &mut errors);
    if !errors.is_empty() {
        return Err(errors);
    }
    let replicas = deployment.spec.replicas.unwrap_or(1);
    let replica = |index: u32| WorkloadPlan {
        workload: deployment.name().to_owned(),
        pod: format!("{}-{index}", deployment.name()),
        namespace: deployment.namespace().to_owned(),
        service_account: template
            .spec
            .service_account_name
            .clone()
            .filter(|name| !name.is_empty())
            .unwrap_or_else(|| "default".to_owned()),
        labels: labels.clone(),
        services: selecting.iter().map(|s| s.name().to_owned()).collect(),
        app: app.clone(),
        containers: ports.containers.clone(),
        entry_ports: ports.entry_ports.clone(),
        service_targets: ports.service_targets.clone(),
        proxy_type: ProxyRole::Sidecar,
    };
    Ok((0..replicas).map(replica).collect())
}

/// Kubernetes semantics: an empty selector selects nothing.
fn selects(service: &ServiceSpec, labels: &BTreeMap<String, String>) -> bool {
    !service.selector.is_empty()
        && service
            .selector
            .iter()
            .all(|(key, value)| labels.get(key) == Some(value))
}

fn app_plan(deployment: &Resource<DeploymentSpec>, errors: &mut Vec<ConfigError>) -> AppPlan {
    let labels = &deployment.spec.template.metadata.labels;
    let latency = annotation(deployment, LATENCY_ANNOTATION)
        .and_then(|(field, value)| check(parse_duration(value), deployment, &field, errors))
        .unwrap_or_default();
    let error_rate = annotation(deployment, ERROR_RATE_ANNOTATION)
        .and_then(|(field, value)| check(parse_error_rate(value), deployment, &field, errors))
        .unwrap_or_default();
    AppPlan {
        service: labels
            .get("app")
            .cloned()
            .unwrap_or_else(|| deployment.name().to_owned()),
        version: labels
            .get("version")
            .cloned()
            .unwrap_or_else(|| "latest".to_owned()),
        latency,
        error_rate,
    }
}

/// An annotation from the pod template, else from the Deployment itself,
/// with the field path where it was found.
fn annotation<'a>(
    deployment: &'a Resource<DeploymentSpec>,
    name: &str,
) -> Option<(String, &'a str)> {
    let from_template = deployment.spec.template.metadata.annotations.get(name);
    match from_template {
        Some(value) => Some((format!("spec.template.metadata.annotations.{name}"), value)),
        None => deployment
            .meta
            .annotations
            .get(name)
            .map(|value| (format!("metadata.annotations.{name}"), value.as_str())),
    }
}

fn check<T, E: std::fmt::Display>(
    result: Result<T, E>,
    deployment: &Resource<DeploymentSpec>,
    field: &str,
    errors: &mut Vec<ConfigError>,
) -> Option<T> {
    result
        .map_err(|error| errors.push(error_at(&deployment.source, field, error.to_string())))
        .ok()
}

fn error_at(source: &SourceRef, field: &str, message: String) -> ConfigError {
    let position = Position {
        line: source.line,
        column: source.column,
    };
    ConfigError::new(&source.file, position, field, message)
}

/// A workload's ports, as its containers and Services define them.
#[derive(Default)]
struct PortPlan {
    containers: Vec<ContainerPlan>,
    entry_ports: BTreeMap<String, u16>,
    service_targets: BTreeMap<String, u16>,
}

fn container_plans(
    deployment: &Resource<DeploymentSpec>,
    selecting: &[&Resource<ServiceSpec>],
    errors: &mut Vec<ConfigError>,
) -> PortPlan {
    let containers = &deployment.spec.template.spec.containers;
    if containers.is_empty() {
        errors.push(error_at(
            &deployment.source,
            "spec.template.spec.containers",
            "a Deployment needs at least one container".to_owned(),
        ));
        return PortPlan::default();
    }
    let mut plans: Vec<ContainerPlan> = containers
        .iter()
        .map(|container| ContainerPlan {
            name: container.name.clone(),
            ports: sorted_unique(container.ports.iter().map(|p| p.container_port)),
        })
        .collect();
    let mut entry_ports = BTreeMap::new();
    let mut service_targets = BTreeMap::new();
    for service in selecting {
        for (index, port) in service.spec.ports.iter().enumerate() {
            let field = format!("spec.ports[{index}].targetPort");
            let Some(target) = target_port(deployment, port, &service.source, &field, errors)
            else {
                continue;
            };
            if !plans.iter().any(|plan| plan.ports.contains(&target)) {
                // Kubernetes lets a Service target a port no container declares.
                plans[0].ports.push(target);
                plans[0].ports.sort_unstable();
            }
            service_targets
                .entry(service.name().to_owned())
                .or_insert(target);
            if let Some(name) = port.name.as_deref().filter(|name| !name.is_empty()) {
                entry_ports.insert(name.to_owned(), target);
            }
        }
    }
    check_ports(deployment, &plans, errors);
    PortPlan {
        containers: plans,
        entry_ports,
        service_targets,
    }
}

/// The container port a Service port sends to, or `None` when it names a
/// port this Deployment's containers do not have.
fn target_port(
    deployment: &Resource<DeploymentSpec>,
    port: &ServicePort,
    service_source: &SourceRef,
    field: &str,
    errors: &mut Vec<ConfigError>,
) -> Option<u16> {
    match &port.target_port {
        None => Some(port.port),
        Some(IntOrString::Int(number)) => match u16::try_from(*number) {
            Ok(number) if number > 0 => Some(number),
            _ => {
                let message = format!("{number} is not a valid port number");
                errors.push(error_at(service_source, field, message));
                None
            }
        },
        Some(IntOrString::String(name)) => deployment
            .spec
            .template
            .spec
            .containers
            .iter()
            .flat_map(|container| &container.ports)
            .find(|p| p.name.as_deref() == Some(name.as_str()))
            .map(|p| p.container_port),
    }
}

fn sorted_unique(ports: impl Iterator<Item = u16>) -> Vec<u16> {
    let unique: BTreeSet<u16> = ports.collect();
    unique.into_iter().collect()
}

/// Containers of a pod share its address: a port can belong to one only,
/// and none may take a port the sidecar listens on.
fn check_ports(
    deployment: &Resource<DeploymentSpec>,
    plans: &[ContainerPlan],
    errors: &mut Vec<ConfigError>,
) {
    let mut owners: BTreeMap<u16, &str> = BTreeMap::new();
    for (index, plan) in plans.iter().enumerate() {
        let field = format!("spec.template.spec.containers[{index}].ports");
        for &port in &plan.ports {
            if SIDECAR_PORTS.contains(&port) {
                let message = format!("port {port} is reserved for the sidecar proxy");
                errors.push(error_at(&deployment.source, &field, message));
            }
            if let Some(owner) = owners.insert(port, &plan.name) {
                let message = format!("port {port} is also used by container {owner:?}");
                errors.push(error_at(&deployment.source, &field, message));
            }
        }
    }
}

#[cfg(test)]
mod tests;
