//! AuthorizationPolicy as Envoy RBAC HTTP filters, in Istio's order: an
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

mod rule;

use envoy_types::pb::envoy::config::rbac::v3::{Policy, Rbac, rbac::Action};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpFilter, http_filter,
};
use envoy_types::pb::google::protobuf::Any;
use prost::{Message, Name};
use trellis_api::{AuthorizationAction, AuthorizationPolicy, Resource};
use trellis_config::Snapshot;
use trellis_xds::NodeInfo;

use super::{is_root, selects};

pub const RBAC_FILTER: &str = "envoy.filters.http.rbac";
const RBAC_FILTER_TYPE: &str = "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC";

/// The RBAC filters `node`'s inbound connection managers run before the router.
pub fn rbac_filters(snapshot: &Snapshot, node: &NodeInfo) -> Vec<HttpFilter> {
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
            .collect();
        if !policies.is_empty() {
            let rules = policies.iter().flat_map(|policy| named_rules(policy));
            filters.push(rbac_filter(action, rules.collect()));
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
fn named_rules(policy: &Resource<AuthorizationPolicy>) -> Vec<(String, Policy)> {
    let action = policy.spec.action;
    let mut rules = Vec::new();
    for (index, rule) in policy.spec.rules.iter().enumerate() {
        let name = format!(
            "ns[{}]-policy[{}]-rule[{index}]",
            policy.namespace(),
            policy.name()
        );
        let translated = match action {
            AuthorizationAction::Custom => Err(rule::Unsupported::CustomAction),
            _ => rule::translate(rule),
        };
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

fn rbac_filter(action: Action, mut rules: Vec<(String, Policy)>) -> HttpFilter {
    rules.sort_by(|a, b| a.0.cmp(&b.0));
    HttpFilter {
        name: RBAC_FILTER.into(),
        config_type: Some(http_filter::ConfigType::TypedConfig(Any {
            type_url: RBAC_FILTER_TYPE.into(),
            value: encode_filter(action, &rules),
        })),
        ..Default::default()
    }
}

/// The filter's `RBAC { rules: RBAC { action, policies } }`, encoded with
/// the policies in name order. prost encodes a map in its hash order, which
/// changes from run to run; resource versions are hashes of the encoding,
/// so an unstable order would re-push unchanged config. Protobuf merges
/// concatenated encodings of a message, and appends map entries, so each
/// entry is encoded on its own and appended in order.
fn encode_filter(action: Action, rules: &[(String, Policy)]) -> Vec<u8> {
    let mut inner = Rbac {
        action: action as i32,
        ..Default::default()
    }
    .encode_to_vec();
    for (name, policy) in rules {
        let entry = Rbac {
            policies: [(name.clone(), policy.clone())].into(),
            ..Default::default()
        };
        entry.encode(&mut inner).expect("a Vec grows as needed");
    }
    // Field 1 (`rules`) of the HTTP filter's RBAC, length-delimited.
    let mut outer = Vec::with_capacity(inner.len() + 8);
    prost::encoding::encode_key(1, prost::encoding::WireType::LengthDelimited, &mut outer);
    prost::encoding::encode_varint(inner.len() as u64, &mut outer);
    outer.extend_from_slice(&inner);
    debug_assert_eq!(
        RBAC_FILTER_TYPE,
        envoy_types::pb::envoy::extensions::filters::http::rbac::v3::Rbac::type_url()
    );
    outer
}

#[cfg(test)]
mod tests;
