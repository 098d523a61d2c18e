//! `ServiceEntry` (networking.istio.io v1, v1beta1, v1alpha3): services the
//! mesh's registry does not discover by itself, such as external APIs. The
//! whole documented schema; unknown fields are warnings.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::WorkloadEntry;

#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ServiceEntry {
    pub hosts: Vec<String>,
    /// Virtual IPs or CIDR blocks of the service.
    pub addresses: Vec<String>,
    pub ports: Vec<ServiceEntryPort>,
    pub location: ServiceEntryLocation,
    pub resolution: ServiceEntryResolution,
    pub endpoints: Vec<WorkloadEntry>,
    pub workload_selector: Option<WorkloadLabels>,
    pub export_to: Vec<String>,
    pub subject_alt_names: Vec<String>,
}

/// A port of a ServiceEntry (Istio's `ServicePort`, renamed here so that it
/// does not clash with the Kubernetes Service port).
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ServiceEntryPort {
    pub number: u32,
    pub protocol: Option<String>,
    pub name: String,
    pub target_port: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ServiceEntryLocation {
    #[default]
    MeshExternal,
    MeshInternal,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ServiceEntryResolution {
    /// Connections go to the address the application dialled.
    #[default]
    None,
    Static,
    Dns,
    DnsRoundRobin,
}

/// Istio's networking `WorkloadSelector`, written `labels:` (used by
/// ServiceEntry and Sidecar; the security kinds' selector is `matchLabels:`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct WorkloadLabels {
    pub labels: BTreeMap<String, String>,
}
