//! The mesh config's tracing: `extensionProviders` zipkin / opentelemetry,
//! `defaultProviders.tracing`, `defaultConfig.tracing.sampling` and
//! `enableTracing`, as the translator's [`MeshTracing`]. Other tracers
//! (datadog, skywalking, ...) and OTLP headers are refused by name.

use trellis_api::MeshConfig;
use trellis_api::istio::StructValue;
use trellis_translate::{DEFAULT_SAMPLING_PERCENT, MeshTracing, TracerKind, TracingProvider};

/// A tracing setting Trellis cannot honour: the field and why.
pub type Refusal = (&'static str, String);

pub fn mesh_tracing(mesh: &MeshConfig) -> Result<MeshTracing, Refusal> {
    let mut providers = Vec::new();
    for provider in &mesh.extension_providers {
        if provider.datadog.is_some() || provider.skywalking.is_some() {
            return Err((
                "extensionProviders",
                format!(
                    "tracing provider {}: only zipkin and opentelemetry are supported",
                    provider.name
                ),
            ));
        }
        let (service, port, kind) = if let Some(zipkin) = &provider.zipkin {
            (&zipkin.service, zipkin.port, TracerKind::Zipkin)
        } else if let Some(otel) = &provider.opentelemetry {
            let kind = match &otel.http {
                None => TracerKind::OtlpGrpc,
                Some(http) if !http.headers.is_empty() => {
                    return Err((
                        "extensionProviders",
                        format!(
                            "opentelemetry provider {}: http.headers are not supported",
                            provider.name
                        ),
                    ));
                }
                Some(http) => TracerKind::OtlpHttp {
                    path: normalised_path(&http.path),
                },
            };
            (&otel.service, otel.port, kind)
        } else {
            continue;
        };
        let port = u16::try_from(port)
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| {
                (
                    "extensionProviders",
                    format!(
                        "tracing provider {}: port {port} is not a port",
                        provider.name
                    ),
                )
            })?;
        providers.push(TracingProvider {
            name: provider.name.clone(),
            service: service_host(service),
            port: port.into(),
            kind,
        });
    }
    let sampling_percent = sampling(mesh.default_config.tracing.as_ref())?;
    let tracing_off = mesh.enable_tracing == Some(false);
    Ok(MeshTracing {
        providers: if tracing_off { Vec::new() } else { providers },
        default_providers: mesh
            .default_providers
            .as_ref()
            .map(|d| d.tracing.clone())
            .unwrap_or_default(),
        sampling_percent,
    })
}

/// Istio's `namespace/host` form names the host alone here.
fn service_host(service: &str) -> String {
    service.rsplit('/').next().unwrap_or(service).to_string()
}

fn normalised_path(path: &str) -> String {
    match path.trim() {
        "" => "/v1/traces".to_string(),
        path if path.starts_with('/') => path.to_string(),
        path => format!("/{path}"),
    }
}

/// `defaultConfig.tracing.sampling`: a percentage, 1 when unset.
fn sampling(tracing: Option<&StructValue>) -> Result<f64, Refusal> {
    let Some(StructValue::Map(fields)) = tracing else {
        return Ok(DEFAULT_SAMPLING_PERCENT);
    };
    match fields.get("sampling") {
        None | Some(StructValue::Null) => Ok(DEFAULT_SAMPLING_PERCENT),
        Some(StructValue::Number(value)) if (0.0..=100.0).contains(value) => Ok(*value),
        Some(_) => Err((
            "defaultConfig.tracing.sampling",
            "must be a number from 0 to 100".to_string(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(yaml: &str) -> MeshConfig {
        serde_saphyr::from_str(yaml).unwrap()
    }

    #[test]
    fn maps_providers_defaults_and_sampling() {
        let mesh = parsed(
            "defaultProviders: {tracing: [otel]}\n\
             defaultConfig: {tracing: {sampling: 25.5}}\n\
             extensionProviders:\n\
             - name: zipkin\n  zipkin: {service: zipkin.istio-system.svc.cluster.local, port: 9411}\n\
             - name: otel\n  opentelemetry: {service: observability/otel.observability.svc.cluster.local, port: 4317}\n\
             - name: otel-http\n  opentelemetry: {service: otel.o.svc.cluster.local, port: 4318, http: {path: v1/traces}}\n",
        );
        let tracing = mesh_tracing(&mesh).unwrap();
        assert_eq!(tracing.default_providers, ["otel"]);
        assert_eq!(tracing.sampling_percent, 25.5);
        assert_eq!(tracing.providers.len(), 3);
        assert_eq!(
            tracing.providers[1].service,
            "otel.observability.svc.cluster.local"
        );
        assert_eq!(tracing.providers[1].kind, TracerKind::OtlpGrpc);
        assert_eq!(
            tracing.providers[2].kind,
            TracerKind::OtlpHttp {
                path: "/v1/traces".into()
            }
        );
        assert_eq!(
            mesh_tracing(&MeshConfig::default())
                .unwrap()
                .sampling_percent,
            1.0
        );
    }

    #[test]
    fn enable_tracing_false_turns_every_provider_off() {
        let mesh = parsed(
            "enableTracing: false\nextensionProviders:\n- name: z\n  zipkin: {service: z.ns.svc.cluster.local, port: 9411}\n",
        );
        assert!(mesh_tracing(&mesh).unwrap().providers.is_empty());
    }

    #[test]
    fn refuses_what_it_cannot_honour() {
        let refused = |yaml: &str| mesh_tracing(&parsed(yaml)).unwrap_err().0;
        assert_eq!(
            refused(
                "extensionProviders:\n- name: dd\n  datadog: {service: dd.ns.svc.cluster.local, port: 8126}\n"
            ),
            "extensionProviders"
        );
        assert_eq!(
            refused("extensionProviders:\n- name: z\n  zipkin: {service: z, port: 70000}\n"),
            "extensionProviders"
        );
        assert_eq!(
            refused("defaultConfig: {tracing: {sampling: 150}}\n"),
            "defaultConfig.tracing.sampling"
        );
    }
}
