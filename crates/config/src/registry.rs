//! The service registry: the mesh's Services and ServiceEntry hosts, what
//! protocol each port speaks, and the endpoints behind them (from
//! WorkloadEntries and ServiceEntry endpoints). Built once per snapshot;
//! queries never fail and never panic.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use trellis_api::{IntOrString, Resource, ServiceEntry, ServicePort, ServiceSpec, WorkloadEntry};

mod protocol;
mod service_entry;

pub use protocol::Protocol;
pub use service_entry::{EntryDetails, EntryEndpoint};

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
    /// The Service's virtual IP (`spec.clusterIP`); `None` when headless
    /// (`None`), unset or not an IP address.
    pub cluster_ip: Option<IpAddr>,
    /// Set when a ServiceEntry declared the service (its `name` and
    /// `hostname` are then the entry's host).
    pub entry: Option<Arc<EntryDetails>>,
    /// The namespaces that see it: a ServiceEntry's `exportTo`, a
    /// Service's `networking.istio.io/exportTo` annotation.
    pub export_to: Vec<String>,
}

impl MeshService {
    /// Whether a proxy in `namespace` sees this service (`exportTo`:
    /// empty or `*` everywhere, `.` its own namespace, `~` nowhere).
    pub fn visible_from(&self, namespace: &str) -> bool {
        trellis_api::exported_to(&self.export_to, &self.namespace, namespace)
    }

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
    /// `region/zone/subzone` (see [`workload_locality`]); empty when unknown.
    pub locality: String,
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
    locality: String,
}

/// Services and workloads of one snapshot.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Registry {
    /// Sorted by hostname.
    services: Vec<MeshService>,
    by_hostname: HashMap<String, usize>,
    /// Shared: a proxy's scoped view of the registry keeps every workload.
    workloads: Arc<Vec<Workload>>,
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
        let workloads = Arc::new(workload_entries.into_iter().filter_map(workload).collect());
        Registry {
            services,
            by_hostname,
            workloads,
        }
    }

    /// Adds the hosts ServiceEntries declare. A host a Service (or an
    /// earlier entry, in the order given) already has is left to it.
    pub fn with_service_entries<'a>(
        mut self,
        entries: impl IntoIterator<Item = &'a Resource<ServiceEntry>>,
    ) -> Registry {
        for entry in entries {
            for service in service_entry::services(entry) {
                if !self.by_hostname.contains_key(&service.hostname) {
                    self.by_hostname
                        .insert(service.hostname.clone(), self.services.len());
                    self.services.push(service);
                }
            }
        }
        self.services.sort_by(|a, b| a.hostname.cmp(&b.hostname));
        self.index_hostnames();
        self
    }

    /// Keeps only the services `keep` accepts (one proxy's view of the
    /// mesh); endpoints stay, for the services that remain.
    pub fn retain_services(&mut self, keep: impl FnMut(&MeshService) -> bool) {
        self.services.retain(keep);
        self.index_hostnames();
    }

    fn index_hostnames(&mut self) {
        self.by_hostname = self
            .services
            .iter()
            .enumerate()
            .map(|(index, service)| (service.hostname.clone(), index))
            .collect();
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
        // A ServiceEntry host is written in full; short names are
        // Kubernetes' (`reviews.default` is not an external host).
        if let Some(index) = self.by_hostname.get(&host)
            && self.services[*index].entry.is_some()
        {
            return Some(&self.services[*index]);
        }
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
        if let Some(entry) = service.entry.as_ref().filter(|e| !e.endpoints.is_empty()) {
            return entry_endpoints(service, entry, port);
        }
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
                locality: workload.locality.clone(),
            })
            .collect();
        endpoints.sort_by(|a, b| (a.address, &a.workload_name).cmp(&(b.address, &b.workload_name)));
        endpoints
    }

    /// The locality of the workload at `ip` (istiod's fallback for a proxy
    /// that does not report its own), if the registry knows one.
    pub fn locality_of(&self, ip: IpAddr) -> Option<&str> {
        self.workloads
            .iter()
            .find(|workload| workload.ip == ip && !workload.locality.is_empty())
            .map(|workload| workload.locality.as_str())
    }
}

/// A ServiceEntry's own endpoints that have IP addresses (DNS names are
/// resolved by the proxy; see the translator's DNS clusters).
fn entry_endpoints(
    service: &MeshService,
    entry: &EntryDetails,
    port: &MeshServicePort,
) -> Vec<MeshEndpoint> {
    let mut endpoints: Vec<MeshEndpoint> = entry
        .endpoints
        .iter()
        .filter_map(|endpoint| {
            Some(MeshEndpoint {
                address: SocketAddr::new(endpoint.ip()?, endpoint.port_for(port)),
                labels: endpoint.labels.clone(),
                service_account: endpoint.service_account.clone(),
                workload_name: entry.entry_name.clone(),
                namespace: service.namespace.clone(),
                locality: endpoint.locality.clone(),
            })
        })
        .collect();
    endpoints.sort();
    endpoints.dedup();
    endpoints
}

fn mesh_service(resource: &Resource<ServiceSpec>) -> MeshService {
    let namespace = resource.namespace().to_string();
    MeshService {
        hostname: service_hostname(resource.name(), &namespace),
        name: resource.name().to_string(),
        namespace,
        ports: resource.spec.ports.iter().map(mesh_service_port).collect(),
        selector: resource.spec.selector.clone(),
        cluster_ip: resource
            .spec
            .cluster_ip
            .as_deref()
            .and_then(|ip| ip.parse().ok()),
        entry: None,
        export_to: trellis_api::annotation_export_to(&resource.meta.annotations)
            .into_iter()
            .map(str::to_string)
            .collect(),
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
        locality: workload_locality(&resource.spec),
    })
}

/// Istio's locality labels, read where a pod's would be (a WorkloadEntry's
/// labels) when the entry has no `locality` of its own.
pub const REGION_LABEL: &str = "topology.kubernetes.io/region";
pub const ZONE_LABEL: &str = "topology.kubernetes.io/zone";
pub const SUBZONE_LABEL: &str = "topology.istio.io/subzone";

/// `spec.locality` (`region/zone/subzone`), else the topology labels;
/// trailing empty segments are dropped.
pub fn workload_locality(entry: &WorkloadEntry) -> String {
    if let Some(locality) = entry.locality.as_deref().filter(|l| !l.is_empty()) {
        return locality.to_string();
    }
    let label = |key: &str| entry.labels.get(key).map_or("", String::as_str);
    let parts = [label(REGION_LABEL), label(ZONE_LABEL), label(SUBZONE_LABEL)];
    parts.join("/").trim_end_matches('/').to_string()
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
