#![deny(unsafe_code)]
#![deny(rust_2018_idioms)]
//! `trellis validate` and `trellis analyze`.
//!
//! - `validate` reads manifests and applies the checks Istio's admission
//!   webhook makes (the api crate's validation), printing
//!   `error: FILE:LINE:COL: FIELD: message` per problem, like
//!   `istioctl validate`.
//! - `analyze` looks across resources for the mistakes `istioctl analyze`
//!   finds, with its message codes, names, levels and formats: references
//!   to missing hosts, subsets and gateways (IST0101), schema errors
//!   (IST0106), conflicting mesh VirtualService hosts (IST0109), port names
//!   (IST0118), unreachable rules and dead matches (IST0130, IST0131),
//!   VirtualService hosts a Gateway does not serve (IST0132), subsets that
//!   select no pods (IST0173) and DestinationRule hosts that match no
//!   service (IST0174).
//!
//! Decisions where istioctl leaves room:
//! - The text format is `Level [CODE] (Kind namespace/name) message`; the
//!   file and line of the resource are in the JSON/YAML `reference` field.
//! - The exit status follows the failure threshold in every output format
//!   (istioctl only sets it for text, which its users report as a bug).
//! - Without Pods in the input, Deployments' pod templates stand for pods.
//! - Messages are reported for one namespace (`default`) unless
//!   `--all-namespaces`; cluster-scoped resources are always included.

mod analyze;
mod analyzers;
pub mod credentials;
pub mod host;
pub mod input;
pub mod message;
pub mod model;
pub mod output;
pub mod suppress;
mod validate;

pub use analyze::{
    AnalyzeArgs, AnalyzeError, EXIT_ANALYZER_FOUND_ISSUES, EXIT_DATA_ERROR, Scope, analyze,
    run_analyze,
};
pub use validate::{ValidateArgs, run_validate};
