//! The service registry: the mesh's Services, what protocol each port
//! speaks, and the endpoints behind them (from WorkloadEntries). Built once
//! per snapshot; queries never fail and never panic.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};

use trellis_api::{IntOrString, Resource, ServicePort, ServiceSpec, WorkloadEntry};

mod protocol;

pub use protocol::Protocol;

/// Kubernetes' default cluster domain; service hostnames end with it.
pub const CLUSTER_DOMAIN: &str = "cluster.local";

/// The service account a workload runs as when it names none.
pub const DEFAULT_SERVICE_ACCOUNT: &str = "default";

/// The full hostname of a Service: `reviews.default.svc.cluster.local`.
pub fn service_hostname(name: &str, namespace: &str) -> String {
    format!("{name}.{namespace}.svc.{CLUSTER_DOMAIN}")
}

/// A Service as the mesh sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeshService {
    pub name: String,
    pub namespace: String,
    /// `reviews.default.svc.cluster.local`.
    pub hostname: String,
    pub ports: Vec<MeshServicePort>,
    /// Kubernetes semantics: an empty selector selects nothing.
    pub selector: BTreeMap<String, String>,
}

impl MeshService {
    pub fn port(&self, number: u16) -> Option<&MeshServicePort> {
        self.ports.iter().find(|port| port.port == number)
    }

    pub fn port_by_name(&self, name: &str) -> Option<&MeshServicePort> {
        self.ports
            .iter()
            .find(|port| port.name.as_deref() == Some(name))
    }

    /// Whether a workload with these labels backs this Service.
    pub fn selects(&self, labels: &BTreeMap<String, String>) -> bool {
        !self.selector.is_empty()
            && self
                .selector
                .iter()
                .all(|(key, value)| labels.get(key) == Some(value))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeshServicePort {
    pub name: Option<String>,
    pub port: u16,
    pub target_port: TargetPort,
    pub protocol: Protocol,
}

/// Where a Service port's traffic goes on the workload.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TargetPort {
    Number(u16),
    /// The name of a container port (or of a WorkloadEntry port).
    Named(String),
}

/// One workload behind a Service port.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MeshEndpoint {
    pub address: SocketAddr,
    pub labels: BTreeMap<String, String>,
    pub service_account: String,
    /// The WorkloadEntry's `metadata.name`.
    pub workload_name: String,
    pub namespace: String,
}

/// A WorkloadEntry reduced to what endpoint resolution needs. Entries whose
/// address is a DNS name cannot become socket addresses and are left out.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Workload {
    name: String,
    namespace: String,
    ip: IpAddr,
    ports: BTreeMap<String, u32>,
    labels: BTreeMap<String, String>,
    service_account: String,
}

/// Services and workloads of one snapshot.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Registry {
    /// Sorted by hostname.
    services: Vec<MeshService>,
    by_hostname: HashMap<String, usize>,
    workloads: Vec<Workload>,
}

impl Registry {
    pub fn new<'a>(
        services: impl IntoIterator<Item = &'a Resource<ServiceSpec>>,
        workload_entries: impl IntoIterator<Item = &'a Resource<WorkloadEntry>>,
    ) -> Registry {
        let mut services: Vec<MeshService> = services.into_iter().map(mesh_service).collect();
        services.sort_by(|a, b| a.hostname.cmp(&b.hostname));
        // Snapshots never hold two Services with one name; should a caller
        // pass them, the first one wins, as with duplicate definitions.
        services.dedup_by(|later, first| later.hostname == first.hostname);
        let by_hostname = services
            .iter()
            .enumerate()
            .map(|(index, service)| (service.hostname.clone(), index))
            .collect();
        let workloads = workload_entries.into_iter().filter_map(workload).collect();
        Registry {
            services,
            by_hostname,
            workloads,
        }
    }

    /// All Services, sorted by hostname.
    pub fn services(&self) -> &[MeshService] {
        &self.services
    }

    /// The Service a host names, as a client in `namespace_context` would
    /// resolve it: `reviews`, `reviews.default`, `reviews.default.svc` or
    /// `reviews.default.svc.cluster.local` (a trailing dot is allowed).
    pub fn service_by_host(&self, host: &str, namespace_context: &str) -> Option<&MeshService> {
        let host = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
        let suffix = format!(".svc.{CLUSTER_DOMAIN}");
        let fqdn = match host.split('.').count() {
            1 => service_hostname(&host, namespace_context),
            2 => format!("{host}{suffix}"),
            3 if host.ends_with(".svc") => format!("{host}.{CLUSTER_DOMAIN}"),
            _ => host,
        };
        self.by_hostname
            .get(&fqdn)
            .map(|index| &self.services[*index])
    }

    /// The endpoints behind one port of a Service: every WorkloadEntry in
    /// the Service's namespace whose labels match its selector, at the port
    /// the entry maps the port's name to, else the target port number, else
    /// the Service port. Sorted by address, then workload name.
    pub fn endpoints(&self, service: &MeshService, port: &MeshServicePort) -> Vec<MeshEndpoint> {
        let mut endpoints: Vec<MeshEndpoint> = self
            .workloads
            .iter()
            .filter(|workload| workload.namespace == service.namespace)
            .filter(|workload| service.selects(&workload.labels))
            .map(|workload| MeshEndpoint {
                address: SocketAddr::new(workload.ip, workload_port(workload, port)),
                labels: workload.labels.clone(),
                service_account: workload.service_account.clone(),
                workload_name: workload.name.clone(),
                namespace: workload.namespace.clone(),
            })
            .collect();
        endpoints.sort_by(|a, b| (a.address, &a.workload_name).cmp(&(b.address, &b.workload_name)));
        endpoints
    }
}

fn mesh_service(resource: &Resource<ServiceSpec>) -> MeshService {
    let namespace = resource.namespace().to_string();
    MeshService {
        hostname: service_hostname(resource.name(), &namespace),
        name: resource.name().to_string(),
        namespace,
        ports: resource.spec.ports.iter().map(mesh_service_port).collect(),
        selector: resource.spec.selector.clone(),
    }
}

fn mesh_service_port(port: &ServicePort) -> MeshServicePort {
    let target_port = match &port.target_port {
        Some(IntOrString::Int(number)) => TargetPort::Number(
            u16::try_from(*number)
                .ok()
                .filter(|n| *n != 0)
                .unwrap_or(port.port),
        ),
        // Digits in a string are a number written as a string, not a name
        // (port names must contain a letter).
        Some(IntOrString::String(name)) => match name.parse::<u16>() {
            Ok(number) if number != 0 => TargetPort::Number(number),
            _ => TargetPort::Named(name.clone()),
        },
        None => TargetPort::Number(port.port),
    };
    MeshServicePort {
        name: port.name.clone().filter(|name| !name.is_empty()),
        port: port.port,
        target_port,
        protocol: Protocol::detect(
            port.name.as_deref(),
            port.app_protocol.as_deref(),
            port.protocol.as_deref(),
        ),
    }
}

fn workload(resource: &Resource<WorkloadEntry>) -> Option<Workload> {
    let ip = resource.spec.address.parse::<IpAddr>().ok()?;
    let service_account = resource
        .spec
        .service_account
        .clone()
        .filter(|account| !account.is_empty())
        .unwrap_or_else(|| DEFAULT_SERVICE_ACCOUNT.to_string());
    Some(Workload {
        name: resource.name().to_string(),
        namespace: resource.namespace().to_string(),
        ip,
        ports: resource.spec.ports.clone(),
        labels: resource.spec.labels.clone(),
        service_account,
    })
}

/// The port a workload receives a Service port's traffic on.
fn workload_port(workload: &Workload, port: &MeshServicePort) -> u16 {
    let mapped = |name: &str| {
        workload
            .ports
            .get(name)
            .and_then(|number| u16::try_from(*number).ok())
            .filter(|number| *number != 0)
    };
    if let Some(number) = port.name.as_deref().and_then(mapped) {
        return number;
    }
    match &port.target_port {
        TargetPort::Number(number) => *number,
        TargetPort::Named(name) => mapped(name).unwrap_or(port.port),
    }
}

#[cfg(test)]
mod tests;
