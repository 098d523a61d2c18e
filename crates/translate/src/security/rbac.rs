//! AuthorizationPolicy as Envoy RBAC HTTP filters (and, for TCP chains,
//! network RBAC filters over connections: see `tcp.rs`), in Istio's order: an
//! AUDIT (LOG) filter, then DENY, then ALLOW. A DENY filter exists when a
//! DENY (or CUSTOM, see below) policy selects the workload; an ALLOW filter
//! when any ALLOW policy does, so that an ALLOW policy without rules leaves
//! an ALLOW filter without policies: everything is denied. No policy: no
//! filter, everything is allowed.
//!
//! Each rule becomes one RBAC policy named `ns[NS]-policy[NAME]-rule[INDEX]`
//! (Istio's names): its permissions are the `to` operations and the
//! destination conditions, its principals the `from` sources and the other
//! conditions, each list a conjunction.

mod request_auth;
mod rule;
mod tcp;

use envoy_types::pb::envoy::config::listener::v3::{Filter, filter};
use envoy_types::pb::envoy::config::rbac::v3::{Policy, Rbac, rbac::Action};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpFilter, http_filter,
};
use envoy_types::pb::google::protobuf::Any;
use prost::{Message, Name};
use trellis_api::{AuthorizationAction, AuthorizationPolicy, Resource};
use trellis_config::Snapshot;
use trellis_xds::NodeInfo;

use super::ext_authz::{self, AuthzProvider};
use super::{is_root, selects};
use rule::Layer;

pub const RBAC_FILTER: &str = "envoy.filters.http.rbac";
const RBAC_FILTER_TYPE: &str = "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC";
pub const NETWORK_RBAC_FILTER: &str = "envoy.filters.network.rbac";
const NETWORK_RBAC_FILTER_TYPE: &str =
    "type.googleapis.com/envoy.extensions.filters.network.rbac.v3.RBAC";
/// Istio's stat prefix for the network filter.
const NETWORK_STAT_PREFIX: &str = "tcp.";

/// The authorization filters `node`'s inbound connection managers run
/// before the router: AUDIT, then CUSTOM (a shadow RBAC filter and the
/// ext_authz filter of its provider), then DENY, then ALLOW.
pub fn rbac_filters(
    snapshot: &Snapshot,
    node: &NodeInfo,
    providers: &[AuthzProvider],
) -> Vec<HttpFilter> {
    let mut custom = custom_provider(snapshot, node, providers);
    let serves_custom = custom.is_some();
    let mut filters: Vec<HttpFilter> = Vec::new();
    let mut push_custom = |filters: &mut Vec<HttpFilter>| {
        if let Some((provider, rules)) = custom.take() {
            filters.push(rbac_http_filter(encode_shadow_filter(rules)));
            filters.push(ext_authz::filter(provider));
        }
    };
    for (action, rules) in rules_by_action(snapshot, node, Layer::Http, !serves_custom) {
        if action != Action::Log {
            push_custom(&mut filters);
        }
        filters.push(rbac_http_filter(encode_filter(action, rules, None)));
    }
    push_custom(&mut filters);
    filters
}

fn rbac_http_filter(value: Vec<u8>) -> HttpFilter {
    HttpFilter {
        name: RBAC_FILTER.into(),
        config_type: Some(http_filter::ConfigType::TypedConfig(Any {
            type_url: RBAC_FILTER_TYPE.into(),
            value,
        })),
        ..Default::default()
    }
}

/// The provider the CUSTOM policies selecting `node` name, with their rules
/// under Istio's `istio-ext-authz-...` names. `None` when no CUSTOM policy
/// applies, or when they cannot be served (an unknown provider, or several
/// for one workload, which Istio refuses too): their rules then deny.
fn custom_provider<'p>(
    snapshot: &Snapshot,
    node: &NodeInfo,
    providers: &'p [AuthzProvider],
) -> Option<(&'p AuthzProvider, Vec<(String, Policy)>)> {
    let custom: Vec<_> = snapshot
        .authorization_policies()
        .filter(|policy| applies(policy, node) && policy.spec.action == AuthorizationAction::Custom)
        .collect();
    let first = custom.first()?;
    let name = first.spec.provider.as_ref().map_or("", |p| p.name.as_str());
    if custom
        .iter()
        .any(|p| p.spec.provider.as_ref().map_or("", |p| p.name.as_str()) != name)
    {
        tracing::warn!(
            workload = node.workload_name,
            "CUSTOM policies name more than one provider for one workload: their rules deny"
        );
        return None;
    }
    let Some(provider) = providers.iter().find(|p| p.name == name) else {
        tracing::warn!(policy = %first.key(), provider = name, "CUSTOM policy names no extension provider of the mesh config: its rules deny");
        return None;
    };
    let mut rules = Vec::new();
    for policy in custom {
        for (index, rule) in policy.spec.rules.iter().enumerate() {
            let name = format!(
                "{}-ns[{}]-policy[{}]-rule[{index}]",
                ext_authz::POLICY_PREFIX,
                policy.namespace(),
                policy.name()
            );
            match rule::translate(rule) {
                Ok(translated) => rules.push((name, translated)),
                Err(reason) => {
                    // Checking more requests than asked is the safe side.
                    tracing::warn!(policy = %policy.key(), rule = index, %reason, "a CUSTOM rule that cannot be matched sends every request to the authorizer");
                    rules.push((name, rule::match_all()));
                }
            }
        }
    }
    Some((provider, rules))
}

/// The network RBAC filters `node`'s inbound TCP chains run before
/// tcp_proxy: the same policies, as `tcp.rs` reads them for connections.
pub fn network_rbac_filters(snapshot: &Snapshot, node: &NodeInfo) -> Vec<Filter> {
    rules_by_action(snapshot, node, Layer::Tcp, true)
        .into_iter()
        .map(|(action, rules)| Filter {
            name: NETWORK_RBAC_FILTER.into(),
            config_type: Some(filter::ConfigType::TypedConfig(Any {
                type_url: NETWORK_RBAC_FILTER_TYPE.into(),
                value: encode_filter(action, rules, Some(NETWORK_STAT_PREFIX)),
            })),
        })
        .collect()
}

/// The rules of each filter, in Istio's order (AUDIT, DENY, ALLOW).
/// `custom_denies`: CUSTOM rules go in the DENY filter (failing closed),
/// as when no authorizer can serve them.
fn rules_by_action(
    snapshot: &Snapshot,
    node: &NodeInfo,
    layer: Layer,
    custom_denies: bool,
) -> Vec<(Action, Vec<(String, Policy)>)> {
    let selected: Vec<_> = snapshot
        .authorization_policies()
        .filter(|policy| applies(policy, node))
        .collect();
    let mut filters = Vec::new();
    for (action, wanted) in [
        (Action::Log, &[AuthorizationAction::Audit][..]),
        (
            Action::Deny,
            &[AuthorizationAction::Deny, AuthorizationAction::Custom],
        ),
        (Action::Allow, &[AuthorizationAction::Allow]),
    ] {
        let policies: Vec<_> = selected
            .iter()
            .filter(|p| wanted.contains(&p.spec.action))
            .filter(|p| custom_denies || p.spec.action != AuthorizationAction::Custom)
            .collect();
        if !policies.is_empty() {
            let rules = policies
                .iter()
                .flat_map(|policy| named_rules(policy, layer));
            filters.push((action, rules.collect()));
        }
    }
    filters
}

/// Root-namespace policies apply mesh-wide, others in their namespace;
/// `targetRef(s)` select gateways and waypoints, never sidecars.
fn applies(policy: &Resource<AuthorizationPolicy>, node: &NodeInfo) -> bool {
    let spec = &policy.spec;
    spec.target_ref.is_none()
        && spec.target_refs.is_empty()
        && (is_root(policy.namespace()) || policy.namespace() == node.namespace)
        && selects(spec.selector.as_ref(), node)
}

/// Each rule of `policy` under its Istio name; a rule this proxy cannot
/// enforce fails closed (see the module docs of `security`).
fn named_rules(policy: &Resource<AuthorizationPolicy>, layer: Layer) -> Vec<(String, Policy)> {
    let action = policy.spec.action;
    let mut rules = Vec::new();
    for (index, rule) in policy.spec.rules.iter().enumerate() {
        let rule = match layer {
            Layer::Http => rule.clone(),
            Layer::Tcp => match tcp::l4_rule(rule, action) {
                Some(rule) => rule,
                None => {
                    tracing::debug!(policy = %policy.key(), rule = index, "an ALLOW rule with HTTP-only fields matches no TCP connection");
                    continue;
                }
            },
        };
        let name = format!(
            "ns[{}]-policy[{}]-rule[{index}]",
            policy.namespace(),
            policy.name()
        );
        // CUSTOM rules land here when no authorizer can serve them: they
        // deny what they match.
        let translated = rule::translate(&rule);
        match translated {
            Ok(translated) => rules.push((name, translated)),
            Err(reason)
                if matches!(
                    action,
                    AuthorizationAction::Deny | AuthorizationAction::Custom
                ) =>
            {
                tracing::warn!(policy = %policy.key(), rule = index, %reason, "denying every request this rule selects: it cannot be enforced");
                rules.push((name, rule::match_all()));
            }
            Err(reason) => {
                tracing::warn!(policy = %policy.key(), rule = index, %reason, "ignoring an {} rule that cannot be enforced", action.as_str());
            }
        }
    }
    rules
}

/// The filter's `RBAC { rules: RBAC { action, policies } }` (and, for the
/// network filter, its `stat_prefix`), encoded with the policies in
/// name order. prost encodes a map in its hash order, which changes from
/// run to run; resource versions are hashes of the encoding, so an
/// unstable order would re-push unchanged config. Protobuf merges
/// concatenated encodings of a message, and appends map entries, so each
/// entry is encoded on its own and appended in order.
fn encode_filter(
    action: Action,
    rules: Vec<(String, Policy)>,
    stat_prefix: Option<&str>,
) -> Vec<u8> {
    let mut outer = encode_rules(RULES_FIELD, action, rules);
    if let Some(prefix) = stat_prefix {
        let rest = envoy_types::pb::envoy::extensions::filters::network::rbac::v3::Rbac {
            stat_prefix: prefix.into(),
            ..Default::default()
        };
        rest.encode(&mut outer).expect("a Vec grows as needed");
    }
    outer
}

/// The HTTP filter with `rules` as DENY shadow rules only (CUSTOM's).
fn encode_shadow_filter(rules: Vec<(String, Policy)>) -> Vec<u8> {
    let mut outer = encode_rules(SHADOW_RULES_FIELD, Action::Deny, rules);
    let rest = envoy_types::pb::envoy::extensions::filters::http::rbac::v3::Rbac {
        shadow_rules_stat_prefix: ext_authz::SHADOW_STAT_PREFIX.into(),
        ..Default::default()
    };
    rest.encode(&mut outer).expect("a Vec grows as needed");
    outer
}

/// The RBAC filters' `rules` and `shadow_rules` fields.
const RULES_FIELD: u32 = 1;
const SHADOW_RULES_FIELD: u32 = 2;

/// `RBAC { action, policies }` as field `field` of the filter message.
fn encode_rules(field: u32, action: Action, mut rules: Vec<(String, Policy)>) -> Vec<u8> {
    rules.sort_by(|a, b| a.0.cmp(&b.0));
    let mut inner = Rbac {
        action: action as i32,
        ..Default::default()
    }
    .encode_to_vec();
    for (name, policy) in rules {
        let entry = Rbac {
            policies: [(name, policy)].into(),
            ..Default::default()
        };
        entry.encode(&mut inner).expect("a Vec grows as needed");
    }
    let mut outer = Vec::with_capacity(inner.len() + 16);
    prost::encoding::encode_key(
        field,
        prost::encoding::WireType::LengthDelimited,
        &mut outer,
    );
    prost::encoding::encode_varint(inner.len() as u64, &mut outer);
    outer.extend_from_slice(&inner);
    debug_assert_eq!(
        RBAC_FILTER_TYPE,
        envoy_types::pb::envoy::extensions::filters::http::rbac::v3::Rbac::type_url()
    );
    debug_assert_eq!(
        NETWORK_RBAC_FILTER_TYPE,
        envoy_types::pb::envoy::extensions::filters::network::rbac::v3::Rbac::type_url()
    );
    outer
}

#[cfg(test)]
mod tests;
