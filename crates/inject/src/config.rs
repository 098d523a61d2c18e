//! What the injector needs to know about the mesh: the revision it serves,
//! the proxy image, where proxies find the control plane, and the mesh
//! config defaults (Istio's `MeshConfig.defaultConfig`).

use std::path::Path;

use serde::Deserialize;

use crate::error::InjectError;

/// The revision installed without `--revision`; it also owns the
/// `istio-injection=enabled` namespace label, as in Istio.
pub const DEFAULT_REVISION: &str = "default";
/// The control plane's namespace, as Istio's `istio-system`.
pub const CONTROL_PLANE_NAMESPACE: &str = "istio-system";
/// Port of the control plane's xDS and CA over TLS.
pub const DISCOVERY_PORT: u16 = 15012;
/// The proxy image when neither `--image-proxy` nor the pod annotation
/// names one: the Trellis release this binary belongs to.
pub const DEFAULT_PROXY_IMAGE: &str =
    concat!("ghcr.io/trellis-mesh/trellis:", env!("CARGO_PKG_VERSION"));

/// A control-plane revision (`istio.io/rev`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revision(String);

impl Revision {
    pub fn new(name: impl Into<String>) -> Self {
        Self(name.into())
    }

    pub fn name(&self) -> &str {
        &self.0
    }

    /// The default revision also answers `istio-injection=enabled` and the
    /// bare pod label `sidecar.istio.io/inject=true`.
    pub fn is_default(&self) -> bool {
        self.0 == DEFAULT_REVISION
    }

    /// Istio names a revision's control plane Service `istiod-REV`.
    pub fn control_plane_service(&self) -> String {
        if self.is_default() {
            "istiod".to_owned()
        } else {
            format!("istiod-{}", self.0)
        }
    }

    /// Where this revision's proxies reach the control plane by default.
    pub fn default_discovery_address(&self) -> String {
        format!(
            "{}.{CONTROL_PLANE_NAMESPACE}.svc:{DISCOVERY_PORT}",
            self.control_plane_service()
        )
    }
}

impl Default for Revision {
    fn default() -> Self {
        Self::new(DEFAULT_REVISION)
    }
}

/// Everything injection depends on besides the pod itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InjectConfig {
    pub revision: Revision,
    pub proxy_image: String,
    pub discovery_address: String,
    pub trust_domain: String,
    /// Start the proxy before the app containers (Istio's
    /// `holdApplicationUntilProxyStarts`, which Trellis defaults to true).
    pub hold_application_until_proxy_starts: bool,
}

impl InjectConfig {
    /// Defaults for `revision`, before any mesh config or flag.
    pub fn for_revision(revision: Revision) -> Self {
        Self {
            discovery_address: revision.default_discovery_address(),
            revision,
            proxy_image: DEFAULT_PROXY_IMAGE.to_owned(),
            trust_domain: "cluster.local".to_owned(),
            hold_application_until_proxy_starts: true,
        }
    }

    /// Applies the fields of a mesh config that injection uses.
    pub fn apply_mesh_config(&mut self, mesh: &MeshConfig) {
        if let Some(trust_domain) = &mesh.trust_domain {
            self.trust_domain.clone_from(trust_domain);
        }
        let Some(proxy) = &mesh.default_config else {
            return;
        };
        if let Some(address) = &proxy.discovery_address {
            self.discovery_address.clone_from(address);
        }
        if let Some(hold) = proxy.hold_application_until_proxy_starts {
            self.hold_application_until_proxy_starts = hold;
        }
    }
}

/// The part of Istio's MeshConfig that injection reads; other fields are
/// accepted and ignored so a real mesh config file loads unchanged.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MeshConfig {
    pub trust_domain: Option<String>,
    pub default_config: Option<ProxyConfig>,
}

/// The part of Istio's ProxyConfig that injection reads, from the mesh
/// config's `defaultConfig` or a pod's `proxy.istio.io/config` annotation.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProxyConfig {
    pub discovery_address: Option<String>,
    pub hold_application_until_proxy_starts: Option<bool>,
}

impl MeshConfig {
    pub fn load(path: &Path) -> Result<Self, InjectError> {
        let text = std::fs::read_to_string(path).map_err(|source| InjectError::Read {
            path: path.to_owned(),
            source,
        })?;
        // An empty file is an empty mesh config, as in Istio.
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        serde_saphyr::from_str(&text).map_err(|source| InjectError::MeshConfig {
            path: path.to_owned(),
            source: Box::new(source),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revisions_name_their_control_plane() {
        assert_eq!(
            Revision::default().default_discovery_address(),
            "istiod.istio-system.svc:15012"
        );
        assert_eq!(
            Revision::new("canary").default_discovery_address(),
            "istiod-canary.istio-system.svc:15012"
        );
    }

    #[test]
    fn mesh_config_overrides_defaults_and_ignores_other_fields() {
        let mesh: MeshConfig = serde_saphyr::from_str(
            "accessLogFile: /dev/stdout\ntrustDomain: example.org\ndefaultConfig:\n  \
             discoveryAddress: cp.mesh:15012\n  holdApplicationUntilProxyStarts: false\n",
        )
        .unwrap();
        let mut config = InjectConfig::for_revision(Revision::default());
        config.apply_mesh_config(&mesh);
        assert_eq!(config.trust_domain, "example.org");
        assert_eq!(config.discovery_address, "cp.mesh:15012");
        assert!(!config.hold_application_until_proxy_starts);
    }
}
