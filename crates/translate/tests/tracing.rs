//! Tracing: mesh config providers and Telemetry `tracing` become the HTTP
//! connection managers' `tracing`. The golden file holds, per listener of
//! one sidecar, the `tracing` its connection managers got.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use envoy_types::pb::envoy::config::core::v3::TrafficDirection;
use envoy_types::pb::envoy::config::listener::v3::filter;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager;
use envoy_types::pb::envoy::config::core::v3::grpc_service::TargetSpecifier;
use envoy_types::pb::envoy::config::trace::v3::tracing::http::ConfigType;
use envoy_types::pb::envoy::config::trace::v3::{OpenTelemetryConfig, ZipkinConfig};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_connection_manager::Tracing;
use envoy_types::pb::envoy::r#type::tracing::v3::custom_tag;
use prost::Message;
use serde_json::{Value, json};
use trellis_config::Snapshot;
use trellis_translate::{MeshOptions, MeshTracing, TracerKind, TracingProvider};
use trellis_xds::node::{Interception, ProxyKind};
use trellis_xds::{NodeInfo, ProxyResources};

fn testdata(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(name)
}

fn snapshot(with_telemetry: bool) -> Snapshot {
    let mut files = vec![
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../samples/bookinfo/platform/bookinfo.yaml"),
        testdata("workload-entries.yaml"),
    ];
    if with_telemetry {
        files.push(testdata("tracing.yaml"));
    }
    let mut resources = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let outcome = trellis_api::parse_yaml(&file, &text);
        assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
        resources.extend(outcome.resources.into_iter().map(Arc::new));
    }
    Snapshot::new(1, resources)
}

fn sidecar(app: &str) -> NodeInfo {
    NodeInfo {
        kind: ProxyKind::Sidecar,
        ip: "127.10.0.3".parse().unwrap(),
        pod_name: format!("{app}-v1-0"),
        namespace: "default".into(),
        service_account: format!("bookinfo-{app}"),
        workload_name: format!("{app}-v1"),
        labels: [
            ("app".to_string(), app.to_string()),
            ("version".to_string(), "v1".to_string()),
        ]
        .into(),
        interception: Interception::None,
        app_ports: [(9080, 20000)].into(),
        outbound_port: 15001,
        locality: String::new(),
    }
}

fn mesh() -> MeshOptions {
    let provider = |name: &str, service: &str, port, kind| TracingProvider {
        name: name.into(),
        service: service.into(),
        port,
        kind,
    };
    MeshOptions {
        tracing: MeshTracing {
            providers: vec![
                provider(
                    "zipkin",
                    "zipkin.istio-system.svc.cluster.local",
                    9411,
                    TracerKind::Zipkin,
                ),
                provider(
                    "otel",
                    "otel.observability.svc.cluster.local",
                    4317,
                    TracerKind::OtlpGrpc,
                ),
                provider(
                    "otel-http",
                    "otel.observability.svc.cluster.local",
                    4318,
                    TracerKind::OtlpHttp {
                        path: "/v1/traces".into(),
                    },
                ),
            ],
            default_providers: vec!["zipkin".into()],
            ..MeshTracing::default()
        },
        ..MeshOptions::default()
    }
}

/// Per listener: the `tracing` of its connection managers, as JSON.
/// Per listener: its name, whether it is inbound, and its tracing.
fn tracing_by_listener(resources: &ProxyResources) -> Vec<(String, bool, Vec<Value>)> {
    resources
        .listeners
        .iter()
        .map(|listener| {
            let tracings = listener
                .filter_chains
                .iter()
                .chain(listener.default_filter_chain.iter())
                .flat_map(|chain| &chain.filters)
                .filter_map(|f| match &f.config_type {
                    Some(filter::ConfigType::TypedConfig(any))
                        if any.type_url.ends_with("HttpConnectionManager") =>
                    {
                        HttpConnectionManager::decode(any.value.as_slice()).ok()
                    }
                    _ => None,
                })
                .map(|hcm| match &hcm.tracing {
                    Some(tracing) => describe(tracing),
                    None => Value::Null,
                })
                .collect();
            let inbound = listener.traffic_direction == TrafficDirection::Inbound as i32;
            (listener.name.clone(), inbound, tracings)
        })
        .filter(|(_, _, tracings): &(String, bool, Vec<Value>)| !tracings.is_empty())
        .collect()
}

/// The JSON Envoy would print (camelCase field names), typed configs
/// decoded. (The xDS JSON printer knows no tracer configs yet.)
fn describe(tracing: &Tracing) -> Value {
    let provider = tracing.provider.as_ref().unwrap();
    let Some(ConfigType::TypedConfig(any)) = &provider.config_type else {
        panic!()
    };
    let typed = if provider.name == "envoy.tracers.zipkin" {
        let zipkin = ZipkinConfig::decode(any.value.as_slice()).unwrap();
        json!({
            "collectorCluster": zipkin.collector_cluster,
            "collectorEndpoint": zipkin.collector_endpoint,
            "collectorEndpointVersion": zipkin.collector_endpoint_version,
            "traceId128bit": zipkin.trace_id_128bit,
            "collectorHostname": zipkin.collector_hostname,
        })
    } else {
        let otel = OpenTelemetryConfig::decode(any.value.as_slice()).unwrap();
        match (otel.grpc_service, otel.http_service) {
            (Some(grpc), None) => match grpc.target_specifier {
                Some(TargetSpecifier::EnvoyGrpc(envoy)) => json!({"grpcService": {"envoyGrpc": {
                    "clusterName": envoy.cluster_name, "authority": envoy.authority}}}),
                _ => panic!("not envoy_grpc"),
            },
            (None, Some(http)) => {
                let uri = http.http_uri.unwrap();
                json!({"httpService": {"httpUri": {"uri": uri.uri, "cluster": format!("{:?}", uri.http_upstream_type)}}})
            }
            _ => panic!("neither or both services"),
        }
    };
    let tags: Vec<Value> = tracing
        .custom_tags
        .iter()
        .map(|tag| match &tag.r#type {
            Some(custom_tag::Type::Literal(l)) => json!({"tag": tag.tag, "literal": {"value": l.value}}),
            Some(custom_tag::Type::Environment(e)) => json!({"tag": tag.tag, "environment": {"name": e.name, "defaultValue": e.default_value}}),
            Some(custom_tag::Type::RequestHeader(h)) => json!({"tag": tag.tag, "requestHeader": {"name": h.name, "defaultValue": h.default_value}}),
            other => panic!("unexpected tag {other:?}"),
        })
        .collect();
    json!({
        "randomSampling": {"value": tracing.random_sampling.as_ref().unwrap().value},
        "customTags": tags,
        "provider": {"name": provider.name, "typedConfig": typed},
    })
}

fn all(resources: &ProxyResources) -> Vec<Value> {
    tracing_by_listener(resources)
        .into_iter()
        .flat_map(|(_, _, t)| t)
        .collect()
}

#[test]
fn without_providers_nothing_traces() {
    let resources = trellis_translate::translate_with(
        &snapshot(true),
        &sidecar("reviews"),
        &MeshOptions::default(),
    );
    assert!(all(&resources).iter().all(Value::is_null));
}

#[test]
fn the_default_provider_samples_at_istios_default_one_percent() {
    let resources =
        trellis_translate::translate_with(&snapshot(false), &sidecar("reviews"), &mesh());
    let tracings = all(&resources);
    assert!(!tracings.is_empty());
    for tracing in &tracings {
        assert_eq!(tracing["randomSampling"]["value"], 1.0);
        assert_eq!(tracing["provider"]["name"], "envoy.tracers.zipkin");
        assert_eq!(
            tracing["provider"]["typedConfig"]["collectorCluster"],
            "outbound|9411||zipkin.istio-system.svc.cluster.local"
        );
    }
}

#[test]
fn workload_overrides_namespace_overrides_root() {
    let resources =
        trellis_translate::translate_with(&snapshot(true), &sidecar("reviews"), &mesh());
    let listeners = tracing_by_listener(&resources);
    let inbound: Vec<_> = listeners
        .iter()
        .filter(|(_, inbound, _)| *inbound)
        .collect();
    let outbound: Vec<_> = listeners
        .iter()
        .filter(|(_, inbound, _)| !inbound)
        .collect();
    assert!(!inbound.is_empty() && !outbound.is_empty(), "{listeners:?}");
    for (_, _, tracings) in &inbound {
        // Server side: the workload's 100%, the namespace's provider.
        assert_eq!(tracings[0]["randomSampling"]["value"], 100.0);
        assert_eq!(
            tracings[0]["provider"]["name"],
            "envoy.tracers.opentelemetry"
        );
    }
    for (_, _, tracings) in &outbound {
        // Client side: the root's 10%; tags from root and namespace.
        assert_eq!(tracings[0]["randomSampling"]["value"], 10.0);
        let tags: Vec<_> = tracings[0]["customTags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["tag"].clone())
            .collect();
        assert_eq!(tags, ["pod", "team", "user"]);
    }
    check(
        "tracing-reviews",
        &serde_json::to_value(&listeners).unwrap(),
    );
}

#[test]
fn disable_span_reporting_turns_tracing_off_for_that_workload() {
    let quiet = trellis_translate::translate_with(&snapshot(true), &sidecar("ratings"), &mesh());
    assert!(all(&quiet).iter().all(Value::is_null));
    let other = trellis_translate::translate_with(&snapshot(true), &sidecar("details"), &mesh());
    assert!(all(&other).iter().all(|t| !t.is_null()));
}

fn check(name: &str, actual: &Value) {
    let path = testdata(&format!("{name}.json"));
    let text = serde_json::to_string_pretty(actual).unwrap() + "\n";
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &text).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        expected == text,
        "{} differs; UPDATE_GOLDEN=1 rewrites it:\n{text}",
        path.display()
    );
}
