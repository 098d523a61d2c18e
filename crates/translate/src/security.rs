//! Security policy for a sidecar's inbound side, as Istio's pilot emits it:
//! which transports each inbound port accepts (PeerAuthentication) and the
//! RBAC filters of its HTTP connection manager (AuthorizationPolicy).
//!
//! Decisions where Istio leaves room:
//! - Istio picks the oldest of several policies at the same level; snapshots
//!   carry no creation time, so the first by name wins.
//! - AuthorizationPolicies with `targetRef(s)` select gateways and waypoints,
//!   never sidecars, and are skipped here.
//! - Rules that need what this proxy cannot check (JWT fields, CUSTOM
//!   authorizers, `serviceAccounts`, `connection.sni`, experimental keys,
//!   path templates) fail closed: an ALLOW or AUDIT rule is dropped (it can
//!   only grant less), a DENY or CUSTOM rule denies every request it could
//!   have matched, so the whole selected workload. Each is logged.

mod mtls;
mod rbac;
mod values;

pub use mtls::{InboundMtls, inbound_mtls};
pub use rbac::rbac_filters;

use std::collections::BTreeMap;

use trellis_api::{ROOT_NAMESPACE, WorkloadSelector};
use trellis_xds::NodeInfo;

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
