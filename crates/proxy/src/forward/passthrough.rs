//! Requests routed to an ORIGINAL_DST cluster (Istio's
//! `PassthroughCluster`, `InboundPassthroughCluster`): where they go and
//! what metrics call them.

use super::{Downstream, Failure};
use crate::cluster::LiveEndpoint;
use crate::metric_labels::{Service, Shared, UNKNOWN};
use crate::state::ProxyState;

/// What Istio's metrics call a request passed through outside the
/// registry: the cluster's name (`PassthroughCluster`) and the host asked for.
pub(super) fn passthrough_service(cluster: &str, authority: &str) -> Shared<Service> {
    let host = authority.parse::<http::uri::Authority>().map_or_else(
        |_| authority.to_string(),
        |parsed| parsed.host().to_string(),
    );
    Shared::new(Service {
        host,
        name: cluster.to_string(),
        namespace: UNKNOWN.to_string(),
    })
}

/// An ORIGINAL_DST cluster's endpoint for this request, as Envoy's: the
/// downstream connection's destination, its original one when redirected.
/// One of the proxy's own listeners would loop back through it.
pub(super) fn original_destination(
    downstream: &Downstream,
    state: &ProxyState,
) -> Result<LiveEndpoint, Failure> {
    let destination = downstream.addresses.local;
    if state.listeners.is_own(destination, state.node.ip) {
        tracing::info!(%destination, "refusing to pass a request through to the proxy itself");
        return Err(Failure::NoHealthyUpstream);
    }
    Ok(LiveEndpoint {
        address: destination,
        authority: destination
            .to_string()
            .parse()
            .map_err(|_| Failure::NoHealthyUpstream)?,
        workload: state.labels.unknown_workload.clone(),
        weight: 1,
        active: Default::default(),
    })
}

#[cfg(test)]
mod tests {
    use super::passthrough_service;

    #[test]
    fn passthrough_requests_are_named_by_cluster_and_host() {
        let service = passthrough_service("PassthroughCluster", "example.com:8080");
        assert_eq!(service.name, "PassthroughCluster");
        assert_eq!(service.host, "example.com");
        let bare = passthrough_service("PassthroughCluster", "example.com");
        assert_eq!(bare.host, "example.com");
    }
}
