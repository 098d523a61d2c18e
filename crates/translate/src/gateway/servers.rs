//! Which Gateway servers a router serves, grouped by port: Gateways whose
//! selector matches the router's labels (in any namespace, as Istio does by
//! default), and of their servers those this proxy can serve (see
//! [`server_kind`]). A server it cannot serve is skipped with a warning
//! naming the reason, never silently.

use std::collections::BTreeMap;

use trellis_api::{AnyResource, Gateway, Resource, Server};
use trellis_config::Snapshot;
use trellis_xds::NodeInfo;
use trellis_xds::node::Interception;

use super::hosts::ServerHost;
use super::server_kind::{ServerKind, Skipped, Transport, server_kind};

/// Without root (local mode, no capture) a port below 1024 cannot be
/// bound, so a router serves it at the port plus this offset: a Gateway
/// server on port 80 listens on 10080.
pub const UNPRIVILEGED_PORT_OFFSET: u16 = 10_000;
const FIRST_UNPRIVILEGED_PORT: u16 = 1024;

/// Where a router listens for a Gateway server port.
pub fn listen_port(server_port: u16, interception: Interception) -> u16 {
    if interception == Interception::None && server_port < FIRST_UNPRIVILEGED_PORT {
        server_port + UNPRIVILEGED_PORT_OFFSET
    } else {
        server_port
    }
}

/// One listener of a router and the servers behind it.
pub struct PortPlan<'a> {
    /// The Gateway servers' `port.number`: what routes match on.
    pub server_port: u16,
    /// Where the listener binds (see [`listen_port`]).
    pub listen_port: u16,
    /// HTTP servers share one route table, TCP servers one chain; TLS
    /// servers are filter chains chosen by SNI.
    pub transport: Transport,
    pub servers: Vec<BoundServer<'a>>,
}

/// A server and the Gateway it belongs to.
pub struct BoundServer<'a> {
    pub gateway: &'a Resource<Gateway>,
    /// `port.name`, part of an HTTPS server's route name.
    pub port_name: String,
    pub hosts: Vec<ServerHost>,
    pub kind: ServerKind,
}

impl BoundServer<'_> {
    /// HTTPS, or TLS terminated before TCP routes.
    pub fn terminates_tls(&self) -> bool {
        matches!(
            self.kind,
            ServerKind::Https(_) | ServerKind::TerminatedTcp(_)
        )
    }

    /// SNI names of a terminating server's chain: its hosts; none when a host
    /// is `*` (the chain then takes any name).
    pub fn server_names(&self) -> Vec<String> {
        let hosts: Vec<&str> = self.hosts.iter().map(|h| h.host()).collect();
        if hosts.contains(&"*") {
            return Vec::new();
        }
        let mut names: Vec<String> = hosts.into_iter().map(str::to_owned).collect();
        names.sort();
        names.dedup();
        names
    }
}

/// Gateways that configure this router (sorted by namespace, then name).
pub fn selecting<'a>(
    snapshot: &'a Snapshot,
    node: &'a NodeInfo,
) -> impl Iterator<Item = &'a Resource<Gateway>> + 'a {
    snapshot
        .resources
        .iter()
        .filter_map(|resource| match resource.as_ref() {
            AnyResource::Gateway(gateway) => Some(gateway),
            _ => None,
        })
        .filter(|gateway| {
            gateway
                .spec
                .selector
                .iter()
                .all(|(key, value)| node.labels.get(key) == Some(value))
        })
}

/// The listeners to build, by listen port; skipped servers are logged.
pub fn served_ports<'a>(snapshot: &'a Snapshot, node: &'a NodeInfo) -> Vec<PortPlan<'a>> {
    let mut ports: BTreeMap<u16, PortPlan<'a>> = BTreeMap::new();
    for gateway in selecting(snapshot, node) {
        for server in &gateway.spec.servers {
            if let Err(reason) = add_server(&mut ports, gateway, server, node.interception) {
                tracing::warn!(
                    gateway = %format!("{}/{}", gateway.namespace(), gateway.name()),
                    server = server.name.as_deref().unwrap_or(""),
                    port = server.port.as_ref().map_or(0, |p| p.number),
                    "gateway server skipped: {reason}"
                );
            }
        }
    }
    ports.into_values().collect()
}

fn add_server<'a>(
    ports: &mut BTreeMap<u16, PortPlan<'a>>,
    gateway: &'a Resource<Gateway>,
    server: &'a Server,
    interception: Interception,
) -> Result<(), Skipped> {
    let port = server.port.as_ref().ok_or(Skipped::NoPort)?;
    let server_port = u16::try_from(port.number)
        .ok()
        .filter(|p| *p != 0)
        .ok_or(Skipped::InvalidPort(port.number))?;
    let kind = server_kind(&port.protocol, server.tls.as_ref())?;
    if let Some(bind) = &server.bind {
        return Err(Skipped::Bind(bind.clone()));
    }
    let listen_port = listen_port(server_port, interception);
    let transport = kind.transport();
    let plan = ports.entry(listen_port).or_insert_with(|| PortPlan {
        server_port,
        listen_port,
        transport,
        servers: Vec::new(),
    });
    if plan.server_port != server_port {
        return Err(Skipped::PortClash {
            listen_port,
            other: plan.server_port,
        });
    }
    if plan.transport != transport {
        return Err(Skipped::TransportClash(server_port));
    }
    let bound = BoundServer {
        gateway,
        port_name: port.name.clone(),
        hosts: server.hosts.iter().map(|h| ServerHost::parse(h)).collect(),
        kind,
    };
    // Passthrough chains come from routes' SNI hosts (see passthrough.rs).
    if bound.terminates_tls() {
        let names = bound.server_names();
        let taken = |s: &BoundServer<'_>| s.terminates_tls() && s.server_names() == names;
        if plan.servers.iter().any(taken) {
            return Err(Skipped::DuplicateServerNames(names));
        }
    }
    plan.servers.push(bound);
    Ok(())
}
