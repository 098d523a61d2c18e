//! Telemetry `accessLogging`: which access logs a side writes, and which
//! requests they keep (`filter.expression`, CEL, as Envoy's CEL access log
//! filter). Entries merge least to most specific, field by field. Where no
//! Telemetry entry applies, the mesh's `accessLogFile` logger stays.

use envoy_types::pb::envoy::config::accesslog::v3::{
    AccessLog, AccessLogFilter, ExtensionFilter, access_log_filter, extension_filter,
};
use envoy_types::pb::envoy::extensions::access_loggers::filters::cel::v3::ExpressionFilter;
use envoy_types::util::pack_any;
use trellis_api::Telemetry;

use super::levels::mode_applies;
use crate::access_log::{self, AccessLogEncoding};

/// Istio's built-in file provider: standard output, in the mesh's format.
pub const ENVOY_PROVIDER: &str = "envoy";

/// Envoy's name for the CEL access log filter.
pub const CEL_FILTER_NAME: &str = "envoy.access_loggers.extension_filters.cel";

/// A mesh config `envoyFileAccessLog` provider.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileLogProvider {
    pub name: String,
    pub path: String,
    /// A format string (TEXT) or a JSON object of fields (JSON); `None`:
    /// Istio's default for the encoding.
    pub format: Option<String>,
    pub encoding: AccessLogEncoding,
}

/// The mesh config's say on access logging.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MeshAccessLogging {
    /// `defaultProviders.accessLogging`.
    pub default_providers: Vec<String>,
    pub providers: Vec<FileLogProvider>,
}

#[derive(Debug, Default)]
struct Effective<'a> {
    applies: bool,
    providers: Option<Vec<&'a str>>,
    disabled: Option<bool>,
    filter: Option<&'a str>,
}

/// The access logs of one side, or `None` where no Telemetry entry
/// applies. `builtin` is the `envoy` provider as the mesh's
/// `accessLogFile`, format and encoding make it.
pub fn access_logs(
    applicable: &[&Telemetry],
    mesh: &MeshAccessLogging,
    builtin: &FileLogProvider,
    server: bool,
) -> Option<Vec<AccessLog>> {
    let mut effective = Effective::default();
    let entries = applicable.iter().flat_map(|t| &t.access_logging);
    for entry in entries.filter(|e| mode_applies(e.match_.as_ref().and_then(|m| m.mode), server)) {
        effective.applies = true;
        if !entry.providers.is_empty() {
            effective.providers = Some(entry.providers.iter().map(|p| p.name.as_str()).collect());
        }
        if let Some(disabled) = entry.disabled {
            effective.disabled = Some(disabled);
        }
        if let Some(filter) = &entry.filter {
            effective.filter = Some(filter.expression.as_str()).filter(|e| !e.is_empty());
        }
    }
    if !effective.applies {
        return None;
    }
    if effective.disabled == Some(true) {
        return Some(Vec::new());
    }
    let names = effective.providers.unwrap_or_else(|| {
        if mesh.default_providers.is_empty() {
            // As Istio: an `accessLogFile` makes the built-in the default.
            vec![ENVOY_PROVIDER]
        } else {
            mesh.default_providers.iter().map(String::as_str).collect()
        }
    });
    let logs = names
        .into_iter()
        .filter_map(|name| {
            mesh.providers
                .iter()
                .find(|p| p.name == name)
                .or_else(|| (name == ENVOY_PROVIDER).then_some(builtin))
        })
        .filter(|provider| !provider.path.is_empty())
        .flat_map(|provider| {
            access_log::access_logs(
                Some(&provider.path),
                provider.format.as_deref(),
                provider.encoding,
            )
        })
        .map(|mut log| {
            log.filter = effective.filter.map(cel_filter);
            log
        })
        .collect();
    Some(logs)
}

fn cel_filter(expression: &str) -> AccessLogFilter {
    let config = ExpressionFilter {
        expression: expression.into(),
        ..Default::default()
    };
    AccessLogFilter {
        filter_specifier: Some(access_log_filter::FilterSpecifier::ExtensionFilter(
            ExtensionFilter {
                name: CEL_FILTER_NAME.into(),
                config_type: Some(extension_filter::ConfigType::TypedConfig(pack_any(config))),
            },
        )),
    }
}
