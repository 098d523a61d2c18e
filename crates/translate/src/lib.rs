//! The translator: a pure function from a config snapshot and one proxy's
//! identity to that proxy's Envoy xDS resources (Istio's "pilot").
#![deny(unsafe_code)]
#![deny(rust_2018_idioms)]

mod access_log;
mod build;
mod clusters;
mod endpoints;
mod fault;
mod listeners;
mod names;
mod retry_policy;
mod route_action;
mod routes;
mod security;

use trellis_config::Snapshot;
use trellis_xds::{NodeInfo, ProxyResources};

pub use access_log::{DEFAULT_ACCESS_LOG_FILE, ISTIO_TEXT_FORMAT};
pub use names::{inbound_cluster_name, outbound_cluster_name};

/// Mesh-wide choices that come from the control plane's settings (Istio's
/// MeshConfig) rather than from the config snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MeshOptions {
    /// Where every HTTP connection manager writes its access log
    /// (`accessLogFile`); `None` turns access logging off.
    pub access_log_file: Option<String>,
}

/// Istio's defaults: access logging is off unless the mesh config sets
/// `accessLogFile` (Istio's demo profile sets `/dev/stdout`).
impl Default for MeshOptions {
    fn default() -> Self {
        MeshOptions {
            access_log_file: None,
        }
    }
}

/// Everything `node` needs from `snapshot`. Deterministic: the same inputs
/// give byte-identical resources, so unchanged config is never re-pushed.
pub fn translate(snapshot: &Snapshot, node: &NodeInfo) -> ProxyResources {
    translate_with(snapshot, node, &MeshOptions::default())
}

/// [`translate`] with explicit mesh-wide options.
pub fn translate_with(snapshot: &Snapshot, node: &NodeInfo, mesh: &MeshOptions) -> ProxyResources {
    let access_logs = access_log::access_logs(mesh.access_log_file.as_deref());
    let outbound = clusters::outbound(snapshot);
    let endpoints = endpoints::for_clusters(snapshot, &outbound);
    let inbound = listeners::inbound(snapshot, node, &access_logs);
    let mut clusters: Vec<_> = outbound.into_iter().map(|c| c.cluster).collect();
    clusters.extend(inbound.clusters);
    let mut listeners = inbound.listeners;
    listeners.extend(listeners::outbound(node, &access_logs));
    ProxyResources {
        listeners,
        routes: vec![routes::http_proxy(snapshot, node)],
        clusters,
        endpoints,
    }
}
