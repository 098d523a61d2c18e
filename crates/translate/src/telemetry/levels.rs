//! Which Telemetry resources apply to a proxy, least specific first: the
//! root namespace's, then its namespace's, then those whose selector
//! matches its labels. Later levels override earlier ones.

use trellis_api::{AnyResource, ROOT_NAMESPACE, Telemetry, WorkloadMode};
use trellis_config::Snapshot;
use trellis_xds::NodeInfo;

/// The Telemetry specs for `node`, in the order they merge.
pub fn applicable<'a>(snapshot: &'a Snapshot, node: &NodeInfo) -> Vec<&'a Telemetry> {
    let mut levels: [Vec<&Telemetry>; 3] = Default::default();
    for resource in &snapshot.resources {
        let AnyResource::Telemetry(telemetry) = &**resource else {
            continue;
        };
        // Policy attachment (Gateway, Service) is not implemented; the
        // loader warns of it. Applying it namespace-wide would widen it.
        let spec = &telemetry.spec;
        if spec.target_ref.is_some() || !spec.target_refs.is_empty() {
            continue;
        }
        let namespace = telemetry.namespace();
        let selector = telemetry
            .spec
            .selector
            .as_ref()
            .filter(|s| !s.match_labels.is_empty());
        let level = match selector {
            None if namespace == ROOT_NAMESPACE => 0,
            None if namespace == node.namespace => 1,
            Some(selector)
                if namespace == node.namespace
                    && selector
                        .match_labels
                        .iter()
                        .all(|(k, v)| node.labels.get(k) == Some(v)) =>
            {
                2
            }
            _ => continue,
        };
        levels[level].push(&telemetry.spec);
    }
    levels.into_iter().flatten().collect()
}

/// Whether an entry with `mode` (CLIENT_AND_SERVER when unset) applies to
/// the server side (inbound) or the client side (outbound, gateways).
pub fn mode_applies(mode: Option<WorkloadMode>, server: bool) -> bool {
    match mode {
        None | Some(WorkloadMode::ClientAndServer) => true,
        Some(WorkloadMode::Server) => server,
        Some(WorkloadMode::Client) => !server,
    }
}
