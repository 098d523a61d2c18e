//! What every resource has: Kubernetes object metadata, where it was
//! written, and its identity.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use serde::Deserialize;

use crate::gateway_api::{
    GatewayClassSpec, GatewaySpec, GrpcRouteSpec, HttpRouteSpec, ReferenceGrantSpec,
};
use crate::istio::{
    AuthorizationPolicy, DestinationRule, EnvoyFilter, Gateway, PeerAuthentication, ProxyConfig,
    RequestAuthentication, ServiceEntry, Sidecar, Telemetry, VirtualService, WorkloadEntry,
    WorkloadGroup,
};
use crate::kube::{
    ConfigMapBody, DaemonSetSpec, DeploymentSpec, EndpointSliceBody, JobSpec,
    MutatingWebhookConfigurationBody, NamespaceSpec, PodSpec, ReplicaSetSpec, SecretBody,
    ServiceAccountSpec, ServiceSpec, StatefulSetSpec,
};
use crate::slo::ServiceLevelObjective;

/// The namespace of a namespaced resource that does not name one.
pub const DEFAULT_NAMESPACE: &str = "default";

/// Kubernetes `metadata`. Fields a mesh does not use (uid, managedFields,
/// ...) are ignored.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ObjectMeta {
    pub name: String,
    pub namespace: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
}

impl ObjectMeta {
    /// The namespace, or `default` when none is written (as `kubectl apply`
    /// without `-n` does).
    pub fn namespace_or_default(&self) -> &str {
        match self.namespace.as_deref() {
            Some(namespace) if !namespace.is_empty() => namespace,
            _ => DEFAULT_NAMESPACE,
        }
    }
}

/// Where a resource was written: the file and the 1-based line and column of
/// the first key of its document.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SourceRef {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
}

impl fmt::Display for SourceRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)
    }
}

/// One typed resource as written in a file.
#[derive(Debug, Clone, PartialEq)]
pub struct Resource<T> {
    pub api_version: String,
    pub kind: String,
    pub meta: ObjectMeta,
    pub spec: T,
    pub source: SourceRef,
}

impl<T> Resource<T> {
    /// This resource's identity; `namespace` is empty for cluster-scoped kinds.
    pub fn key(&self) -> ResourceKey {
        let namespace = if is_cluster_scoped(&self.kind) {
            String::new()
        } else {
            self.meta.namespace_or_default().to_string()
        };
        ResourceKey {
            kind: key_kind(&self.kind, &self.api_version),
            namespace,
            name: self.meta.name.clone(),
        }
    }

    pub fn name(&self) -> &str {
        &self.meta.name
    }

    pub fn namespace(&self) -> &str {
        self.meta.namespace_or_default()
    }
}

/// The kind as it identifies a resource: a Gateway API `Gateway` is
/// qualified by its group (as `kubectl` names it) so that it never
/// conflicts with an Istio Gateway of the same name.
fn key_kind(kind: &str, api_version: &str) -> String {
    let group = api_version.split_once('/').map(|(group, _)| group);
    match group {
        Some(group) if kind == "Gateway" && group == crate::gateway_api::GATEWAY_API_GROUP => {
            format!("{kind}.{group}")
        }
        _ => kind.to_string(),
    }
}

fn is_cluster_scoped(kind: &str) -> bool {
    matches!(
        kind,
        "Namespace" | "MutatingWebhookConfiguration" | "GatewayClass"
    )
}

/// The identity of a resource: two definitions with the same key conflict.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ResourceKey {
    pub kind: String,
    /// Empty for cluster-scoped kinds (Namespace).
    pub namespace: String,
    pub name: String,
}

impl ResourceKey {
    pub fn new(
        kind: impl Into<String>,
        namespace: impl Into<String>,
        name: impl Into<String>,
    ) -> ResourceKey {
        ResourceKey {
            kind: kind.into(),
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

/// `Kind/namespace/name`, or `Kind/name` for cluster-scoped kinds.
impl fmt::Display for ResourceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.namespace.is_empty() {
            write!(f, "{}/{}", self.kind, self.name)
        } else {
            write!(f, "{}/{}/{}", self.kind, self.namespace, self.name)
        }
    }
}

/// Every kind of resource Trellis understands.
// Resources are built once per load and then shared behind `Arc`s, so the
// size of the largest variant (a DestinationRule) costs nothing that boxing
// would save, and the unboxed shape is simpler for every consumer.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum AnyResource {
    Service(Resource<ServiceSpec>),
    ServiceAccount(Resource<ServiceAccountSpec>),
    Deployment(Resource<DeploymentSpec>),
    Namespace(Resource<NamespaceSpec>),
    VirtualService(Resource<VirtualService>),
    DestinationRule(Resource<DestinationRule>),
    WorkloadEntry(Resource<WorkloadEntry>),
    Gateway(Resource<Gateway>),
    ServiceEntry(Resource<ServiceEntry>),
    Sidecar(Resource<Sidecar>),
    PeerAuthentication(Resource<PeerAuthentication>),
    RequestAuthentication(Resource<RequestAuthentication>),
    AuthorizationPolicy(Resource<AuthorizationPolicy>),
    /// A pod as written in a manifest; its labels are in `meta.labels`.
    Pod(Resource<PodSpec>),
    WorkloadGroup(Resource<WorkloadGroup>),
    ProxyConfig(Resource<ProxyConfig>),
    /// Read and validated, but not applied by the data plane.
    EnvoyFilter(Resource<EnvoyFilter>),
    Telemetry(Resource<Telemetry>),
    StatefulSet(Resource<StatefulSetSpec>),
    DaemonSet(Resource<DaemonSetSpec>),
    ReplicaSet(Resource<ReplicaSetSpec>),
    Job(Resource<JobSpec>),
    /// Kinds whose content is at the top level: the "spec" is that content.
    EndpointSlice(Resource<EndpointSliceBody>),
    Secret(Resource<SecretBody>),
    ConfigMap(Resource<ConfigMapBody>),
    MutatingWebhookConfiguration(Resource<MutatingWebhookConfigurationBody>),
    GatewayClass(Resource<GatewayClassSpec>),
    /// A Gateway API Gateway (its `kind` is `Gateway`, like Istio's).
    KubernetesGateway(Resource<GatewaySpec>),
    HttpRoute(Resource<HttpRouteSpec>),
    GrpcRoute(Resource<GrpcRouteSpec>),
    ReferenceGrant(Resource<ReferenceGrantSpec>),
    /// Trellis's own: an objective the dashboard measures.
    ServiceLevelObjective(Resource<ServiceLevelObjective>),
}

/// Applies `$body` to the `Resource<_>` inside any variant.
macro_rules! each_variant {
    ($value:expr, $resource:ident => $body:expr) => {
        match $value {
            AnyResource::Service($resource) => $body,
            AnyResource::ServiceAccount($resource) => $body,
            AnyResource::Deployment($resource) => $body,
            AnyResource::Namespace($resource) => $body,
            AnyResource::VirtualService($resource) => $body,
            AnyResource::DestinationRule($resource) => $body,
            AnyResource::WorkloadEntry($resource) => $body,
            AnyResource::Gateway($resource) => $body,
            AnyResource::ServiceEntry($resource) => $body,
            AnyResource::Sidecar($resource) => $body,
            AnyResource::PeerAuthentication($resource) => $body,
            AnyResource::RequestAuthentication($resource) => $body,
            AnyResource::AuthorizationPolicy($resource) => $body,
            AnyResource::Pod($resource) => $body,
            AnyResource::WorkloadGroup($resource) => $body,
            AnyResource::ProxyConfig($resource) => $body,
            AnyResource::EnvoyFilter($resource) => $body,
            AnyResource::Telemetry($resource) => $body,
            AnyResource::StatefulSet($resource) => $body,
            AnyResource::DaemonSet($resource) => $body,
            AnyResource::ReplicaSet($resource) => $body,
            AnyResource::Job($resource) => $body,
            AnyResource::EndpointSlice($resource) => $body,
            AnyResource::Secret($resource) => $body,
            AnyResource::ConfigMap($resource) => $body,
            AnyResource::MutatingWebhookConfiguration($resource) => $body,
            AnyResource::GatewayClass($resource) => $body,
            AnyResource::KubernetesGateway($resource) => $body,
            AnyResource::HttpRoute($resource) => $body,
            AnyResource::GrpcRoute($resource) => $body,
            AnyResource::ReferenceGrant($resource) => $body,
            AnyResource::ServiceLevelObjective($resource) => $body,
        }
    };
}

impl AnyResource {
    pub fn key(&self) -> ResourceKey {
        each_variant!(self, resource => resource.key())
    }

    pub fn source(&self) -> &SourceRef {
        each_variant!(self, resource => &resource.source)
    }

    pub fn meta(&self) -> &ObjectMeta {
        each_variant!(self, resource => &resource.meta)
    }

    pub fn kind(&self) -> &str {
        each_variant!(self, resource => &resource.kind)
    }

    pub fn api_version(&self) -> &str {
        each_variant!(self, resource => &resource.api_version)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(name: &str, namespace: Option<&str>) -> ObjectMeta {
        ObjectMeta {
            name: name.to_string(),
            namespace: namespace.map(str::to_string),
            ..ObjectMeta::default()
        }
    }

    fn resource<T>(kind: &str, meta: ObjectMeta, spec: T) -> Resource<T> {
        Resource {
            api_version: "v1".to_string(),
            kind: kind.to_string(),
            meta,
            spec,
            source: SourceRef {
                file: PathBuf::from("x.yaml"),
                line: 1,
                column: 1,
            },
        }
    }

    #[test]
    fn namespace_defaults_to_default() {
        assert_eq!(meta("a", None).namespace_or_default(), "default");
        assert_eq!(meta("a", Some("")).namespace_or_default(), "default");
        assert_eq!(meta("a", Some("prod")).namespace_or_default(), "prod");
    }

    #[test]
    fn keys_display_kind_namespace_name() {
        let service = AnyResource::Service(resource(
            "Service",
            meta("reviews", None),
            ServiceSpec::default(),
        ));
        assert_eq!(service.key().to_string(), "Service/default/reviews");
        let namespace = AnyResource::Namespace(resource(
            "Namespace",
            meta("bookinfo", None),
            NamespaceSpec::default(),
        ));
        assert_eq!(namespace.key().to_string(), "Namespace/bookinfo");
    }
}
