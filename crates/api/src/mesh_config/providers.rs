//! `extensionProviders`: named backends for external authorization,
//! tracing, metrics and access logs. Each has a name and exactly one kind.

use std::collections::BTreeMap;

use serde::Deserialize;

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct MeshExtensionProvider {
    pub name: String,
    pub envoy_ext_authz_http: Option<ExtAuthzHttp>,
    pub envoy_ext_authz_grpc: Option<ExtAuthzGrpc>,
    pub zipkin: Option<TracingService>,
    pub opentelemetry: Option<OpenTelemetry>,
    pub datadog: Option<TracingService>,
    pub skywalking: Option<TracingService>,
    pub prometheus: Option<Prometheus>,
    pub stackdriver: Option<crate::istio::StructValue>,
    pub envoy_file_access_log: Option<FileAccessLog>,
    pub envoy_http_als: Option<GrpcLogService>,
    pub envoy_tcp_als: Option<GrpcLogService>,
    pub envoy_otel_als: Option<GrpcLogService>,
}

impl MeshExtensionProvider {
    /// The kinds set, by their field names: valid providers have one.
    pub fn kinds(&self) -> Vec<&'static str> {
        let set = [
            ("envoyExtAuthzHttp", self.envoy_ext_authz_http.is_some()),
            ("envoyExtAuthzGrpc", self.envoy_ext_authz_grpc.is_some()),
            ("zipkin", self.zipkin.is_some()),
            ("opentelemetry", self.opentelemetry.is_some()),
            ("datadog", self.datadog.is_some()),
            ("skywalking", self.skywalking.is_some()),
            ("prometheus", self.prometheus.is_some()),
            ("stackdriver", self.stackdriver.is_some()),
            ("envoyFileAccessLog", self.envoy_file_access_log.is_some()),
            ("envoyHttpAls", self.envoy_http_als.is_some()),
            ("envoyTcpAls", self.envoy_tcp_als.is_some()),
            ("envoyOtelAls", self.envoy_otel_als.is_some()),
        ];
        set.into_iter()
            .filter_map(|(name, present)| present.then_some(name))
            .collect()
    }
}

/// An authorization service called over HTTP for every request.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ExtAuthzHttp {
    /// A service host, optionally `namespace/host`.
    pub service: String,
    pub port: u32,
    pub timeout: Option<String>,
    pub path_prefix: Option<String>,
    pub fail_open: Option<bool>,
    pub clear_route_cache: Option<bool>,
    /// The HTTP status when the service cannot be reached, e.g. "503".
    pub status_on_error: Option<String>,
    pub include_request_headers_in_check: Vec<String>,
    pub include_additional_headers_in_check: BTreeMap<String, String>,
    pub include_request_body_in_check: Option<RequestBody>,
    pub headers_to_upstream_on_allow: Vec<String>,
    pub headers_to_downstream_on_allow: Vec<String>,
    pub headers_to_downstream_on_deny: Vec<String>,
}

/// An authorization service called over gRPC (Envoy's ext_authz API).
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ExtAuthzGrpc {
    pub service: String,
    pub port: u32,
    pub timeout: Option<String>,
    pub fail_open: Option<bool>,
    pub clear_route_cache: Option<bool>,
    pub status_on_error: Option<String>,
    pub include_request_body_in_check: Option<RequestBody>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct RequestBody {
    pub max_request_bytes: u32,
    pub allow_partial_message: bool,
    pub pack_as_bytes: bool,
}

/// A tracing collector (Zipkin, Datadog, SkyWalking).
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct TracingService {
    pub service: String,
    pub port: u32,
    pub max_tag_length: Option<u32>,
    pub enable_64bit_trace_id: Option<bool>,
    pub access_token: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct OpenTelemetry {
    pub service: String,
    pub port: u32,
    pub max_tag_length: Option<u32>,
    /// Export over OTLP/HTTP instead of gRPC.
    pub http: Option<OtlpHttp>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct OtlpHttp {
    pub path: String,
    pub timeout: Option<String>,
    pub headers: Vec<OtlpHeader>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct OtlpHeader {
    pub name: String,
    pub value: String,
}

/// Prometheus scrapes the proxies; nothing to configure.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Prometheus {}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct FileAccessLog {
    pub path: String,
    pub log_format: Option<LogFormat>,
}

/// Exactly one of a format string or JSON labels.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct LogFormat {
    pub text: Option<String>,
    pub labels: Option<crate::istio::StructValue>,
}

/// An access log service reached over gRPC.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct GrpcLogService {
    pub service: String,
    pub port: u32,
    pub log_name: Option<String>,
}
