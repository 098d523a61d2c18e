//! Sidecar injection, with Istio's semantics: `trellis kube-inject` adds
//! the proxy to the pods of manifests offline, and `trellis inject-webhook`
//! does the same as a Kubernetes mutating admission webhook.
//!
//! What a pod gets (see `template` for the details):
//! - init container `istio-init` running `trellis iptables` with Istio's
//!   capture arguments, adjusted by `traffic.sidecar.istio.io/*`;
//! - container `istio-proxy` running `trellis proxy` as UID/GID 1337, first
//!   in the list when `holdApplicationUntilProxyStarts` (the default);
//! - the volumes it needs (projected `istio-token`, the root certificate
//!   ConfigMap, pod info, scratch space);
//! - Istio's labels and annotations (`sidecar.istio.io/status`, canonical
//!   service labels, `security.istio.io/tlsMode`, Prometheus scraping
//!   through 15020).
//!
//! Objects are handled as JSON values so every field injection does not
//! touch survives unchanged.
#![deny(unsafe_code)]
#![deny(rust_2018_idioms)]

mod cli;
mod config;
mod error;
mod manifest;
pub mod names;
mod patch;
mod pod;
mod selection;
mod server;
mod template;
mod webhook;
mod webhook_config;

pub use cli::{InjectWebhookArgs, InjectorFlags, KubeInjectArgs, run_kube_inject, run_webhook};
pub use config::{InjectConfig, MeshConfig, ProxyConfig, Revision};
pub use error::InjectError;
pub use manifest::{inject_document, inject_manifest, pod_workload_name};
pub use patch::{PatchOperation, diff};
pub use pod::{Outcome, inject_pod};
pub use selection::{Decision, Selectors, SkipReason, pod_opt_out, should_inject};
pub use server::{serve, tls_config};
pub use webhook::{ReviewError, WebhookOptions, review};
pub use webhook_config::webhook_configuration;
