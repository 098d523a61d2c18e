//! RequestAuthentication as Envoy's JWT filter (`envoy.filters.http.jwt_authn`),
//! as Istio's pilot emits it: every JWT rule of every policy that selects
//! the workload (mesh-wide from the root namespace, then the namespace's,
//! then selector-based ones: all of them apply together) becomes one
//! provider `origins-N`, and one requirement covers every path: any
//! provider may verify the token, and a request without one passes
//! (`allow_missing`). A request whose token no provider verifies is
//! refused with 401; requiring a token is AuthorizationPolicy's job.
//!
//! Every provider writes its verified payload to the filter's dynamic
//! metadata under [`PAYLOAD_METADATA_KEY`], where the RBAC filters read
//! `request.auth.*` (see `rbac::rule`).
//!
//! Keys are always inline (`local_jwks`): for a `jwksUri` the control plane
//! fetches the keys and puts them in the rule's `jwks` before translation,
//! as istiod does. A rule whose keys are unknown gets an empty key set, so
//! its tokens fail (closed, never open).

use envoy_types::pb::envoy::config::core::v3::{DataSource, data_source};
use envoy_types::pb::envoy::config::route::v3::{RouteMatch, route_match::PathSpecifier};
use envoy_types::pb::envoy::extensions::filters::http::jwt_authn::v3::{
    JwtAuthentication, JwtClaimToHeader, JwtHeader, JwtProvider, JwtRequirement,
    JwtRequirementOrList, RequirementRule, jwt_provider::JwksSourceSpecifier,
    jwt_requirement::RequiresType, requirement_rule::RequirementType,
};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpFilter, http_filter,
};
use envoy_types::pb::google::protobuf::{Any, Empty};
use prost::{Message, Name};
use trellis_api::{JwtRule, RequestAuthentication, Resource};
use trellis_config::Snapshot;
use trellis_xds::NodeInfo;

use super::{is_root, selects};

pub const JWT_FILTER: &str = "envoy.filters.http.jwt_authn";
/// Where every provider puts the verified payload in the filter's metadata.
pub const PAYLOAD_METADATA_KEY: &str = "payload";
/// The key set of a rule whose keys could not be had: no token verifies.
pub const EMPTY_JWKS: &str = r#"{"keys":[]}"#;
/// Istio's allowance for clocks that disagree (Envoy's default).
const CLOCK_SKEW_SECONDS: u32 = 60;

/// The JWT filter `node`'s inbound connection managers run first, if any
/// RequestAuthentication selects it.
pub fn jwt_filter(snapshot: &Snapshot, node: &NodeInfo) -> Option<HttpFilter> {
    let rules: Vec<&JwtRule> = snapshot
        .request_authentications()
        .filter(|policy| applies(policy, node))
        .flat_map(|policy| &policy.spec.jwt_rules)
        .collect();
    if rules.is_empty() {
        return None;
    }
    let providers: Vec<(String, JwtProvider)> = rules
        .iter()
        .enumerate()
        .map(|(index, rule)| (format!("origins-{index}"), provider(rule)))
        .collect();
    Some(HttpFilter {
        name: JWT_FILTER.into(),
        config_type: Some(http_filter::ConfigType::TypedConfig(Any {
            type_url: JwtAuthentication::type_url(),
            value: encode_filter(&providers),
        })),
        ..Default::default()
    })
}

/// Root-namespace policies apply mesh-wide, others in their namespace;
/// `targetRef(s)` select gateways and waypoints, never sidecars.
fn applies(policy: &Resource<RequestAuthentication>, node: &NodeInfo) -> bool {
    let spec = &policy.spec;
    spec.target_ref.is_none()
        && spec.target_refs.is_empty()
        && (is_root(policy.namespace()) || policy.namespace() == node.namespace)
        && selects(spec.selector.as_ref(), node)
}

fn provider(rule: &JwtRule) -> JwtProvider {
    let jwks = if rule.jwks.is_empty() {
        EMPTY_JWKS
    } else {
        &rule.jwks
    };
    JwtProvider {
        issuer: rule.issuer.clone(),
        audiences: rule.audiences.clone(),
        jwks_source_specifier: Some(JwksSourceSpecifier::LocalJwks(DataSource {
            specifier: Some(data_source::Specifier::InlineString(jwks.to_string())),
            ..Default::default()
        })),
        forward: rule.forward_original_token,
        from_headers: rule
            .from_headers
            .iter()
            .map(|header| JwtHeader {
                name: header.name.clone(),
                value_prefix: header.prefix.clone(),
            })
            .collect(),
        from_params: rule.from_params.clone(),
        from_cookies: rule.from_cookies.clone(),
        forward_payload_header: rule.output_payload_to_header.clone(),
        claim_to_headers: rule
            .output_claim_to_headers
            .iter()
            .map(|output| JwtClaimToHeader {
                header_name: output.header.clone(),
                claim_name: output.claim.clone(),
                ..Default::default()
            })
            .collect(),
        payload_in_metadata: PAYLOAD_METADATA_KEY.into(),
        clock_skew_seconds: CLOCK_SKEW_SECONDS,
        ..Default::default()
    }
}

/// Any provider may verify the token; no token at all is allowed.
fn requirement(providers: &[(String, JwtProvider)]) -> RequirementRule {
    let mut any: Vec<JwtRequirement> = providers
        .iter()
        .map(|(name, _)| JwtRequirement {
            requires_type: Some(RequiresType::ProviderName(name.clone())),
        })
        .collect();
    any.push(JwtRequirement {
        requires_type: Some(RequiresType::AllowMissing(Empty {})),
    });
    RequirementRule {
        r#match: Some(RouteMatch {
            path_specifier: Some(PathSpecifier::Prefix("/".into())),
            ..Default::default()
        }),
        requirement_type: Some(RequirementType::Requires(JwtRequirement {
            requires_type: Some(RequiresType::RequiresAny(JwtRequirementOrList {
                requirements: any,
            })),
        })),
    }
}

/// The filter config with its providers in name order. prost encodes a
/// map in hash order, which changes from run to run, and resource versions
/// are hashes of the encoding: each entry is encoded on its own and
/// appended (protobuf merges concatenated encodings, appending map entries).
fn encode_filter(providers: &[(String, JwtProvider)]) -> Vec<u8> {
    let mut encoded = JwtAuthentication {
        rules: vec![requirement(providers)],
        bypass_cors_preflight: true,
        ..Default::default()
    }
    .encode_to_vec();
    for (name, provider) in providers {
        let entry = JwtAuthentication {
            providers: [(name.clone(), provider.clone())].into(),
            ..Default::default()
        };
        entry.encode(&mut encoded).expect("a Vec grows as needed");
    }
    encoded
}

#[cfg(test)]
mod tests;
