//! The mesh's security posture: which workloads accept plaintext (their
//! effective PeerAuthentication mode, as the translator computes it for
//! their sidecars), which edges carried plaintext requests, and which
//! requests policy refused (response flags `RBAC` and `UAEX`).
//!
//! Workloads are those with a connected sidecar: their proxies' identity
//! (namespace, labels) is what the translator picks policies by. Gateways
//! are left out, as PeerAuthentication does not apply to them.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;
use trellis_config::Snapshot;
use trellis_translate::{InboundMtls, inbound_mtls};
use trellis_xds::NodeInfo;
use trellis_xds::node::ProxyKind;

use super::query::{self, window_rounds};
use super::store::{Counters, EdgeLabels, Store};

#[derive(Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Posture {
    pub window_seconds: f64,
    /// Accepting plaintext first, then by namespace and name.
    pub workloads: Vec<WorkloadPosture>,
    /// Source workload -> service edges that carried plaintext requests.
    pub plaintext_edges: Vec<PlaintextEdge>,
    pub denials: Vec<Denial>,
}

#[derive(Debug, Serialize, PartialEq, Eq, PartialOrd, Ord, Clone)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadPosture {
    /// `workload/NAMESPACE/NAME`, as the graph names it.
    pub id: String,
    pub name: String,
    pub namespace: String,
    /// The workload-wide mode: `STRICT`, `PERMISSIVE` or `DISABLE`.
    pub mode: &'static str,
    /// `all`, `some` (port-level modes differ) or `none` of its ports.
    pub accepts_plaintext: &'static str,
    /// Ports whose mode differs from the workload's.
    pub ports: Vec<PortMode>,
    /// Sidecars of the workload with this posture.
    pub proxies: usize,
}

#[derive(Debug, Serialize, PartialEq, Eq, PartialOrd, Ord, Clone)]
#[serde(rename_all = "camelCase")]
pub struct PortMode {
    pub port: u16,
    pub mode: &'static str,
}

#[derive(Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PlaintextEdge {
    pub source: String,
    pub target: String,
    pub requests_per_second: f64,
    /// `none` (every request plaintext) or `mixed`.
    pub security: &'static str,
}

#[derive(Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Denial {
    /// `workload/NAMESPACE/NAME` of the caller.
    pub source: String,
    /// `service/NAMESPACE/NAME` called.
    pub target: String,
    /// `workload/NAMESPACE/NAME` whose sidecar refused.
    pub destination: String,
    /// Refused by an AuthorizationPolicy (`RBAC`) in the window.
    pub rbac: f64,
    /// Refused by an external authorizer (`UAEX`) in the window.
    pub ext_authz: f64,
    pub requests_per_second: f64,
}

fn mode_name(mode: InboundMtls) -> &'static str {
    match mode {
        InboundMtls::Strict => "STRICT",
        InboundMtls::Permissive => "PERMISSIVE",
        InboundMtls::Disable => "DISABLE",
    }
}

/// One sidecar's posture (`proxies` is 1).
pub fn workload_posture(snapshot: &Snapshot, node: &NodeInfo) -> WorkloadPosture {
    // Port 0 names no port: the workload-wide mode.
    let workload_mode = inbound_mtls(snapshot, node, 0);
    // Only a port a policy of the namespace names can differ from it.
    let mut ports: Vec<PortMode> = snapshot
        .peer_authentications()
        .filter(|policy| policy.namespace() == node.namespace)
        .flat_map(|policy| policy.spec.port_level_mtls.keys())
        .filter_map(|&port| u16::try_from(port).ok())
        .filter_map(|port| {
            let mode = inbound_mtls(snapshot, node, port);
            (mode != workload_mode).then(|| PortMode {
                port,
                mode: mode_name(mode),
            })
        })
        .collect();
    ports.sort();
    ports.dedup();
    let plaintext_ports = ports
        .iter()
        .filter(|p| p.mode != mode_name(InboundMtls::Strict))
        .count();
    let accepts_plaintext = match (workload_mode.accepts_plaintext(), plaintext_ports) {
        (true, _) if plaintext_ports == ports.len() => "all",
        (false, 0) => "none",
        _ => "some",
    };
    let name = if node.workload_name.is_empty() {
        &node.pod_name
    } else {
        &node.workload_name
    };
    WorkloadPosture {
        id: format!("workload/{}/{name}", node.namespace),
        name: name.clone(),
        namespace: node.namespace.clone(),
        mode: mode_name(workload_mode),
        accepts_plaintext,
        ports,
        proxies: 1,
    }
}

/// The posture of every connected sidecar's workload, and what the
/// store saw over `window`.
pub fn posture(
    store: &Store,
    snapshot: Option<&Snapshot>,
    nodes: &[NodeInfo],
    window: Duration,
) -> Posture {
    let mut workloads: BTreeMap<WorkloadPosture, usize> = BTreeMap::new();
    if let Some(snapshot) = snapshot {
        for node in nodes.iter().filter(|n| n.kind == ProxyKind::Sidecar) {
            *workloads
                .entry(workload_posture(snapshot, node))
                .or_default() += 1;
        }
    }
    let mut workloads: Vec<WorkloadPosture> = workloads
        .into_iter()
        .map(|(posture, proxies)| WorkloadPosture { proxies, ..posture })
        .collect();
    workloads.sort_by_key(|w| {
        (
            w.accepts_plaintext == "none",
            w.namespace.clone(),
            w.id.clone(),
        )
    });
    let graph = query::graph(store, window);
    let plaintext_edges = graph
        .edges
        .into_iter()
        .filter(|e| e.source.starts_with("workload/") && e.security != "mutual_tls")
        .map(|e| PlaintextEdge {
            source: e.source,
            target: e.target,
            requests_per_second: e.signals.requests_per_second,
            security: e.security,
        })
        .collect();
    Posture {
        window_seconds: graph.window_seconds,
        workloads,
        plaintext_edges,
        denials: denials(store, window),
    }
}

/// Requests refused by policy over `window`, by caller, service and the
/// workload that refused, most first.
fn denials(store: &Store, window: Duration) -> Vec<Denial> {
    let Some((first, last)) = window_rounds(store, window) else {
        return Vec::new();
    };
    let seconds = (last.at_ms - first.at_ms) as f64 / 1000.0;
    let mut by_edge: BTreeMap<(String, String, String), Counters> = BTreeMap::new();
    for (labels, _, counters) in store.increases(first.number) {
        if counters.rbac_denied + counters.ext_authz_denied > 0.0 {
            by_edge.entry(ids(labels)).or_default().add(&counters);
        }
    }
    let mut denials: Vec<Denial> = by_edge
        .into_iter()
        .map(|((source, target, destination), counters)| Denial {
            source,
            target,
            destination,
            rbac: counters.rbac_denied,
            ext_authz: counters.ext_authz_denied,
            requests_per_second: (counters.rbac_denied + counters.ext_authz_denied) / seconds,
        })
        .collect();
    denials.sort_by(|a, b| b.requests_per_second.total_cmp(&a.requests_per_second));
    denials
}

fn ids(labels: &EdgeLabels) -> (String, String, String) {
    (
        format!(
            "workload/{}/{}",
            labels.source_namespace, labels.source_workload
        ),
        format!(
            "service/{}/{}",
            labels.service_namespace, labels.service_name
        ),
        format!(
            "workload/{}/{}",
            labels.destination_namespace, labels.destination_workload
        ),
    )
}

#[cfg(test)]
#[path = "posture_tests.rs"]
mod tests;
