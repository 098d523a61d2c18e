//! `tcp` and `tls` routes of the VirtualServices bound to a gateway
//! server (bound by `gateways`, sharing a host with the server): where a
//! TCP server's connections go, and which SNI names a passthrough server
//! forwards where. As for HTTP, rules apply in order and the first match
//! wins; a match applies when its `port` is the server's, its `gateways`
//! (if any) name the server's Gateway, and its `sourceLabels` and
//! `sourceNamespace` (if any) are the gateway's own. A match with
//! `destinationSubnets` never applies: a gateway's clients connect to the
//! gateway's own address.

use std::collections::BTreeMap;

use trellis_api::{
    L4MatchAttributes, Resource, RouteDestination, TlsMatchAttributes, VirtualService,
};
use trellis_config::Snapshot;
use trellis_xds::NodeInfo;

use super::hosts::intersection;
use super::routes::{binds, names, shared_hosts};
use super::servers::BoundServer;
use crate::names::outbound_cluster_name;

/// Clusters with their weights, as a tcp_proxy takes them.
pub type WeightedClusters = Vec<(String, u32)>;

/// Where the connections of a plain or terminated TCP server go: the
/// first `tcp` rule that applies, across the bound VirtualServices.
pub fn tcp_destination(
    snapshot: &Snapshot,
    node: &NodeInfo,
    server: &BoundServer<'_>,
    server_port: u16,
) -> Option<WeightedClusters> {
    bound_services(snapshot, server).find_map(|vs| {
        vs.spec.tcp.iter().find_map(|rule| {
            let applies = rule.r#match.is_empty()
                || rule
                    .r#match
                    .iter()
                    .any(|m| Conditions::tcp(m).hold(vs, node, server, server_port));
            applies.then(|| clusters(snapshot, vs, &rule.route, server_port))?
        })
    })
}

/// A passthrough server's SNI routes, first match first: the names of
/// each route (its `sniHosts` within the server's hosts) and its clusters.
pub fn passthrough_routes(
    snapshot: &Snapshot,
    node: &NodeInfo,
    server: &BoundServer<'_>,
    server_port: u16,
) -> Vec<(Vec<String>, WeightedClusters)> {
    let mut routes = Vec::new();
    for vs in bound_services(snapshot, server) {
        for rule in &vs.spec.tls {
            let Some(destination) = clusters(snapshot, vs, &rule.route, server_port) else {
                continue;
            };
            for m in &rule.r#match {
                if !Conditions::tls(m).hold(vs, node, server, server_port) {
                    continue;
                }
                let names = sni_names(&m.sni_hosts, server);
                if !names.is_empty() {
                    routes.push((names, destination.clone()));
                }
            }
        }
    }
    routes
}

/// The VirtualServices bound to the server's Gateway sharing a host with it.
fn bound_services<'a>(
    snapshot: &'a Snapshot,
    server: &'a BoundServer<'a>,
) -> impl Iterator<Item = &'a Resource<VirtualService>> + 'a {
    snapshot
        .virtual_services()
        .filter(|vs| binds(vs, server.gateway) && !shared_hosts(vs, server).is_empty())
}

/// The SNI names both the route and the server take, sorted.
fn sni_names(sni_hosts: &[String], server: &BoundServer<'_>) -> Vec<String> {
    let mut names: Vec<String> = sni_hosts
        .iter()
        .flat_map(|sni| {
            let sni = sni.to_ascii_lowercase();
            server
                .hosts
                .iter()
                .filter_map(move |host| intersection(&sni, host.host()))
        })
        .collect();
    names.sort();
    names.dedup();
    names
}

struct Conditions<'a> {
    port: Option<u32>,
    gateways: &'a [String],
    source_labels: &'a BTreeMap<String, String>,
    source_namespace: Option<&'a str>,
    destination_subnets: bool,
}

impl<'a> Conditions<'a> {
    fn tcp(m: &'a L4MatchAttributes) -> Self {
        Conditions {
            port: m.port,
            gateways: &m.gateways,
            source_labels: &m.source_labels,
            source_namespace: m.source_namespace.as_deref(),
            destination_subnets: !m.destination_subnets.is_empty(),
        }
    }

    fn tls(m: &'a TlsMatchAttributes) -> Self {
        Conditions {
            port: m.port,
            gateways: &m.gateways,
            source_labels: &m.source_labels,
            source_namespace: m.source_namespace.as_deref(),
            destination_subnets: !m.destination_subnets.is_empty(),
        }
    }

    fn hold(
        &self,
        vs: &Resource<VirtualService>,
        node: &NodeInfo,
        server: &BoundServer<'_>,
        server_port: u16,
    ) -> bool {
        self.port.is_none_or(|p| p == u32::from(server_port))
            && (self.gateways.is_empty()
                || self
                    .gateways
                    .iter()
                    .any(|entry| names(entry, vs.namespace(), server.gateway)))
            && self
                .source_labels
                .iter()
                .all(|(key, value)| node.labels.get(key) == Some(value))
            && self.source_namespace.is_none_or(|ns| ns == node.namespace)
            && !self.destination_subnets
    }
}

/// The rule's destinations as outbound clusters (Istio's names) with their
/// weights; `None` when none is a known service port.
fn clusters(
    snapshot: &Snapshot,
    vs: &Resource<VirtualService>,
    route: &[RouteDestination],
    server_port: u16,
) -> Option<WeightedClusters> {
    let single = route.len() == 1;
    let clusters: WeightedClusters = route
        .iter()
        .filter_map(|destination| {
            let weight = if single {
                100
            } else {
                u32::try_from(destination.weight).ok().filter(|w| *w > 0)?
            };
            let target = &destination.destination;
            let service = snapshot
                .registry
                .service_by_host(&target.host, vs.namespace())?;
            let port = target
                .port
                .map(|p| p.number as u16)
                .or_else(|| (service.ports.len() == 1).then(|| service.ports[0].port))
                .unwrap_or(server_port);
            let subset = target.subset.as_deref().unwrap_or("");
            Some((
                outbound_cluster_name(port, subset, &service.hostname),
                weight,
            ))
        })
        .collect();
    if clusters.is_empty() {
        tracing::warn!(
            virtual_service = vs.name(),
            "no destination of the TCP/TLS rule is a known service port"
        );
        return None;
    }
    Some(clusters)
}
