//! What proxies can share (Istio's SidecarScope idea): a sidecar's config
//! is its outbound half, the same for every sidecar of one
//! [`SharingClass`], and its workload's own half (inbound listeners and
//! clusters, the explicit-proxy listener on its address). The control
//! plane computes and encodes the outbound half once per class and
//! generation, and only the small workload half per proxy.
//!
//! The class holds exactly what the outbound half reads of the node. When
//! the translator starts reading more of it, `SharingClass` must follow:
//! the `sharing` test checks that both halves together equal
//! [`crate::translate_with`] for every golden input.

use std::collections::BTreeMap;

use trellis_api::AnyResource;
use trellis_config::Snapshot;
use trellis_xds::node::{Interception, ProxyKind};
use trellis_xds::{NodeInfo, ProxyResources};

use prost::Message;

use crate::{
    MeshOptions, access_log, capture, clusters, endpoints, listeners, scope, telemetry, trace,
};

/// The inputs of a sidecar's outbound half.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SharingClass {
    interception: Interception,
    namespace: String,
    /// Only when some resource matches on proxy labels (`sourceLabels`,
    /// `failoverPriority`): otherwise labels do not change the output.
    labels: Option<BTreeMap<String, String>>,
    ipv6: bool,
    /// The locality endpoints are prioritized from (the node's, else the
    /// registry's for its address).
    locality: String,
    outbound_port: u16,
    /// The client-side `tracing` of the outbound connection managers,
    /// encoded: Telemetry can select workloads by label.
    outbound_tracing: Option<Vec<u8>>,
    /// The client side's Telemetry metrics and access logs, encoded, when
    /// a Telemetry resource applies.
    outbound_telemetry: Option<Vec<u8>>,
    /// The Sidecar resource that scopes the outbound half, if any
    /// (`namespace/name`).
    sidecar: Option<String>,
}

impl SharingClass {
    /// `None` for gateways: their config is all their own.
    pub fn of(snapshot: &Snapshot, node: &NodeInfo, mesh: &MeshOptions) -> Option<SharingClass> {
        if node.kind != ProxyKind::Sidecar {
            return None;
        }
        let locality = if node.locality.is_empty() {
            snapshot.registry.locality_of(node.ip).unwrap_or_default()
        } else {
            node.locality.as_str()
        };
        Some(SharingClass {
            interception: node.interception,
            namespace: node.namespace.clone(),
            labels: reads_proxy_labels(snapshot).then(|| node.labels.clone()),
            ipv6: node.ip.is_ipv6(),
            locality: locality.to_string(),
            outbound_port: node.outbound_port,
            outbound_tracing: outbound_tracing(snapshot, node, mesh),
            outbound_telemetry: telemetry::client_side_digest(snapshot, node, mesh),
            sidecar: scope::applicable_sidecar(snapshot, node)
                .map(|sidecar| format!("{}/{}", sidecar.namespace(), sidecar.name())),
        })
    }
}

fn outbound_tracing(snapshot: &Snapshot, node: &NodeInfo, mesh: &MeshOptions) -> Option<Vec<u8>> {
    if mesh.tracing.providers.is_empty() {
        return None;
    }
    trace::hcm_tracing(snapshot, node, &mesh.tracing, false).map(|t| t.encode_to_vec())
}

/// Whether any resource selects on the proxy's own labels outside its
/// workload half.
fn reads_proxy_labels(snapshot: &Snapshot) -> bool {
    let source_labels = snapshot.virtual_services().any(|vs| {
        let spec = &vs.spec;
        spec.http
            .iter()
            .flat_map(|r| &r.r#match)
            .any(|m| !m.source_labels.is_empty())
            || spec
                .tls
                .iter()
                .flat_map(|r| &r.r#match)
                .any(|m| !m.source_labels.is_empty())
            || spec
                .tcp
                .iter()
                .flat_map(|r| &r.r#match)
                .any(|m| !m.source_labels.is_empty())
    });
    let failover_priority = snapshot.destination_rules().any(|rule| {
        let spec = &rule.spec;
        let policies = spec.traffic_policy.iter().chain(
            spec.subsets
                .iter()
                .filter_map(|s| s.traffic_policy.as_ref()),
        );
        policies.into_iter().any(|policy| {
            policy
                .load_balancer
                .iter()
                .chain(
                    policy
                        .port_level_settings
                        .iter()
                        .filter_map(|p| p.load_balancer.as_ref()),
                )
                .filter_map(|lb| lb.locality_lb_setting.as_ref())
                .any(|setting| !setting.failover_priority.is_empty())
        })
    });
    source_labels || failover_priority
}

/// The class's outbound clusters and their endpoints (both follow
/// endpoint changes: clusters name the identities behind a service).
pub fn shared_clusters(snapshot: &Snapshot, node: &NodeInfo) -> ProxyResources {
    let visible = &*scope::outbound_view(snapshot, node);
    let outbound = clusters::outbound(visible);
    let endpoints = endpoints::for_clusters(visible, node, &outbound);
    let mut clusters: Vec<_> = outbound.into_iter().map(|c| c.cluster).collect();
    if node.interception == Interception::Redirect {
        clusters.extend(capture::base_clusters(node));
    }
    ProxyResources {
        clusters,
        endpoints,
        ..Default::default()
    }
}

/// The class's outbound listeners and routes, which read no endpoints:
/// a change of endpoints only leaves them as they are.
pub fn shared_listeners(
    snapshot: &Snapshot,
    node: &NodeInfo,
    mesh: &MeshOptions,
) -> ProxyResources {
    let mesh = &*scope::mesh_options(snapshot, node, mesh);
    let visible = &*scope::outbound_view(snapshot, node);
    match node.interception {
        Interception::None => ProxyResources {
            routes: vec![crate::explicit_proxy_routes(visible, node, mesh)],
            ..Default::default()
        },
        Interception::Redirect => {
            let (mut listeners, routes) =
                capture::outbound_listeners(visible, node, mesh, &access_logs(mesh));
            trace::apply(&mut listeners, snapshot, node, &mesh.tracing);
            telemetry::apply(&mut listeners, snapshot, node, mesh);
            ProxyResources {
                listeners,
                routes,
                ..Default::default()
            }
        }
    }
}

/// The workload's own half of a sidecar's config.
pub fn workload_resources(
    snapshot: &Snapshot,
    node: &NodeInfo,
    mesh: &MeshOptions,
) -> ProxyResources {
    let access_logs = access_logs(mesh);
    let (inbound, mut listeners) = match node.interception {
        Interception::None => (
            listeners::inbound(snapshot, node, &access_logs, mesh),
            listeners::outbound(node, &access_logs),
        ),
        Interception::Redirect => (
            capture::workload_inbound(snapshot, node, &access_logs, mesh),
            Vec::new(),
        ),
    };
    listeners.extend(inbound.listeners);
    trace::apply(&mut listeners, snapshot, node, &mesh.tracing);
    telemetry::apply(&mut listeners, snapshot, node, mesh);
    ProxyResources {
        listeners,
        clusters: inbound.clusters,
        ..Default::default()
    }
}

/// Whether `before` and `after` differ at most in WorkloadEntries (the
/// registry's endpoints, also what the Kubernetes source makes of pods),
/// so that [`shared_listeners`] of `before` still hold.
pub fn only_endpoints_changed(before: &Snapshot, after: &Snapshot) -> bool {
    let config = |snapshot: &'_ Snapshot| {
        snapshot
            .resources
            .iter()
            .filter(|r| !matches!(r.as_ref(), AnyResource::WorkloadEntry(_)))
            .cloned()
            .collect::<Vec<_>>()
    };
    let (before, after) = (config(before), config(after));
    before.len() == after.len()
        && before
            .iter()
            .zip(&after)
            .all(|(a, b)| std::sync::Arc::ptr_eq(a, b) || a == b)
}

fn access_logs(
    mesh: &MeshOptions,
) -> Vec<envoy_types::pb::envoy::config::accesslog::v3::AccessLog> {
    access_log::access_logs(
        mesh.access_log_file.as_deref(),
        mesh.access_log_format.as_deref(),
        mesh.access_log_encoding,
    )
}
