//! Telemetry `metrics` and `accessLogging`: every connection manager and
//! TCP proxy gets Istio's stats filter (before the router / tcp_proxy)
//! carrying the overrides of its side, and the access logs Telemetry
//! selects, with their CEL filters.

use std::path::Path;
use std::sync::Arc;

use envoy_types::pb::envoy::config::accesslog::v3::{AccessLog, access_log_filter};
use envoy_types::pb::envoy::config::core::v3::TrafficDirection;
use envoy_types::pb::envoy::config::listener::v3::{Filter, filter};
use envoy_types::pb::envoy::extensions::access_loggers::filters::cel::v3::ExpressionFilter;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, http_filter,
};
use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::TcpProxy;
use prost::{Message, Name};
use trellis_config::Snapshot;
use trellis_translate::{AccessLogEncoding, FileLogProvider, MeshAccessLogging, MeshOptions};
use trellis_xds::node::{Interception, ProxyKind};
use trellis_xds::stats_config::{PluginConfig, STATS_FILTER_NAME};
use trellis_xds::{NodeInfo, ProxyResources};

fn snapshot(telemetry: &str) -> Snapshot {
    let bookinfo =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../samples/bookinfo/platform/bookinfo.yaml");
    let mut resources = Vec::new();
    for (file, text) in [
        (
            bookinfo.clone(),
            std::fs::read_to_string(&bookinfo).unwrap(),
        ),
        (
            Path::new("telemetry.yaml").to_path_buf(),
            telemetry.to_string(),
        ),
    ] {
        let outcome = trellis_api::parse_yaml(&file, &text);
        assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
        resources.extend(outcome.resources.into_iter().map(Arc::new));
    }
    Snapshot::new(1, resources)
}

fn sidecar(app: &str, interception: Interception) -> NodeInfo {
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
        interception,
        app_ports: [(9080, 20000)].into(),
        outbound_port: 15001,
        locality: String::new(),
    }
}

/// Per network filter of every chain: its side, the stats filter it
/// runs under (`None`: none) and its access logs.
struct Seen {
    inbound: bool,
    stats: Option<PluginConfig>,
    logs: Vec<AccessLog>,
    /// The stats filter sits right before the router / tcp_proxy.
    placed_before_terminal: bool,
}

fn typed(filter: &Filter) -> &envoy_types::pb::google::protobuf::Any {
    match &filter.config_type {
        Some(filter::ConfigType::TypedConfig(any)) => any,
        _ => panic!("untyped filter {}", filter.name),
    }
}

fn seen(resources: &ProxyResources) -> Vec<Seen> {
    let mut out = Vec::new();
    for listener in &resources.listeners {
        let inbound = listener.traffic_direction == TrafficDirection::Inbound as i32;
        for chain in listener
            .filter_chains
            .iter()
            .chain(&listener.default_filter_chain)
        {
            for (index, filter) in chain.filters.iter().enumerate() {
                let any = typed(filter);
                if any.type_url == HttpConnectionManager::type_url() {
                    let hcm = HttpConnectionManager::decode(any.value.as_slice()).unwrap();
                    let position = hcm
                        .http_filters
                        .iter()
                        .position(|f| f.name == STATS_FILTER_NAME);
                    let stats = position.map(|i| match &hcm.http_filters[i].config_type {
                        Some(http_filter::ConfigType::TypedConfig(any)) => {
                            PluginConfig::decode(any.value.as_slice()).unwrap()
                        }
                        _ => panic!("untyped stats filter"),
                    });
                    let placed = position.is_none_or(|i| {
                        hcm.http_filters[i + 1].name == "envoy.filters.http.router"
                    });
                    out.push(Seen {
                        inbound,
                        stats,
                        logs: hcm.access_log,
                        placed_before_terminal: placed,
                    });
                } else if any.type_url == TcpProxy::type_url() {
                    let proxy = TcpProxy::decode(any.value.as_slice()).unwrap();
                    let before = index.checked_sub(1).map(|i| &chain.filters[i]);
                    let stats = before
                        .filter(|f| f.name == STATS_FILTER_NAME)
                        .map(|f| PluginConfig::decode(typed(f).value.as_slice()).unwrap());
                    out.push(Seen {
                        inbound,
                        stats,
                        logs: proxy.access_log,
                        placed_before_terminal: true,
                    });
                }
            }
        }
    }
    assert!(!out.is_empty());
    out
}

fn translate(telemetry: &str, app: &str, mesh: &MeshOptions) -> Vec<Seen> {
    let mut all = Vec::new();
    for interception in [Interception::None, Interception::Redirect] {
        let resources = trellis_translate::translate_with(
            &snapshot(telemetry),
            &sidecar(app, interception),
            mesh,
        );
        all.extend(seen(&resources));
    }
    all
}

fn filter_expression(log: &AccessLog) -> Option<String> {
    let specifier = log.filter.as_ref()?.filter_specifier.as_ref()?;
    let access_log_filter::FilterSpecifier::ExtensionFilter(extension) = specifier else {
        panic!("not the CEL extension filter");
    };
    let Some(
        envoy_types::pb::envoy::config::accesslog::v3::extension_filter::ConfigType::TypedConfig(
            any,
        ),
    ) = &extension.config_type
    else {
        panic!()
    };
    Some(
        ExpressionFilter::decode(any.value.as_slice())
            .unwrap()
            .expression,
    )
}

#[test]
fn without_telemetry_every_listener_reports_the_standard_metrics() {
    for seen in translate("", "reviews", &MeshOptions::default()) {
        let stats = seen.stats.expect("a stats filter everywhere");
        assert!(stats.metrics.is_empty());
        assert!(seen.placed_before_terminal);
        assert!(seen.logs.is_empty(), "no accessLogFile, no logs");
    }
}

const OVERRIDES: &str = r#"
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: mesh-default, namespace: istio-system}
spec:
  metrics:
  - providers: [{name: prometheus}]
    overrides:
    - match: {metric: REQUEST_COUNT, mode: CLIENT_AND_SERVER}
      tagOverrides:
        request_host: {value: request.host}
        request_protocol: {operation: REMOVE}
---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: reviews, namespace: default}
spec:
  selector: {matchLabels: {app: reviews}}
  metrics:
  - overrides:
    - match: {metric: REQUEST_DURATION, mode: SERVER}
      disabled: true
    - match: {metric: REQUEST_COUNT, mode: SERVER}
      tagOverrides:
        request_host: {operation: REMOVE}
        destination_port: {value: string(destination.port)}
"#;

#[test]
fn overrides_merge_from_the_mesh_to_the_workload_per_side() {
    for seen in translate(OVERRIDES, "reviews", &MeshOptions::default()) {
        let stats = seen.stats.expect("prometheus is on");
        let count = stats
            .metrics
            .iter()
            .find(|m| m.name == "requests_total")
            .expect("the count is overridden on both sides");
        let duration = stats
            .metrics
            .iter()
            .find(|m| m.name == "request_duration_milliseconds");
        if seen.inbound {
            assert_eq!(
                count.dimensions,
                [(
                    "destination_port".to_string(),
                    "string(destination.port)".to_string()
                )]
                .into()
            );
            let mut removed = count.tags_to_remove.clone();
            removed.sort();
            assert_eq!(removed, ["request_host", "request_protocol"]);
            assert!(duration.expect("dropped server-side").drop);
        } else {
            assert_eq!(
                count.dimensions,
                [("request_host".to_string(), "request.host".to_string())].into()
            );
            assert_eq!(count.tags_to_remove, ["request_protocol"]);
            assert!(duration.is_none());
        }
    }
    // Another workload only gets the mesh-wide override.
    for seen in translate(OVERRIDES, "ratings", &MeshOptions::default()) {
        let stats = seen.stats.unwrap();
        assert_eq!(stats.metrics.len(), 1);
        assert!(stats.metrics[0].dimensions.contains_key("request_host"));
    }
}

#[test]
fn providers_without_prometheus_turn_metrics_off() {
    let off = r#"
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: no-metrics, namespace: default}
spec:
  metrics:
  - providers: [{name: some-other-backend}]
"#;
    assert!(
        translate(off, "reviews", &MeshOptions::default())
            .iter()
            .all(|s| s.stats.is_none())
    );
}

const LOGGING: &str = r#"
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: mesh-logs, namespace: istio-system}
spec:
  accessLogging:
  - providers: [{name: envoy}]
    filter: {expression: "response.code >= 400"}
---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: quiet-client, namespace: default}
spec:
  selector: {matchLabels: {app: productpage}}
  accessLogging:
  - match: {mode: CLIENT}
    disabled: true
  - match: {mode: SERVER}
    providers: [{name: json-file}]
"#;

fn logging_mesh() -> MeshOptions {
    MeshOptions {
        access_logging: MeshAccessLogging {
            default_providers: Vec::new(),
            providers: vec![FileLogProvider {
                name: "json-file".into(),
                path: "/tmp/server.log".into(),
                format: Some(r#"{"code":"%RESPONSE_CODE%"}"#.into()),
                encoding: AccessLogEncoding::Json,
            }],
        },
        ..MeshOptions::default()
    }
}

fn log_path(log: &AccessLog) -> String {
    use envoy_types::pb::envoy::config::accesslog::v3::access_log::ConfigType;
    use envoy_types::pb::envoy::extensions::access_loggers::file::v3::FileAccessLog;
    let Some(ConfigType::TypedConfig(any)) = &log.config_type else {
        panic!()
    };
    FileAccessLog::decode(any.value.as_slice()).unwrap().path
}

#[test]
fn access_logging_selects_providers_filters_and_sides() {
    // The mesh-wide entry: the built-in provider on stdout, errors only.
    for seen in translate(LOGGING, "reviews", &logging_mesh()) {
        assert_eq!(seen.logs.len(), 1);
        assert_eq!(log_path(&seen.logs[0]), "/dev/stdout");
        assert_eq!(
            filter_expression(&seen.logs[0]).as_deref(),
            Some("response.code >= 400")
        );
    }
    // productpage: no client-side logs; server-side to the JSON provider,
    // still filtered by the mesh-wide entry.
    for seen in translate(LOGGING, "productpage", &logging_mesh()) {
        if seen.inbound {
            assert_eq!(seen.logs.len(), 1);
            assert_eq!(log_path(&seen.logs[0]), "/tmp/server.log");
            assert_eq!(
                filter_expression(&seen.logs[0]).as_deref(),
                Some("response.code >= 400")
            );
        } else {
            assert!(seen.logs.is_empty());
        }
    }
}
