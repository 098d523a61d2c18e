//! The kinds Trellis reads: which `apiVersion`s each is served under, how
//! its document becomes a typed resource, and whether fields its type does
//! not have deserve a warning.

use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::gateway_api::GATEWAY_API_VERSIONS;
use crate::istio::{
    ENVOY_FILTER_API_VERSIONS, NETWORKING_API_VERSIONS, PROXY_CONFIG_API_VERSIONS,
    SECURITY_API_VERSIONS, TELEMETRY_API_VERSIONS,
};
use crate::meta::{AnyResource, ObjectMeta, Resource, SourceRef};
use crate::slo::SLO_API_VERSIONS;
use crate::yaml::{DeError, Node, UnknownField, from_node};

/// What is known of a document before its body is read.
pub(super) struct Header<'a> {
    pub(super) api_version: &'a str,
    pub(super) kind: &'a str,
    pub(super) source: SourceRef,
}

/// A typed resource and the fields of its document that its type lacks.
pub(super) struct Read {
    pub(super) resource: AnyResource,
    pub(super) unknown_fields: Vec<UnknownField>,
}

/// How unknown fields of a kind are met, which depends on who writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Schema {
    /// Istio and Gateway API kinds, written by users for the mesh: an
    /// unknown field is a typo or a feature Trellis lacks, so each gets a
    /// warning (as `kubectl` strict decoding warns).
    Strict,
    /// Core Kubernetes kinds: real objects carry many fields the mesh never
    /// reads (status, scheduling, ...), so they are skipped silently.
    Lenient,
}

macro_rules! known_kinds {
    ($($variant:ident: $kind:literal, $schema:ident, $versions:expr, $reader:ident;)*) => {
        /// The kinds Trellis reads, by `kind` and `apiVersion` (Istio and
        /// the Gateway API both define a `Gateway`).
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub(super) enum KnownKind {
            $($variant,)*
        }

        impl KnownKind {
            /// The kind Trellis reads as `kind` under `api_version`, if any.
            pub(super) fn identify(kind: &str, api_version: &str) -> Option<KnownKind> {
                $(if kind == $kind && $versions.contains(&api_version) {
                    return Some(KnownKind::$variant);
                })*
                None
            }

            pub(super) fn schema(self) -> Schema {
                match self {
                    $(KnownKind::$variant => Schema::$schema,)*
                }
            }

            fn read_typed(self, root: &Node, header: Header<'_>) -> Result<Read, DeError> {
                match self {
                    $(KnownKind::$variant => $reader(root, header, AnyResource::$variant),)*
                }
            }
        }
    };
}

const CORE_V1: [&str; 1] = ["v1"];
const APPS_V1: [&str; 1] = ["apps/v1"];
const BATCH_V1: [&str; 1] = ["batch/v1"];
const DISCOVERY_V1: [&str; 1] = ["discovery.k8s.io/v1"];
const ADMISSION_V1: [&str; 1] = ["admissionregistration.k8s.io/v1"];

// `typed` kinds hold their content under `spec`; `top_level` ones beside
// `metadata`.
known_kinds! {
    Service: "Service", Lenient, CORE_V1, typed;
    ServiceAccount: "ServiceAccount", Lenient, CORE_V1, typed;
    Namespace: "Namespace", Lenient, CORE_V1, typed;
    Pod: "Pod", Lenient, CORE_V1, typed;
    Deployment: "Deployment", Lenient, APPS_V1, typed;
    StatefulSet: "StatefulSet", Lenient, APPS_V1, typed;
    DaemonSet: "DaemonSet", Lenient, APPS_V1, typed;
    ReplicaSet: "ReplicaSet", Lenient, APPS_V1, typed;
    Job: "Job", Lenient, BATCH_V1, typed;
    EndpointSlice: "EndpointSlice", Lenient, DISCOVERY_V1, top_level;
    Secret: "Secret", Lenient, CORE_V1, top_level;
    ConfigMap: "ConfigMap", Lenient, CORE_V1, top_level;
    MutatingWebhookConfiguration: "MutatingWebhookConfiguration", Lenient, ADMISSION_V1, top_level;
    VirtualService: "VirtualService", Strict, NETWORKING_API_VERSIONS, typed;
    DestinationRule: "DestinationRule", Strict, NETWORKING_API_VERSIONS, typed;
    WorkloadEntry: "WorkloadEntry", Strict, NETWORKING_API_VERSIONS, typed;
    WorkloadGroup: "WorkloadGroup", Strict, NETWORKING_API_VERSIONS, typed;
    Gateway: "Gateway", Strict, NETWORKING_API_VERSIONS, typed;
    ServiceEntry: "ServiceEntry", Strict, NETWORKING_API_VERSIONS, typed;
    Sidecar: "Sidecar", Strict, NETWORKING_API_VERSIONS, typed;
    ProxyConfig: "ProxyConfig", Strict, PROXY_CONFIG_API_VERSIONS, typed;
    EnvoyFilter: "EnvoyFilter", Strict, ENVOY_FILTER_API_VERSIONS, typed;
    PeerAuthentication: "PeerAuthentication", Strict, SECURITY_API_VERSIONS, typed;
    RequestAuthentication: "RequestAuthentication", Strict, SECURITY_API_VERSIONS, typed;
    AuthorizationPolicy: "AuthorizationPolicy", Strict, SECURITY_API_VERSIONS, typed;
    Telemetry: "Telemetry", Strict, TELEMETRY_API_VERSIONS, typed;
    GatewayClass: "GatewayClass", Strict, GATEWAY_API_VERSIONS, typed;
    KubernetesGateway: "Gateway", Strict, GATEWAY_API_VERSIONS, typed;
    HttpRoute: "HTTPRoute", Strict, GATEWAY_API_VERSIONS, typed;
    GrpcRoute: "GRPCRoute", Strict, GATEWAY_API_VERSIONS, typed;
    ReferenceGrant: "ReferenceGrant", Strict, GATEWAY_API_VERSIONS, typed;
    ServiceLevelObjective: "ServiceLevelObjective", Strict, SLO_API_VERSIONS, typed;
}

impl KnownKind {
    pub(super) fn read(self, root: &Node, header: Header<'_>) -> Result<Read, DeError> {
        let mut read = self.read_typed(root, header)?;
        // A Namespace's labels are what selectors match: kept in its spec
        // so consumers need not reach into metadata.
        if let AnyResource::Namespace(namespace) = &mut read.resource {
            namespace.spec.labels = namespace.meta.labels.clone();
        }
        Ok(read)
    }
}

/// A resource document's `metadata` and `spec`; other top-level fields are
/// reported as unknown and filtered by the loader.
#[derive(Deserialize)]
#[serde(bound(deserialize = "T: DeserializeOwned + Default"))]
struct Envelope<T> {
    #[serde(default)]
    metadata: ObjectMeta,
    #[serde(default)]
    spec: T,
}

fn typed<T: DeserializeOwned + Default>(
    root: &Node,
    header: Header<'_>,
    variant: fn(Resource<T>) -> AnyResource,
) -> Result<Read, DeError> {
    let (envelope, unknown_fields): (Envelope<T>, _) = from_node(root, "")?;
    let resource = Resource {
        api_version: header.api_version.to_string(),
        kind: header.kind.to_string(),
        meta: envelope.metadata,
        spec: envelope.spec,
        source: header.source,
    };
    Ok(Read {
        resource: variant(resource),
        unknown_fields,
    })
}

/// Just the `metadata` of a document.
#[derive(Deserialize)]
struct MetadataOnly {
    #[serde(default)]
    metadata: ObjectMeta,
}

/// A kind whose content sits beside `metadata` (a ConfigMap's `data`): the
/// body is read from the whole document. Only Kubernetes kinds are read so,
/// and their unknown fields are not reported.
fn top_level<T: DeserializeOwned + Default>(
    root: &Node,
    header: Header<'_>,
    variant: fn(Resource<T>) -> AnyResource,
) -> Result<Read, DeError> {
    let (MetadataOnly { metadata }, _) = from_node(root, "")?;
    let (body, _) = from_node(root, "")?;
    let resource = Resource {
        api_version: header.api_version.to_string(),
        kind: header.kind.to_string(),
        meta: metadata,
        spec: body,
        source: header.source,
    };
    Ok(Read {
        resource: variant(resource),
        unknown_fields: Vec::new(),
    })
}
