#![deny(unsafe_code)]
#![deny(rust_2018_idioms)]
//! Trellis's configuration API: the Istio, Gateway API and Kubernetes
//! resources a mesh reads, and Istio's mesh config, loaded from YAML with
//! the line and column of every field, and validated the way Istio (and the
//! Kubernetes API server) validates them when they are applied.
//!
//! Pure: no I/O beyond the text passed in, no async; the one exception is
//! [`MeshConfig::from_file`], a convenience for the file istiod reads.
//!
//! - Kinds: networking.istio.io (VirtualService, DestinationRule, Gateway,
//!   ServiceEntry, Sidecar, WorkloadEntry, WorkloadGroup, ProxyConfig,
//!   EnvoyFilter), security.istio.io, telemetry.istio.io (Telemetry),
//!   [`gateway_api`] (GatewayClass, Gateway, HTTPRoute, GRPCRoute,
//!   ReferenceGrant) and the Kubernetes kinds the mesh reads, including the
//!   `istio` ConfigMap, whose `mesh` key is validated as a [`MeshConfig`].
//!   Trellis's own kind: [`slo`] (ServiceLevelObjective, trellis.io).
//!
//! - [`parse_yaml`] reads a multi-document text into [`AnyResource`]s, with
//!   every problem as a [`ConfigError`] (`FILE:LINE:COL: FIELD: message`,
//!   1-based line and column). A broken document does not hide the others.
//! - A field an Istio or Gateway API spec does not have is a warning
//!   naming its path (as `kubectl`'s strict decoding warns), never silently
//!   dropped; Kubernetes objects skip unknown fields silently, as real
//!   manifests carry many.
//!   Kinds Trellis does not read are skipped with a warning; EnvoyFilters
//!   are read but warned about, as the data plane does not apply them.
//! - [`validate()`] checks one resource; [`parse_yaml`] only returns
//!   resources that pass, and reports the same kind/namespace/name defined
//!   twice in one text as an error. [`read_documents`] keeps invalid
//!   resources with their errors, for tools that report per resource.
//!
//! Decisions where Istio or Kubernetes leave room:
//! - Any scalar reads as a string where a string is expected (`version: 1`),
//!   and null reads as an empty string, list or map, as Kubernetes reads a
//!   JSON null. Numbers and booleans must be written unquoted.
//! - A `StringMatch` written `{}` is [`StringMatch::Present`].
//! - Durations stay strings in the types (as written); validation requires
//!   them to parse with [`parse_duration`] (Go syntax, as Istio accepts).
//! - A single route destination with weight 0 carries all traffic.
//! - [`SourceRef`] points at the first key of the resource's document.
//! - Cluster-scoped kinds (Namespace, GatewayClass,
//!   MutatingWebhookConfiguration) have an empty namespace in their
//!   [`ResourceKey`], displayed as `Namespace/name`.
//! - A Gateway API Gateway's key kind is `Gateway.gateway.networking.k8s.io`
//!   so that it never conflicts with an Istio Gateway of the same name.
//! - Kinds whose content sits beside `metadata` (ConfigMap, Secret,
//!   EndpointSlice, MutatingWebhookConfiguration) keep it as their `spec`.

mod error;
pub mod gateway_api;
pub mod host;
pub mod istio;
pub mod kube;
mod load;
pub mod mesh_config;
mod meta;
pub mod slo;
pub mod validate;
mod visibility;
mod yaml;

pub use error::{ConfigError, Position};
pub use istio::*;
pub use kube::*;
pub use load::{Document, ParseOutcome, parse_yaml, read_documents};
pub use mesh_config::{MeshConfig, MeshConfigError, MeshConfigOutcome, PathNormalizationMode};
pub use meta::{AnyResource, DEFAULT_NAMESPACE, ObjectMeta, Resource, ResourceKey, SourceRef};
pub use validate::network::Protocol;
pub use validate::{Violation, validate};
pub use visibility::{EXPORT_TO_ANNOTATION, annotation_export_to, exported_to};
