//! The mesh config (`--mesh-config FILE`, else the `istio` ConfigMap of the
//! root namespace in the config dir, as istiod reads it) mapped onto the
//! control plane's settings. Explicit flags win over it; a setting Trellis
//! cannot honour is refused by name rather than ignored.

use std::path::Path;
use std::sync::Arc;

use trellis_api::istio::OutboundTrafficMode as MeshOutboundMode;
use trellis_api::kube::ConfigMapBody;
use trellis_api::mesh_config::ProxyDefaults;
use trellis_api::mesh_config::{AccessLogEncoding, DEFAULT_ROOT_NAMESPACE, MESH_CONFIG_KEY};
use trellis_api::{AnyResource, MeshConfig, MeshConfigError, MeshConfigOutcome, Resource};
use trellis_config::{Snapshot, SnapshotReceiver};
use trellis_translate::{
    AccessLogEncoding as Encoding, JsonFormatError, MeshOptions, OutboundTrafficPolicy,
    json_format_fields,
};

use crate::{ControlPlaneOptions, OutboundTrafficMode};

mod authorizers;
mod telemetry_providers;
mod tracers;

/// The ConfigMap istiod reads its mesh config from.
const MESH_CONFIG_MAP: &str = "istio";

/// The settings the control plane runs with, once flags and mesh config
/// are combined.
#[derive(Debug, Clone, PartialEq)]
pub struct MeshSettings {
    pub trust_domain: String,
    pub mesh: MeshOptions,
}

/// A mesh config and where it came from (for messages).
#[derive(Debug, Clone, PartialEq)]
pub struct LoadedMeshConfig {
    pub source: String,
    pub config: MeshConfig,
}

#[derive(Debug, thiserror::Error)]
pub enum MeshSettingsError {
    #[error(transparent)]
    Invalid(#[from] MeshConfigError),
    #[error("mesh config {source_name}: {field}: {message}")]
    Unsupported {
        source_name: String,
        field: &'static str,
        message: String,
    },
    #[error("{source_name}: a JSON access log format must be a JSON object of fields: {error}")]
    JsonAccessLogFormat {
        source_name: String,
        error: JsonFormatError,
    },
}

/// `--access-log-encoding`: TEXT or JSON, in any case.
pub fn parse_access_log_encoding(text: &str) -> Result<Encoding, String> {
    match text.to_ascii_uppercase().as_str() {
        "TEXT" => Ok(Encoding::Text),
        "JSON" => Ok(Encoding::Json),
        _ => Err(format!("{text:?} is neither TEXT nor JSON")),
    }
}

impl LoadedMeshConfig {
    pub fn from_file(path: &Path) -> Result<Self, MeshSettingsError> {
        let outcome = MeshConfig::from_file(path)?;
        Ok(Self::with_warnings(path.display().to_string(), outcome))
    }

    pub fn from_config_map(map: &Resource<ConfigMapBody>) -> Result<Self, MeshSettingsError> {
        let outcome = MeshConfig::from_config_map(map)?;
        let source = format!("{}[data.{MESH_CONFIG_KEY}]", map.source.file.display());
        Ok(Self::with_warnings(source, outcome))
    }

    fn with_warnings(source: String, outcome: MeshConfigOutcome) -> Self {
        for warning in &outcome.warnings {
            tracing::warn!(%warning, "mesh config");
        }
        Self {
            source,
            config: outcome.config,
        }
    }
}

/// The `istio` ConfigMap of the root namespace, with a `mesh` key.
pub fn mesh_config_map(snapshot: &Snapshot) -> Option<&Resource<ConfigMapBody>> {
    snapshot
        .resources
        .iter()
        .find_map(|resource| match &**resource {
            AnyResource::ConfigMap(map)
                if map.name() == MESH_CONFIG_MAP
                    && map.namespace() == DEFAULT_ROOT_NAMESPACE
                    && map.spec.data.contains_key(MESH_CONFIG_KEY) =>
            {
                Some(map)
            }
            _ => None,
        })
}

/// The mesh config the control plane starts with: the `--mesh-config` file,
/// else (directory mode) the `istio` ConfigMap of the first snapshot.
pub async fn load(
    options: &ControlPlaneOptions,
    snapshots: &SnapshotReceiver,
) -> Result<Option<LoadedMeshConfig>, MeshSettingsError> {
    if let Some(path) = &options.mesh_config {
        return LoadedMeshConfig::from_file(path).map(Some);
    }
    if options.kubernetes.kube {
        return Ok(None);
    }
    let first = first_snapshot(snapshots).await;
    let loaded = first.as_deref().and_then(mesh_config_map);
    let loaded = loaded.map(LoadedMeshConfig::from_config_map).transpose()?;
    warn_when_config_map_changes(snapshots.clone(), first);
    Ok(loaded)
}

async fn first_snapshot(snapshots: &SnapshotReceiver) -> Option<Arc<Snapshot>> {
    let mut receiver = snapshots.clone();
    let first = receiver.wait_for(Option::is_some).await.ok()?;
    first.clone()
}

/// The mesh config is read once, at startup (as istiod's settings that
/// shape the CA and listeners): an edit only takes effect on restart, so
/// say so rather than ignore it silently.
fn warn_when_config_map_changes(mut snapshots: SnapshotReceiver, first: Option<Arc<Snapshot>>) {
    let mesh_text = |snapshot: &Snapshot| {
        mesh_config_map(snapshot).and_then(|map| map.spec.data.get(MESH_CONFIG_KEY).cloned())
    };
    let mut current = first.as_deref().and_then(mesh_text);
    tokio::spawn(async move {
        while snapshots.changed().await.is_ok() {
            let latest = snapshots.borrow_and_update().as_deref().and_then(mesh_text);
            if latest != current {
                tracing::warn!(
                    "the {MESH_CONFIG_MAP} ConfigMap changed; the control plane keeps the mesh config it started with until restarted"
                );
                current = latest;
            }
        }
    });
}

/// Flags first, then the mesh config, then Istio's defaults.
pub fn resolve(
    options: &ControlPlaneOptions,
    loaded: Option<&LoadedMeshConfig>,
) -> Result<MeshSettings, MeshSettingsError> {
    let default = MeshConfig::default();
    let mesh = loaded.map_or(&default, |loaded| &loaded.config);
    if let Some(loaded) = loaded {
        refuse_unsupported(loaded)?;
        warn_not_acted_on(loaded);
    }
    let text_or_mesh = |flag: &Option<String>, from_mesh: &str| {
        Some(flag.as_deref().unwrap_or(from_mesh).to_owned()).filter(|text| !text.is_empty())
    };
    let outbound = options
        .outbound_traffic_policy
        .unwrap_or(match mesh.outbound_traffic_mode() {
            MeshOutboundMode::AllowAny => OutboundTrafficMode::AllowAny,
            MeshOutboundMode::RegistryOnly => OutboundTrafficMode::RegistryOnly,
        });
    let access_log_encoding =
        options
            .access_log_encoding
            .unwrap_or(match mesh.access_log_encoding {
                Some(AccessLogEncoding::Json) => Encoding::Json,
                Some(AccessLogEncoding::Text) | None => Encoding::Text,
            });
    let access_log_format = text_or_mesh(&options.access_log_format, &mesh.access_log_format);
    if access_log_encoding == Encoding::Json {
        check_json_format(options, loaded, access_log_format.as_deref())?;
    }
    let tracing =
        tracers::mesh_tracing(mesh).map_err(|(field, message)| MeshSettingsError::Unsupported {
            source_name: loaded
                .map_or_else(|| "the default mesh config".into(), |l| l.source.clone()),
            field,
            message,
        })?;
    let authz_providers = authorizers::authz_providers(mesh).map_err(|(field, message)| {
        MeshSettingsError::Unsupported {
            source_name: loaded
                .map_or_else(|| "the default mesh config".into(), |l| l.source.clone()),
            field,
            message,
        }
    })?;
    let access_logging =
        telemetry_providers::mesh_access_logging(mesh).map_err(|(field, message)| {
            MeshSettingsError::Unsupported {
                source_name: loaded
                    .map_or_else(|| "the default mesh config".into(), |l| l.source.clone()),
                field,
                message,
            }
        })?;
    Ok(MeshSettings {
        trust_domain: options
            .trust_domain
            .clone()
            .unwrap_or_else(|| mesh.trust_domain().to_owned()),
        mesh: MeshOptions {
            access_log_file: text_or_mesh(&options.access_log_file, &mesh.access_log_file),
            access_log_format,
            access_log_encoding,
            outbound_traffic_policy: match outbound {
                OutboundTrafficMode::AllowAny => OutboundTrafficPolicy::AllowAny,
                OutboundTrafficMode::RegistryOnly => OutboundTrafficPolicy::RegistryOnly,
            },
            tracing,
            path_normalization: mesh.path_normalization(),
            authz_providers,
            metrics: telemetry_providers::mesh_metrics(mesh),
            access_logging,
        },
    })
}

/// Istio falls back to its default fields when a JSON format does not
/// parse; refusing it says what is wrong instead.
fn check_json_format(
    options: &ControlPlaneOptions,
    loaded: Option<&LoadedMeshConfig>,
    format: Option<&str>,
) -> Result<(), MeshSettingsError> {
    let Some(format) = format else {
        return Ok(());
    };
    json_format_fields(format).map(drop).map_err(|error| {
        let source_name = match (&options.access_log_format, loaded) {
            (Some(_), _) | (None, None) => "--access-log-format".to_owned(),
            (None, Some(loaded)) => format!("{} accessLogFormat", loaded.source),
        };
        MeshSettingsError::JsonAccessLogFormat { source_name, error }
    })
}

/// Settings whose non-default values change behaviour Trellis does not
/// implement: better to refuse to start than to run a different mesh.
fn refuse_unsupported(loaded: &LoadedMeshConfig) -> Result<(), MeshSettingsError> {
    let config = &loaded.config;
    let refuse = |field, message: &str| {
        Err(MeshSettingsError::Unsupported {
            source_name: loaded.source.clone(),
            field,
            message: message.to_owned(),
        })
    };
    if config.root_namespace() != DEFAULT_ROOT_NAMESPACE {
        let message =
            format!("only the default root namespace {DEFAULT_ROOT_NAMESPACE} is supported");
        return refuse("rootNamespace", &message);
    }
    if !config.auto_mtls() {
        return refuse(
            "enableAutoMtls",
            "turning auto mTLS off is not supported (sidecars always use mTLS to mesh workloads that accept it)",
        );
    }
    let egress_proxy = config.outbound_traffic_policy.as_ref();
    if egress_proxy.is_some_and(|policy| policy.egress_proxy.is_some()) {
        return refuse(
            "outboundTrafficPolicy.egressProxy",
            "an egress proxy is not supported",
        );
    }
    Ok(())
}

/// Valid settings that the control plane has no use for: said once, at
/// startup, so nobody expects them to act.
fn warn_not_acted_on(loaded: &LoadedMeshConfig) {
    let config = &loaded.config;
    let set = [
        (
            "trustDomainAliases",
            !config.trust_domain_aliases.is_empty(),
        ),
        (
            "defaultConfig (but tracing.sampling)",
            ProxyDefaults {
                tracing: None,
                ..config.default_config.clone()
            } != Default::default(),
        ),
        (
            "extensionProviders (but zipkin, opentelemetry, envoyExtAuthzHttp, envoyExtAuthzGrpc, prometheus, envoyFileAccessLog)",
            config.extension_providers.iter().any(|p| {
                p.zipkin.is_none()
                    && p.opentelemetry.is_none()
                    && p.envoy_ext_authz_http.is_none()
                    && p.envoy_ext_authz_grpc.is_none()
                    && p.prometheus.is_none()
                    && p.envoy_file_access_log.is_none()
            }),
        ),
        ("ingressClass", config.ingress_class.is_some()),
        ("ingressService", config.ingress_service.is_some()),
        (
            "ingressControllerMode",
            config.ingress_controller_mode.is_some(),
        ),
        (
            "protocolDetectionTimeout",
            config.protocol_detection_timeout.is_some(),
        ),
        ("connectTimeout", config.connect_timeout.is_some()),
        (
            "enablePrometheusMerge",
            config.enable_prometheus_merge.is_some(),
        ),
    ];
    let ignored: Vec<&str> = set
        .iter()
        .filter(|(_, is_set)| *is_set)
        .map(|(name, _)| *name)
        .collect();
    if !ignored.is_empty() {
        tracing::warn!(
            source = %loaded.source,
            fields = %ignored.join(", "),
            "mesh config fields the control plane does not act on"
        );
    }
}

#[cfg(test)]
#[path = "mesh_config_tests.rs"]
mod tests;
