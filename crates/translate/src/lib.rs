//! The translator: a pure function from a config snapshot and one proxy's
//! identity to that proxy's Envoy xDS resources (Istio's "pilot").
#![deny(unsafe_code)]
#![deny(rust_2018_idioms)]

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

pub use names::{inbound_cluster_name, outbound_cluster_name};

/// Everything `node` needs from `snapshot`. Deterministic: the same inputs
/// give byte-identical resources, so unchanged config is never re-pushed.
pub fn translate(snapshot: &Snapshot, node: &NodeInfo) -> ProxyResources {
    let outbound = clusters::outbound(snapshot);
    let endpoints = endpoints::for_clusters(snapshot, &outbound);
    let inbound = listeners::inbound(snapshot, node);
    let mut clusters: Vec<_> = outbound.into_iter().map(|c| c.cluster).collect();
    clusters.extend(inbound.clusters);
    let mut listeners = inbound.listeners;
    listeners.extend(listeners::outbound(node));
    ProxyResources {
        listeners,
        routes: vec![routes::http_proxy(snapshot, node)],
        clusters,
        endpoints,
    }
}
