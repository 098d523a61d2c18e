#![deny(unsafe_code)]
#![deny(rust_2018_idioms)]
//! Trellis's configuration API: the Istio and Kubernetes resources a mesh
//! reads, loaded from YAML with the line and column of every field, and
//! validated the way Istio validates them when they are applied.
//!
//! Pure: no I/O beyond the text passed in, no async.
//!
//! - [`parse_yaml`] reads a multi-document text into [`AnyResource`]s, with
//!   every problem as a [`ConfigError`] (`FILE:LINE:COL: FIELD: message`,
//!   1-based line and column). A broken document does not hide the others.
//! - Istio specs reject unknown fields, as Istio does; Kubernetes objects
//!   ignore them, as real manifests carry many. Kinds Trellis does not
//!   handle (ConfigMap, EnvoyFilter...) are skipped with a warning.
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
//! - Cluster-scoped kinds (Namespace) have an empty namespace in their
//!   [`ResourceKey`], displayed as `Namespace/name`.

mod error;
pub mod istio;
pub mod kube;
mod load;
mod meta;
pub mod validate;
mod yaml;

pub use error::{ConfigError, Position};
pub use istio::*;
pub use kube::*;
pub use load::{Document, ParseOutcome, parse_yaml, read_documents};
pub use meta::{AnyResource, DEFAULT_NAMESPACE, ObjectMeta, Resource, ResourceKey, SourceRef};
pub use validate::network::Protocol;
pub use validate::{Violation, validate};
