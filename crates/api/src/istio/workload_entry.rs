//! `WorkloadEntry` (networking.istio.io v1, v1beta1, v1alpha3): a workload
//! that is not a Kubernetes pod (a VM, or a local process in `trellis up`).

use std::collections::BTreeMap;

use serde::Deserialize;

#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct WorkloadEntry {
    /// An IP address or a DNS name (the registry only uses IP addresses).
    pub address: String,
    /// Port per service port name: traffic for the Service port named `http`
    /// goes to `ports["http"]` when present.
    pub ports: BTreeMap<String, u32>,
    pub labels: BTreeMap<String, String>,
    pub network: Option<String>,
    pub locality: Option<String>,
    pub weight: Option<u32>,
    pub service_account: Option<String>,
}
