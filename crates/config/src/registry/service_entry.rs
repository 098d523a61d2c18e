//! ServiceEntries in the registry, as istiod's ServiceEntry controller adds
//! them: one [`MeshService`] per host, named by the host itself
//! (`api.example.com`, not `NAME.NAMESPACE.svc...`), with the entry's ports,
//! location, resolution and endpoints. Endpoints come from the entry's
//! `endpoints` or, with a `workloadSelector`, from the WorkloadEntries of
//! its namespace whose labels match (the selector then works as a
//! Kubernetes Service's does).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use trellis_api::{
    Resource, ServiceEntry, ServiceEntryLocation, ServiceEntryPort, ServiceEntryResolution,
};

use super::{
    DEFAULT_SERVICE_ACCOUNT, MeshService, MeshServicePort, Protocol, TargetPort, workload_locality,
};

/// What a Service has when a ServiceEntry declared it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryDetails {
    pub location: ServiceEntryLocation,
    pub resolution: ServiceEntryResolution,
    /// The entry's `endpoints` (empty with a `workloadSelector`, or when the
    /// host itself is resolved).
    pub endpoints: Vec<EntryEndpoint>,
    /// The entry's `metadata.name`, for messages.
    pub entry_name: String,
    /// `subjectAltNames`: the identities a MESH_INTERNAL entry's servers
    /// present (else those of its endpoints' service accounts).
    pub subject_alt_names: Vec<String>,
}

/// One of a ServiceEntry's `endpoints`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryEndpoint {
    /// An IP address, or a DNS name with DNS resolution.
    pub address: String,
    pub ports: BTreeMap<String, u32>,
    pub labels: BTreeMap<String, String>,
    pub service_account: String,
    pub locality: String,
    pub weight: u32,
}

impl EntryEndpoint {
    pub fn ip(&self) -> Option<IpAddr> {
        self.address.parse().ok()
    }

    /// The port this endpoint receives a service port's traffic on: its
    /// own mapping for the port's name, else the port's target port.
    pub fn port_for(&self, port: &MeshServicePort) -> u16 {
        let mapped = port
            .name
            .as_deref()
            .and_then(|name| self.ports.get(name))
            .and_then(|number| u16::try_from(*number).ok())
            .filter(|number| *number != 0);
        match (mapped, &port.target_port) {
            (Some(number), _) => number,
            (None, TargetPort::Number(number)) => *number,
            (None, TargetPort::Named(_)) => port.port,
        }
    }
}

/// The Services one ServiceEntry declares: one per host. Wildcard hosts
/// are left out: they name no single destination a cluster could reach.
pub(super) fn services(resource: &Resource<ServiceEntry>) -> Vec<MeshService> {
    let entry = &resource.spec;
    let details = Arc::new(EntryDetails {
        location: entry.location,
        resolution: entry.resolution,
        endpoints: entry.endpoints.iter().map(entry_endpoint).collect(),
        entry_name: resource.name().to_string(),
        subject_alt_names: entry.subject_alt_names.clone(),
    });
    let ports: Vec<MeshServicePort> = entry.ports.iter().filter_map(entry_port).collect();
    let selector = entry
        .workload_selector
        .as_ref()
        .map(|selector| selector.labels.clone())
        .unwrap_or_default();
    // Single addresses only: a CIDR block is matched by capture, not dialled.
    let cluster_ip = entry
        .addresses
        .iter()
        .find_map(|address| address.parse::<IpAddr>().ok());
    entry
        .hosts
        .iter()
        .filter(|host| !host.contains('*'))
        .map(|host| MeshService {
            name: host.to_ascii_lowercase(),
            namespace: resource.namespace().to_string(),
            hostname: host.to_ascii_lowercase(),
            ports: ports.clone(),
            selector: selector.clone(),
            cluster_ip,
            entry: Some(details.clone()),
            export_to: entry.export_to.clone(),
        })
        .collect()
}

fn entry_port(port: &ServiceEntryPort) -> Option<MeshServicePort> {
    let number = u16::try_from(port.number).ok().filter(|n| *n != 0)?;
    let target = port
        .target_port
        .and_then(|target| u16::try_from(target).ok())
        .filter(|target| *target != 0)
        .unwrap_or(number);
    let protocol = match port.protocol.as_deref() {
        Some(protocol) => Protocol::from_istio_protocol(protocol),
        None => Protocol::detect(Some(&port.name), None, None),
    };
    Some(MeshServicePort {
        name: Some(port.name.clone()).filter(|name| !name.is_empty()),
        port: number,
        target_port: TargetPort::Number(target),
        protocol,
    })
}

fn entry_endpoint(endpoint: &trellis_api::WorkloadEntry) -> EntryEndpoint {
    EntryEndpoint {
        address: endpoint.address.to_ascii_lowercase(),
        ports: endpoint.ports.clone(),
        labels: endpoint.labels.clone(),
        service_account: endpoint
            .service_account
            .clone()
            .filter(|account| !account.is_empty())
            .unwrap_or_else(|| DEFAULT_SERVICE_ACCOUNT.to_string()),
        locality: workload_locality(endpoint),
        weight: endpoint.weight.filter(|w| *w > 0).unwrap_or(1),
    }
}

#[cfg(test)]
mod tests;
