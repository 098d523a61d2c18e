//! A router (Istio's gateway proxy, `trellis proxy --type router`): one
//! listener per port of the Gateway servers that select it. HTTP servers
//! share an HTTP connection manager whose routes (RDS `http.PORT`) come
//! from the VirtualServices bound to their Gateways. TLS servers are
//! filter chains chosen by SNI: an HTTPS server terminates TLS (modes
//! SIMPLE, MUTUAL, OPTIONAL_MUTUAL with its `credentialName`, ISTIO_MUTUAL
//! with the mesh certificate) and has routes of its own; a TLS server
//! terminates the same way before its VirtualServices' `tcp` routes; a
//! PASSTHROUGH server forwards each `tls` route's `sniHosts` untouched.
//! TCP servers forward to their `tcp` routes' destination. The clusters are
//! the sidecars' outbound clusters (mesh mTLS to mesh workloads); a router
//! has no inbound listeners and no explicit HTTP proxy listener.
//!
//! Decisions:
//! - A Gateway's `selector` matches routers in any namespace; an empty
//!   selector matches every router.
//! - Listeners are named like Istio's (`0.0.0.0_8080`) but bind the
//!   proxy's own address, as every listener in local mode does.
//! - Without traffic capture (local mode, no root) ports below 1024 listen
//!   at port + [`UNPRIVILEGED_PORT_OFFSET`] (see [`listen_port`]); routes
//!   still match the server's own port.
//! - Servers this proxy cannot serve (see `server_kind.rs`) are skipped
//!   with a warning that says why.

mod hosts;
mod l4_routes;
mod listeners;
mod routes;
mod server_kind;
mod servers;
mod tls_context;

use envoy_types::pb::envoy::config::accesslog::v3::AccessLog;
use envoy_types::pb::envoy::config::listener::v3::{FilterChain, Listener};
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpFilter;
use trellis_api::PathNormalizationMode;
use trellis_config::Snapshot;
use trellis_xds::NodeInfo;

use listeners::HttpManager;
use server_kind::{ServerKind, Transport};
use servers::{BoundServer, PortPlan};
pub use servers::{UNPRIVILEGED_PORT_OFFSET, listen_port};

/// A router's listeners and their route configurations.
pub struct GatewayResources {
    pub listeners: Vec<Listener>,
    pub routes: Vec<RouteConfiguration>,
}

/// What chains are built from.
struct Context<'a> {
    snapshot: &'a Snapshot,
    node: &'a NodeInfo,
    access_logs: &'a [AccessLog],
    manager: HttpManager<'a>,
}

pub fn gateway_resources(
    snapshot: &Snapshot,
    node: &NodeInfo,
    access_logs: &[AccessLog],
    paths: PathNormalizationMode,
    security: &[HttpFilter],
) -> GatewayResources {
    let context = Context {
        snapshot,
        node,
        access_logs,
        manager: HttpManager {
            access_logs,
            paths,
            security,
        },
    };
    let mut resources = GatewayResources {
        listeners: Vec::new(),
        routes: Vec::new(),
    };
    for plan in servers::served_ports(snapshot, node) {
        let chains = match plan.transport {
            Transport::Http => vec![http_chain(&context, &plan, &mut resources.routes)],
            Transport::Tls => tls_chains(&context, &plan, &mut resources.routes),
            Transport::Tcp => tcp_chain(&context, &plan).into_iter().collect(),
        };
        if chains.is_empty() {
            continue; // nothing routed yet: no listener rather than one refusing all
        }
        resources.listeners.push(listeners::listener(
            node,
            plan.listen_port,
            chains,
            plan.transport == Transport::Tls,
        ));
    }
    resources
}

/// The chain of a port's HTTP servers, with one route configuration.
fn http_chain(
    context: &Context<'_>,
    plan: &PortPlan<'_>,
    route_configurations: &mut Vec<RouteConfiguration>,
) -> FilterChain {
    let name = routes::http_route_name(plan.listen_port);
    route_configurations.push(routes::route_configuration(
        context.snapshot,
        context.node,
        name.clone(),
        plan.server_port,
        &plan.servers,
    ));
    listeners::http_chain(plan.listen_port, name, &context.manager)
}

/// A chain per terminating server (HTTPS servers with their own route
/// configuration), then one per passthrough route; a chain whose SNI names
/// an earlier chain already takes is dropped with a warning.
fn tls_chains(
    context: &Context<'_>,
    plan: &PortPlan<'_>,
    route_configurations: &mut Vec<RouteConfiguration>,
) -> Vec<FilterChain> {
    let mut chains: Vec<FilterChain> = Vec::new();
    for server in &plan.servers {
        let built = match &server.kind {
            ServerKind::Https(termination) => {
                let name = routes::https_route_name(plan.listen_port, server);
                route_configurations.push(routes::route_configuration(
                    context.snapshot,
                    context.node,
                    name.clone(),
                    plan.server_port,
                    std::slice::from_ref(server),
                ));
                vec![listeners::https_chain(
                    plan.listen_port,
                    server.server_names(),
                    termination,
                    name,
                    &context.manager,
                )]
            }
            ServerKind::TerminatedTcp(termination) => {
                terminated_tcp_chain(context, plan, server, termination)
                    .into_iter()
                    .collect()
            }
            ServerKind::Passthrough => passthrough_chains(context, plan, server),
            ServerKind::Http { .. } | ServerKind::Tcp => Vec::new(), // not on a TLS port
        };
        for chain in built {
            if chains
                .iter()
                .any(|c| c.filter_chain_match == chain.filter_chain_match)
            {
                tracing::warn!(
                    port = plan.server_port,
                    "gateway TLS route skipped: an earlier server or route takes its SNI names"
                );
                continue;
            }
            chains.push(chain);
        }
    }
    chains
}

fn terminated_tcp_chain(
    context: &Context<'_>,
    plan: &PortPlan<'_>,
    server: &BoundServer<'_>,
    termination: &server_kind::Termination,
) -> Option<FilterChain> {
    let clusters =
        l4_routes::tcp_destination(context.snapshot, context.node, server, plan.server_port)?;
    let filter =
        listeners::tcp_proxy_filter(stat_prefix(&clusters), &clusters, context.access_logs);
    Some(listeners::terminated_tcp_chain(
        server.server_names(),
        termination,
        filter,
    ))
}

fn passthrough_chains(
    context: &Context<'_>,
    plan: &PortPlan<'_>,
    server: &BoundServer<'_>,
) -> Vec<FilterChain> {
    l4_routes::passthrough_routes(context.snapshot, context.node, server, plan.server_port)
        .into_iter()
        .map(|(names, clusters)| {
            let filter =
                listeners::tcp_proxy_filter(stat_prefix(&clusters), &clusters, context.access_logs);
            listeners::sni_chain(names, filter)
        })
        .collect()
}

/// The chain of a port's plain TCP servers: the first server with a
/// route decides (Istio serves one TCP destination per port).
fn tcp_chain(context: &Context<'_>, plan: &PortPlan<'_>) -> Option<FilterChain> {
    let clusters = plan.servers.iter().find_map(|server| {
        l4_routes::tcp_destination(context.snapshot, context.node, server, plan.server_port)
    })?;
    let filter =
        listeners::tcp_proxy_filter(stat_prefix(&clusters), &clusters, context.access_logs);
    Some(listeners::sni_chain(Vec::new(), filter))
}

/// Istio's tcp_proxy stat prefix: the cluster, or for a split the first.
fn stat_prefix(clusters: &[(String, u32)]) -> String {
    clusters
        .first()
        .map(|(name, _)| name.clone())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests;
