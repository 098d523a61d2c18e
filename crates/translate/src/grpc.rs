//! Resources for proxyless gRPC clients (Istio's `grpc` generator): a gRPC
//! channel to `xds:///HOST:PORT` asks for the listener `HOST:PORT`, follows
//! its connection manager to a route configuration, its routes to clusters
//! and those to endpoints. Only what a gRPC client implements is emitted
//! (it rejects the rest): client-side API listeners with the fault and
//! router filters, routes with weighted clusters, matches, timeouts as
//! maximum stream durations, gRPC retry conditions and faults, EDS
//! clusters with round robin or ring hash, and localities with weights.
//!
//! Built from the sidecar translator's own clusters, routes and endpoints,
//! then narrowed to what gRPC honours. The ADS server sends each client
//! only the listeners and clusters it names.
//!
//! Not yet: mesh mTLS for proxyless clients (gRPC's xDS credentials need
//! certificate provider instances in the bootstrap); clusters are
//! plaintext. ServiceEntries resolved by DNS or STATIC get no resources.

mod clusters;
mod listeners;
mod routes;

use trellis_config::Snapshot;
use trellis_xds::{NodeInfo, ProxyResources};

/// Everything a proxyless gRPC client in `node`'s namespace may ask for.
pub fn translate_proxyless_grpc(snapshot: &Snapshot, node: &NodeInfo) -> ProxyResources {
    let visible = &*crate::scope::outbound_view(snapshot, node);
    let mut outbound = crate::clusters::outbound(visible);
    // gRPC resolves endpoints only through EDS.
    outbound.retain(|c| clusters::is_eds(&c.cluster));
    let mut endpoints = crate::endpoints::for_clusters(visible, node, &outbound);
    clusters::narrow_endpoints(&mut endpoints);
    let services = listeners::routable_ports(&outbound);
    ProxyResources {
        listeners: services
            .iter()
            .flat_map(|target| {
                let names = target.listener_names(&node.namespace);
                names
                    .into_iter()
                    .map(|name| listeners::api_listener(target, name))
            })
            .collect(),
        routes: services
            .iter()
            .map(|target| routes::route_config(visible, node, target))
            .collect(),
        clusters: outbound.iter().map(clusters::grpc_cluster).collect(),
        endpoints,
    }
}
