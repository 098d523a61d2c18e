//! `WorkloadGroup` (networking.istio.io v1, v1beta1, v1alpha3): a template
//! for the WorkloadEntries of non-Kubernetes workloads (VMs), with the
//! metadata and readiness probe they share.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::WorkloadEntry;

#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct WorkloadGroup {
    /// Labels and annotations every generated WorkloadEntry carries.
    pub metadata: Option<WorkloadGroupMetadata>,
    /// Required; its `address` must be empty (each entry has its own).
    pub template: Option<WorkloadEntry>,
    pub probe: Option<ReadinessProbe>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct WorkloadGroupMetadata {
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
}

/// How the proxy of a generated workload checks its readiness: exactly one
/// of `httpGet`, `tcpSocket`, `exec` or `grpc`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ReadinessProbe {
    pub initial_delay_seconds: i32,
    pub timeout_seconds: i32,
    pub period_seconds: i32,
    pub success_threshold: i32,
    pub failure_threshold: i32,
    pub http_get: Option<HttpHealthCheck>,
    pub tcp_socket: Option<TcpHealthCheck>,
    pub exec: Option<ExecHealthCheck>,
    pub grpc: Option<GrpcHealthCheck>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct HttpHealthCheck {
    pub path: String,
    pub port: u32,
    pub host: String,
    /// `HTTP` (the default) or `HTTPS`, in any case.
    pub scheme: String,
    pub http_headers: Vec<HttpHeader>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct HttpHeader {
    pub name: String,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct TcpHealthCheck {
    pub host: String,
    pub port: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ExecHealthCheck {
    pub command: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct GrpcHealthCheck {
    pub port: u32,
    pub service: Option<String>,
}
