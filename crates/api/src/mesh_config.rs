//! Istio's mesh-wide settings (`MeshConfig`): read from a mesh config file or
//! from the `mesh` key of the `istio` ConfigMap, and validated as istiod
//! validates them. Only the settings a mesh like Trellis acts on are typed;
//! any other field is reported as unknown (a warning), never dropped
//! silently.

mod providers;
mod read;

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::istio::{OutboundTrafficMode, OutboundTrafficPolicy};

pub use providers::*;
pub use read::{MESH_CONFIG_KEY, MeshConfigError, MeshConfigOutcome};

/// Istio's defaults, used where a mesh config says nothing.
pub const DEFAULT_TRUST_DOMAIN: &str = "cluster.local";
pub const DEFAULT_ROOT_NAMESPACE: &str = "istio-system";

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct MeshConfig {
    pub trust_domain: Option<String>,
    /// Other trust domains whose identities count as this mesh's.
    pub trust_domain_aliases: Vec<String>,
    /// Where mesh-wide policies (PeerAuthentication, Sidecar...) live.
    pub root_namespace: Option<String>,
    pub outbound_traffic_policy: Option<OutboundTrafficPolicy>,
    /// Whether clients use mTLS by themselves when the server accepts it.
    pub enable_auto_mtls: Option<bool>,
    pub default_config: ProxyDefaults,
    /// Where proxies write access logs; empty disables them, `/dev/stdout`
    /// is the usual value.
    pub access_log_file: String,
    pub access_log_encoding: Option<AccessLogEncoding>,
    /// Envoy's format string; empty means Istio's default format.
    pub access_log_format: String,
    pub extension_providers: Vec<MeshExtensionProvider>,
    pub default_providers: Option<DefaultProviders>,
    pub enable_tracing: Option<bool>,
    pub ingress_class: Option<String>,
    pub ingress_service: Option<String>,
    pub ingress_controller_mode: Option<String>,
    pub protocol_detection_timeout: Option<String>,
    pub connect_timeout: Option<String>,
    pub enable_prometheus_merge: Option<bool>,
    /// How proxies rewrite request paths before authorization and routing.
    pub path_normalization: Option<PathNormalization>,
}

impl MeshConfig {
    pub fn trust_domain(&self) -> &str {
        non_empty(self.trust_domain.as_deref()).unwrap_or(DEFAULT_TRUST_DOMAIN)
    }

    pub fn root_namespace(&self) -> &str {
        non_empty(self.root_namespace.as_deref()).unwrap_or(DEFAULT_ROOT_NAMESPACE)
    }

    /// `ALLOW_ANY` unless the mesh config says otherwise, as in Istio.
    pub fn outbound_traffic_mode(&self) -> OutboundTrafficMode {
        self.outbound_traffic_policy
            .as_ref()
            .map_or(OutboundTrafficMode::AllowAny, |policy| policy.mode)
    }

    /// Auto mTLS is on unless turned off, as in Istio.
    pub fn auto_mtls(&self) -> bool {
        self.enable_auto_mtls.unwrap_or(true)
    }

    /// BASE unless the mesh config says otherwise, as in Istio.
    pub fn path_normalization(&self) -> PathNormalizationMode {
        match self.path_normalization.map(|p| p.normalization) {
            None | Some(PathNormalizationMode::Default) => PathNormalizationMode::Base,
            Some(mode) => mode,
        }
    }

    /// The extension provider named `name`, as Telemetry and
    /// AuthorizationPolicy (`CUSTOM`) refer to them.
    pub fn extension_provider(&self, name: &str) -> Option<&MeshExtensionProvider> {
        self.extension_providers.iter().find(|p| p.name == name)
    }
}

fn non_empty(value: Option<&str>) -> Option<&str> {
    value.filter(|value| !value.is_empty())
}

/// `defaultConfig`: the proxy settings every workload starts with, which a
/// ProxyConfig or the `proxy.istio.io/config` annotation may override.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ProxyDefaults {
    /// Worker threads; 0 means one per core.
    pub concurrency: Option<i32>,
    /// Environment given to every proxy (`ISTIO_META_*` become metadata).
    pub proxy_metadata: BTreeMap<String, String>,
    /// Start the application only once the proxy is ready.
    pub hold_application_until_proxy_starts: Option<bool>,
    /// `host:port` of the control plane.
    pub discovery_address: Option<String>,
    pub drain_duration: Option<String>,
    pub termination_drain_duration: Option<String>,
    pub proxy_admin_port: Option<u32>,
    pub status_port: Option<u32>,
    pub stat_name_length: Option<i32>,
    pub tracing: Option<crate::istio::StructValue>,
    pub proxy_stats_matcher: Option<crate::istio::StructValue>,
    pub image: Option<crate::istio::ProxyImage>,
    pub config_path: Option<String>,
    pub binary_path: Option<String>,
    pub service_cluster: Option<String>,
    pub control_plane_auth_policy: Option<String>,
}

/// `pathNormalization`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(default)]
pub struct PathNormalization {
    pub normalization: PathNormalizationMode,
}

/// Istio's path normalization modes, each doing what the one before does
/// and more.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PathNormalizationMode {
    /// BASE.
    #[default]
    Default,
    /// Paths are used as received.
    None,
    /// RFC 3986: unreserved characters decoded, dot segments resolved,
    /// backslashes read as slashes.
    Base,
    /// BASE, then runs of slashes merged.
    MergeSlashes,
    /// `%2F`, `%5C` (any case) decoded first, then MERGE_SLASHES.
    DecodeAndMergeSlashes,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AccessLogEncoding {
    Text,
    Json,
}

/// The providers used when a Telemetry resource names none.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct DefaultProviders {
    pub tracing: Vec<String>,
    pub metrics: Vec<String>,
    pub access_logging: Vec<String>,
}

#[cfg(test)]
mod tests;
