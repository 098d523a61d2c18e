//! The virtual hosts that end every outbound HTTP route config, for hosts
//! outside the registry, as Istio names them: `allow_any` sends the request
//! to its original destination (ALLOW_ANY), `block_all` answers 502
//! (REGISTRY_ONLY).

use envoy_types::pb::envoy::config::route::v3::{
    DirectResponseAction, Route, RouteAction, RouteMatch, VirtualHost, route::Action,
    route_action::ClusterSpecifier, route_match::PathSpecifier,
};

use super::{OutboundTrafficPolicy, PASSTHROUGH_CLUSTER};
use crate::build::duration;

/// The catch-all virtual host of `policy`.
pub fn catch_all(policy: OutboundTrafficPolicy) -> VirtualHost {
    match policy {
        OutboundTrafficPolicy::AllowAny => allow_any(),
        OutboundTrafficPolicy::RegistryOnly => block_all(),
    }
}

/// Istio's `allow_any`: any host, to `PassthroughCluster`, without the
/// route timeout (as Istio, which cannot know what the destination needs).
pub fn allow_any() -> VirtualHost {
    let action = Action::Route(RouteAction {
        cluster_specifier: Some(ClusterSpecifier::Cluster(PASSTHROUGH_CLUSTER.into())),
        timeout: Some(duration(std::time::Duration::ZERO)),
        ..Default::default()
    });
    catch_all_host("allow_any", action)
}

/// Istio's `block_all`: a 502 for hosts outside the registry.
pub(crate) fn block_all() -> VirtualHost {
    let action = Action::DirectResponse(DirectResponseAction {
        status: 502,
        ..Default::default()
    });
    catch_all_host("block_all", action)
}

fn catch_all_host(name: &str, action: Action) -> VirtualHost {
    VirtualHost {
        name: name.into(),
        domains: vec!["*".into()],
        routes: vec![Route {
            name: name.into(),
            r#match: Some(RouteMatch {
                path_specifier: Some(PathSpecifier::Prefix("/".into())),
                ..Default::default()
            }),
            action: Some(action),
            ..Default::default()
        }],
        include_request_attempt_count: true,
        ..Default::default()
    }
}
