//! The route side of consistent hashing: the key a DestinationRule's
//! `consistentHash` hashes on becomes the route's `hash_policy`, as
//! Istio's `consistentHashToHashPolicy` writes it.

use envoy_types::pb::envoy::config::route::v3::route_action::HashPolicy;
use envoy_types::pb::envoy::config::route::v3::route_action::hash_policy::{
    ConnectionProperties, Cookie, CookieAttribute, Header, PolicySpecifier, QueryParameter,
};
use trellis_api::{ConsistentHashLb, parse_duration};
use trellis_config::{MeshService, Snapshot};

use super::ClusterPolicy;
use crate::build::duration;
use crate::clusters::destination_rule;

/// The hash policy of the cluster for `port` of `service` in `subset`
/// (empty: the whole service), if its DestinationRule hashes consistently.
pub fn route_hash_policy(
    snapshot: &Snapshot,
    service: &MeshService,
    port: u16,
    subset: &str,
) -> Option<HashPolicy> {
    let rule = destination_rule(snapshot, service).map(|r| &r.spec);
    let policy = ClusterPolicy::merged(rule, subset, port);
    policy
        .load_balancer
        .and_then(|lb| lb.consistent_hash.as_ref())
        .and_then(hash_policy)
}

fn hash_policy(hash: &ConsistentHashLb) -> Option<HashPolicy> {
    let specifier = if let Some(header) = &hash.http_header_name {
        PolicySpecifier::Header(Header {
            header_name: header.clone(),
            ..Default::default()
        })
    } else if let Some(cookie) = &hash.http_cookie {
        PolicySpecifier::Cookie(Cookie {
            name: cookie.name.clone(),
            ttl: cookie
                .ttl
                .as_deref()
                .and_then(|ttl| parse_duration(ttl).ok())
                .map(duration),
            path: cookie.path.clone().unwrap_or_default(),
            attributes: cookie
                .attributes
                .iter()
                .map(|a| CookieAttribute {
                    name: a.name.clone(),
                    value: a.value.clone().unwrap_or_default(),
                })
                .collect(),
        })
    } else if hash.use_source_ip == Some(true) {
        PolicySpecifier::ConnectionProperties(ConnectionProperties { source_ip: true })
    } else if let Some(name) = &hash.http_query_parameter_name {
        PolicySpecifier::QueryParameter(QueryParameter { name: name.clone() })
    } else {
        return None;
    };
    Some(HashPolicy {
        policy_specifier: Some(specifier),
        terminal: false,
    })
}
