//! `ProxyConfig` (networking.istio.io v1beta1): per-workload, per-namespace
//! or mesh-wide proxy settings applied when a proxy starts.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::WorkloadSelector;

#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ProxyConfig {
    /// None applies to every workload of the namespace (or of the mesh, in
    /// the root namespace).
    pub selector: Option<WorkloadSelector>,
    /// Worker threads; 0 means one per core.
    pub concurrency: Option<i32>,
    pub environment_variables: BTreeMap<String, String>,
    pub image: Option<ProxyImage>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ProxyImage {
    /// `default`, `debug` or `distroless`.
    pub image_type: String,
}

/// The API versions under which Istio serves ProxyConfig.
pub const PROXY_CONFIG_API_VERSIONS: [&str; 1] = ["networking.istio.io/v1beta1"];
