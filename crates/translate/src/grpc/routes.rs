//! One route configuration per service port, holding the sidecar's virtual
//! host for it (VirtualService rules first match first, weighted subsets,
//! path and header matches), narrowed to what a gRPC client implements:
//! the rule's timeout becomes the maximum stream duration (gRPC ignores
//! `timeout`), retries keep only gRPC status conditions, faults stay, and
//! what gRPC ignores (header operations, rewrites, mirrors, CORS, cookie
//! and source-IP hashing) is left out rather than suggested.

use envoy_types::pb::envoy::config::route::v3::{
    RetryPolicy, Route, RouteAction, RouteConfiguration,
    route::Action,
    route_action::{ClusterSpecifier, MaxStreamDuration, hash_policy::PolicySpecifier},
};
use trellis_config::Snapshot;
use trellis_xds::NodeInfo;

use super::listeners::ServicePort;
use crate::fault::FAULT_FILTER;

/// The retry conditions gRPC implements (gRPC status names, as Envoy's
/// `retry_on` spells them).
const GRPC_RETRY_ON: [&str; 5] = [
    "cancelled",
    "deadline-exceeded",
    "internal",
    "resource-exhausted",
    "unavailable",
];

pub fn route_config(
    snapshot: &Snapshot,
    node: &NodeInfo,
    target: &ServicePort<'_>,
) -> RouteConfiguration {
    let mut host = crate::routes::virtual_host(snapshot, node, target.service, target.port);
    host.include_request_attempt_count = false;
    host.routes.iter_mut().for_each(narrow_route);
    RouteConfiguration {
        name: target.route_config_name(),
        virtual_hosts: vec![host],
        ..Default::default()
    }
}

fn narrow_route(route: &mut Route) {
    // gRPC rejects per-route config for filters it does not have (CORS).
    route
        .typed_per_filter_config
        .retain(|filter, _| filter == FAULT_FILTER);
    route.request_headers_to_add.clear();
    route.request_headers_to_remove.clear();
    route.response_headers_to_add.clear();
    route.response_headers_to_remove.clear();
    // Redirects and direct responses stay: gRPC fails the calls they
    // match, which is what the rule asks of a client that cannot follow them.
    if let Some(Action::Route(action)) = &mut route.action {
        narrow_action(action);
    }
}

fn narrow_action(action: &mut RouteAction) {
    let sidecar = std::mem::take(action);
    let timeout = sidecar.timeout.filter(|t| t.seconds > 0 || t.nanos > 0);
    let cluster_specifier = sidecar.cluster_specifier.map(|specifier| match specifier {
        ClusterSpecifier::WeightedClusters(mut weighted) => {
            for cluster in &mut weighted.clusters {
                cluster.request_headers_to_add.clear();
                cluster.request_headers_to_remove.clear();
                cluster.response_headers_to_add.clear();
                cluster.response_headers_to_remove.clear();
            }
            ClusterSpecifier::WeightedClusters(weighted)
        }
        other => other,
    });
    *action = RouteAction {
        cluster_specifier,
        max_stream_duration: timeout.map(|timeout| MaxStreamDuration {
            max_stream_duration: Some(timeout),
            grpc_timeout_header_max: Some(timeout),
            ..Default::default()
        }),
        retry_policy: sidecar.retry_policy.and_then(grpc_retry_policy),
        // gRPC hashes on headers and its channel id, nothing else.
        hash_policy: sidecar
            .hash_policy
            .into_iter()
            .filter(|h| {
                matches!(
                    h.policy_specifier,
                    Some(PolicySpecifier::Header(_) | PolicySpecifier::FilterState(_))
                )
            })
            .collect(),
        ..Default::default()
    };
}

/// The retry policy with only the conditions gRPC retries on; none when
/// no condition is left (Istio's default keeps `unavailable,cancelled`).
fn grpc_retry_policy(sidecar: RetryPolicy) -> Option<RetryPolicy> {
    let retry_on: Vec<&str> = sidecar
        .retry_on
        .split(',')
        .map(str::trim)
        .filter(|condition| GRPC_RETRY_ON.contains(condition))
        .collect();
    if retry_on.is_empty() || sidecar.num_retries.is_some_and(|n| n.value == 0) {
        return None;
    }
    Some(RetryPolicy {
        retry_on: retry_on.join(","),
        num_retries: sidecar.num_retries,
        retry_back_off: sidecar.retry_back_off,
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::{duration, uint32};

    #[test]
    fn retries_keep_only_grpc_conditions() {
        let istio_default = crate::retry_policy::retry_policy(None).unwrap();
        let policy = grpc_retry_policy(istio_default).unwrap();
        assert_eq!(policy.retry_on, "unavailable,cancelled");
        assert_eq!(policy.num_retries, Some(uint32(2)));
        assert!(policy.retry_host_predicate.is_empty());

        let http_only = RetryPolicy {
            retry_on: "5xx,gateway-error".into(),
            num_retries: Some(uint32(3)),
            ..Default::default()
        };
        assert_eq!(grpc_retry_policy(http_only), None);
    }

    #[test]
    fn a_timeout_becomes_the_maximum_stream_duration() {
        let five_seconds = duration(std::time::Duration::from_secs(5));
        let mut action = RouteAction {
            timeout: Some(five_seconds),
            prefix_rewrite: "/other".into(),
            ..Default::default()
        };
        narrow_action(&mut action);
        let max = action.max_stream_duration.unwrap();
        assert_eq!(max.max_stream_duration, Some(five_seconds));
        assert_eq!(max.grpc_timeout_header_max, Some(five_seconds));
        assert_eq!(action.timeout, None);
        assert_eq!(action.prefix_rewrite, "");

        // Istio's default (no timeout) is Envoy's 0s: no limit at all.
        let mut action = RouteAction {
            timeout: Some(duration(std::time::Duration::ZERO)),
            ..Default::default()
        };
        narrow_action(&mut action);
        assert_eq!(action.max_stream_duration, None);
    }
}
