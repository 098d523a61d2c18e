//! The analyzers, one per file, each after the istioctl analyzer that
//! reports the same message codes. Each reads the [`Model`] and appends
//! [`Message`]s.

mod conflicting_gateways;
mod deny_path_normalization;
mod destination_hosts;
mod destination_rule_hosts;
mod destination_subsets;
mod gateway_credentials;
mod gateway_hosts;
mod gateway_references;
mod gateway_selectors;
mod http_match;
mod mesh_host_conflicts;
mod port_names;
pub(crate) mod schema;
mod subset_pods;
mod unreachable_rules;

#[cfg(test)]
mod testing;

use trellis_api::{Destination, VirtualService};

use crate::message::Message;
use crate::model::Model;

/// The pseudo-gateway that stands for every sidecar of the mesh.
pub const MESH_GATEWAY: &str = "mesh";

/// Runs every cross-resource analyzer over `model`.
pub fn run(model: &Model<'_>) -> Vec<Message> {
    let analyzers: [fn(&Model<'_>, &mut Vec<Message>); 13] = [
        destination_hosts::analyze,
        destination_subsets::analyze,
        gateway_references::analyze,
        gateway_hosts::analyze,
        mesh_host_conflicts::analyze,
        unreachable_rules::analyze,
        subset_pods::analyze,
        destination_rule_hosts::analyze,
        port_names::analyze,
        gateway_selectors::analyze,
        conflicting_gateways::analyze,
        gateway_credentials::analyze,
        deny_path_normalization::analyze,
    ];
    let mut messages = Vec::new();
    for analyze in analyzers {
        analyze(model, &mut messages);
    }
    messages
}

/// What a destination of a VirtualService is used for; Istio names mirrors
/// apart in its messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DestinationUse {
    Route,
    Mirror,
}

/// Every destination a VirtualService sends traffic (or mirrored traffic) to.
pub(crate) fn destinations(vs: &VirtualService) -> Vec<(DestinationUse, &Destination)> {
    let mut found = Vec::new();
    for http in &vs.http {
        let routes = http.route.iter().map(|route| &route.destination);
        found.extend(routes.map(|d| (DestinationUse::Route, d)));
        let mirrors = http
            .mirror
            .iter()
            .chain(http.mirrors.iter().map(|m| &m.destination));
        found.extend(mirrors.map(|d| (DestinationUse::Mirror, d)));
    }
    let l4 = vs.tcp.iter().flat_map(|tcp| &tcp.route);
    let tls = vs.tls.iter().flat_map(|tls| &tls.route);
    found.extend(
        l4.chain(tls)
            .map(|route| (DestinationUse::Route, &route.destination)),
    );
    found
}

/// Every gateway a VirtualService names, in its spec and in its matches.
pub(crate) fn gateway_references(vs: &VirtualService) -> Vec<&str> {
    let http = vs
        .http
        .iter()
        .flat_map(|h| &h.r#match)
        .flat_map(|m| &m.gateways);
    let tls = vs
        .tls
        .iter()
        .flat_map(|t| &t.r#match)
        .flat_map(|m| &m.gateways);
    let tcp = vs
        .tcp
        .iter()
        .flat_map(|t| &t.r#match)
        .flat_map(|m| &m.gateways);
    let mut names: Vec<&str> = vs
        .gateways
        .iter()
        .chain(http)
        .chain(tls)
        .chain(tcp)
        .map(String::as_str)
        .collect();
    names.sort_unstable();
    names.dedup();
    names
}

/// True when the VirtualService applies to the mesh's sidecars.
pub(crate) fn is_mesh_bound(vs: &VirtualService) -> bool {
    vs.gateways.is_empty() || vs.gateways.iter().any(|g| g == MESH_GATEWAY)
}
