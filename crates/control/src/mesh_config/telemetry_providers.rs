//! The mesh config's metrics and access log providers, which Telemetry
//! resources name: `prometheus` providers and `defaultProviders.metrics`,
//! `envoyFileAccessLog` providers and `defaultProviders.accessLogging`.
//! Access log services reached over gRPC (`envoyHttpAls`, `envoyTcpAls`,
//! `envoyOtelAls`) and Stackdriver are refused by name.

use trellis_api::MeshConfig;
use trellis_api::istio::StructValue;
use trellis_translate::{
    AccessLogEncoding, FileLogProvider, MeshAccessLogging, MeshMetrics, json_format_fields,
};

use super::tracers::Refusal;

pub fn mesh_metrics(mesh: &MeshConfig) -> MeshMetrics {
    let mut metrics = MeshMetrics::default();
    let declared = mesh
        .extension_providers
        .iter()
        .filter(|p| p.prometheus.is_some())
        .map(|p| p.name.clone());
    metrics.prometheus_providers.extend(declared);
    if let Some(defaults) = &mesh.default_providers
        && !defaults.metrics.is_empty()
    {
        metrics.default_providers = defaults.metrics.clone();
    }
    metrics
}

pub fn mesh_access_logging(mesh: &MeshConfig) -> Result<MeshAccessLogging, Refusal> {
    let mut providers = Vec::new();
    for provider in &mesh.extension_providers {
        let unsupported = [
            ("envoyHttpAls", provider.envoy_http_als.is_some()),
            ("envoyTcpAls", provider.envoy_tcp_als.is_some()),
            ("envoyOtelAls", provider.envoy_otel_als.is_some()),
            ("stackdriver", provider.stackdriver.is_some()),
        ];
        if let Some((kind, _)) = unsupported.iter().find(|(_, set)| *set) {
            return Err((
                "extensionProviders",
                format!(
                    "provider {}: {kind} is not supported (envoyFileAccessLog, prometheus and the tracers are)",
                    provider.name
                ),
            ));
        }
        let Some(file) = &provider.envoy_file_access_log else {
            continue;
        };
        let (format, encoding) = match &file.log_format {
            None => (None, AccessLogEncoding::Text),
            Some(format) => match (&format.text, &format.labels) {
                (Some(text), None) => (Some(text.clone()), AccessLogEncoding::Text),
                (None, Some(labels)) => {
                    let json = labels_format(labels).ok_or_else(|| {
                        (
                            "extensionProviders",
                            format!(
                                "provider {}: logFormat.labels must be a map of format strings",
                                provider.name
                            ),
                        )
                    })?;
                    (Some(json), AccessLogEncoding::Json)
                }
                (None, None) => (None, AccessLogEncoding::Text),
                (Some(_), Some(_)) => {
                    return Err((
                        "extensionProviders",
                        format!(
                            "provider {}: logFormat takes text or labels, not both",
                            provider.name
                        ),
                    ));
                }
            },
        };
        providers.push(FileLogProvider {
            name: provider.name.clone(),
            path: file.path.clone(),
            format,
            encoding,
        });
    }
    let default_providers = mesh
        .default_providers
        .as_ref()
        .map(|d| d.access_logging.clone())
        .unwrap_or_default();
    Ok(MeshAccessLogging {
        default_providers,
        providers,
    })
}

/// `logFormat.labels` as the JSON object of format strings the translator
/// takes (nested maps allowed).
fn labels_format(labels: &StructValue) -> Option<String> {
    let json = to_json(labels)?;
    let text = json.to_string();
    json_format_fields(&text).ok()?;
    Some(text)
}

fn to_json(value: &StructValue) -> Option<serde_json::Value> {
    Some(match value {
        StructValue::String(text) => serde_json::Value::String(text.clone()),
        StructValue::Bool(flag) => serde_json::Value::Bool(*flag),
        StructValue::Number(n) => serde_json::Number::from_f64(*n)?.into(),
        StructValue::Map(map) => serde_json::Value::Object(
            map.iter()
                .map(|(k, v)| Some((k.clone(), to_json(v)?)))
                .collect::<Option<serde_json::Map<_, _>>>()?,
        ),
        StructValue::Null | StructValue::List(_) => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mesh(yaml: &str) -> MeshConfig {
        let outcome = MeshConfig::parse(std::path::Path::new("mesh.yaml"), yaml).unwrap();
        assert!(outcome.warnings.is_empty(), "{:?}", outcome.warnings);
        outcome.config
    }

    #[test]
    fn file_providers_and_defaults() {
        let config = mesh(
            r#"
extensionProviders:
- name: errors-json
  envoyFileAccessLog:
    path: /tmp/errors.log
    logFormat:
      labels:
        code: "%RESPONSE_CODE%"
        peer: { principal: "%DOWNSTREAM_PEER_URI_SAN%" }
- name: plain
  envoyFileAccessLog:
    path: /dev/stdout
    logFormat: { text: "%RESPONSE_CODE%" }
- name: prom2
  prometheus: {}
defaultProviders:
  accessLogging: [plain]
"#,
        );
        let logging = mesh_access_logging(&config).unwrap();
        assert_eq!(logging.default_providers, ["plain"]);
        assert_eq!(logging.providers[0].encoding, AccessLogEncoding::Json);
        let format: serde_json::Value =
            serde_json::from_str(logging.providers[0].format.as_deref().unwrap()).unwrap();
        assert_eq!(format["peer"]["principal"], "%DOWNSTREAM_PEER_URI_SAN%");
        assert_eq!(
            logging.providers[1].format.as_deref(),
            Some("%RESPONSE_CODE%")
        );
        let metrics = mesh_metrics(&config);
        assert_eq!(metrics.prometheus_providers, ["prometheus", "prom2"]);
        assert_eq!(metrics.default_providers, ["prometheus"]);
    }

    #[test]
    fn grpc_log_services_are_refused_by_name() {
        let config = mesh(
            "extensionProviders:\n- name: otel\n  envoyOtelAls: { service: otel.example, port: 4317 }\n",
        );
        let (field, message) = mesh_access_logging(&config).unwrap_err();
        assert_eq!(field, "extensionProviders");
        assert!(message.contains("otel: envoyOtelAls"), "{message}");
    }
}
