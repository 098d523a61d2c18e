//! Security policy for a sidecar's inbound side, as Istio's pilot emits it:
//! which transports each inbound port accepts (PeerAuthentication), and the
//! JWT filter (RequestAuthentication) then RBAC filters
//! (AuthorizationPolicy) of its HTTP connection manager.
//!
//! Decisions where Istio leaves room:
//! - Istio picks the oldest of several policies at the same level; snapshots
//!   carry no creation time, so the first by name wins.
//! - AuthorizationPolicies with `targetRef(s)` select gateways and waypoints,
//!   never sidecars, and are skipped here.
//! - Rules that need what this proxy cannot check (`serviceAccounts`,
//!   `connection.sni` on HTTP ports, experimental keys, path templates)
//!   fail closed: an ALLOW or AUDIT rule is dropped (it can only grant
//!   less), a DENY rule denies every request it could have matched, so the
//!   whole selected workload, and a CUSTOM rule sends every request to its
//!   authorizer. Each is logged.
//! - CUSTOM policies whose provider the mesh config lacks (or several
//!   providers for one workload) deny what their rules match, as do CUSTOM
//!   rules on TCP ports.

pub mod ext_authz;
mod jwt;
mod mtls;
mod rbac;
mod values;

pub use mtls::{InboundMtls, inbound_mtls};

use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpFilter;
use trellis_config::Snapshot;

use std::collections::BTreeMap;

use trellis_api::{ROOT_NAMESPACE, WorkloadSelector};
use trellis_xds::NodeInfo;

/// The authentication and authorization filters `node`'s inbound
/// connection managers run before the router, in order: the JWT filter
/// (RequestAuthentication), then the RBAC filters (AuthorizationPolicy),
/// which read what the JWT filter verified.
pub fn rbac_filters(
    snapshot: &Snapshot,
    node: &NodeInfo,
    providers: &[ext_authz::AuthzProvider],
) -> Vec<HttpFilter> {
    jwt::jwt_filter(snapshot, node)
        .into_iter()
        .chain(rbac::rbac_filters(snapshot, node, providers))
        .collect()
}

/// The network RBAC filters (AuthorizationPolicy on connections) that
/// `node`'s inbound TCP chains run before tcp_proxy.
pub fn network_rbac_filters(
    snapshot: &Snapshot,
    node: &NodeInfo,
) -> Vec<envoy_types::pb::envoy::config::listener::v3::Filter> {
    rbac::network_rbac_filters(snapshot, node)
}

/// Whether a policy's selector picks `node` (no selector: every workload of
/// the policy's scope).
fn selects(selector: Option<&WorkloadSelector>, node: &NodeInfo) -> bool {
    selector.is_none_or(|s| labels_match(&s.match_labels, &node.labels))
}

fn has_selector(selector: Option<&WorkloadSelector>) -> bool {
    selector.is_some_and(|s| !s.match_labels.is_empty())
}

fn labels_match(wanted: &BTreeMap<String, String>, labels: &BTreeMap<String, String>) -> bool {
    wanted
        .iter()
        .all(|(key, value)| labels.get(key) == Some(value))
}

fn is_root(namespace: &str) -> bool {
    namespace == ROOT_NAMESPACE
}

#[cfg(test)]
mod test_support;
