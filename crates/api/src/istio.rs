//! Istio networking and security resources, with serde names exactly as
//! Istio's YAML.

mod destination_rule;
mod duration;
mod envoy_filter;
mod gateway;
mod proxy_config;
mod security;
mod service_entry;
mod sidecar;
mod string_match;
mod telemetry;
mod virtual_service;
mod workload_entry;
mod workload_group;

use serde::Deserialize;

pub use destination_rule::*;
pub use duration::{InvalidDuration, parse_duration};
pub use envoy_filter::*;
pub use gateway::*;
pub use proxy_config::*;
pub use security::*;
pub use service_entry::*;
pub use sidecar::*;
pub use string_match::StringMatch;
pub use telemetry::*;
pub use virtual_service::*;
pub use workload_entry::WorkloadEntry;
pub use workload_group::*;

/// The API versions under which Istio serves the same networking schemas.
pub const NETWORKING_API_VERSIONS: [&str; 3] = [
    "networking.istio.io/v1",
    "networking.istio.io/v1beta1",
    "networking.istio.io/v1alpha3",
];

/// The API versions under which Istio serves EnvoyFilter.
pub const ENVOY_FILTER_API_VERSIONS: [&str; 1] = ["networking.istio.io/v1alpha3"];

/// Where traffic goes: a host (a service's short or full name), optionally
/// one subset of it (defined by a DestinationRule) and one port.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Destination {
    pub host: String,
    pub subset: Option<String>,
    pub port: Option<PortSelector>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct PortSelector {
    pub number: u32,
}

/// A percentage in 0.0..=100.0.
#[derive(Debug, Clone, Copy, PartialEq, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Percent {
    pub value: f64,
}
