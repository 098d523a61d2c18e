//! One AuthorizationPolicy rule as one Envoy RBAC policy.

use std::fmt;

use envoy_types::pb::envoy::config::core::v3::CidrRange;
use envoy_types::pb::envoy::config::rbac::v3::{
    Permission, Policy, Principal, permission, principal,
};
use envoy_types::pb::envoy::config::route::v3::{
    HeaderMatcher, header_matcher::HeaderMatchSpecifier,
};
use envoy_types::pb::envoy::r#type::matcher::v3::{PathMatcher, StringMatcher, path_matcher};
use trellis_api::{Condition, ConditionKey, Operation, Rule, Source};

use super::request_auth::{claim, request_principal};
use crate::build::uint32;
use crate::security::values::{
    SPIFFE_PREFIX, ignore_case_matcher, namespace_matcher, string_matcher, with_prefix,
};

/// Why a rule cannot be enforced by this proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unsupported {
    /// A source or operation field, by its YAML name.
    Field(&'static str),
    /// A `when` key.
    Condition(String),
    /// `{*}`/`{**}` path templates.
    PathTemplate(String),
}

impl fmt::Display for Unsupported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unsupported::Field(field) => write!(f, "{field} is not supported"),
            Unsupported::Condition(key) => write!(f, "condition key {key} is not supported"),
            Unsupported::PathTemplate(path) => write!(f, "path template {path} is not supported"),
        }
    }
}

/// Matches every request (a DENY rule that cannot be enforced).
pub fn match_all() -> Policy {
    Policy {
        permissions: vec![any_permission()],
        principals: vec![any_principal()],
        ..Default::default()
    }
}

/// Which filter a rule is translated for: the HTTP filter sees requests,
/// the network filter only connections (see `tcp.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layer {
    Http,
    Tcp,
}

pub fn translate(rule: &Rule) -> Result<Policy, Unsupported> {
    let mut permissions = Vec::new();
    let mut principals = Vec::new();
    if !rule.from.is_empty() {
        let sources = rule.from.iter().filter_map(|from| from.source.as_ref());
        principals.push(or_ids(sources.map(source).collect::<Result<_, _>>()?));
    }
    if !rule.to.is_empty() {
        let operations = rule.to.iter().filter_map(|to| to.operation.as_ref());
        permissions.push(or_rules(
            operations.map(operation).collect::<Result<_, _>>()?,
        ));
    }
    for condition in &rule.when {
        match condition_matcher(condition)? {
            Matcher::Principal(id) => principals.push(id),
            Matcher::Permission(rule) => permissions.push(rule),
        }
    }
    Ok(Policy {
        permissions: vec![and_rules(permissions)],
        principals: vec![and_ids(principals)],
        ..Default::default()
    })
}

fn source(source: &Source) -> Result<Principal, Unsupported> {
    let mut ids = Vec::new();
    for (name, values) in source.fields() {
        if values.is_empty() {
            continue;
        }
        let (negated, field) = match name.strip_prefix("not") {
            Some(rest) => (true, rest),
            None => (false, name),
        };
        let matchers: Vec<Principal> = values
            .iter()
            .map(|value| source_value(field, value).ok_or(Unsupported::Field(name)))
            .collect::<Result<_, _>>()?;
        ids.push(negate_id(or_ids(matchers), negated));
    }
    Ok(and_ids(ids))
}

/// One value of a source field (`field` without its `not`, any case).
fn source_value(field: &str, value: &str) -> Option<Principal> {
    use principal::Identifier;
    Some(match field.to_ascii_lowercase().as_str() {
        "principals" => authenticated(with_prefix(SPIFFE_PREFIX, value, false)),
        "namespaces" => authenticated(namespace_matcher(value)),
        "ipblocks" => id(Identifier::DirectRemoteIp(cidr(value))),
        "remoteipblocks" => id(Identifier::RemoteIp(cidr(value))),
        "requestprincipals" => request_principal(value),
        _ => return None, // serviceAccounts
    })
}

fn operation(operation: &Operation) -> Result<Permission, Unsupported> {
    use permission::Rule as R;
    let mut rules = Vec::new();
    for (name, values) in operation.fields() {
        if values.is_empty() {
            continue;
        }
        let (negated, field) = match name.strip_prefix("not") {
            Some(rest) => (true, rest.to_ascii_lowercase()),
            None => (false, name.to_string()),
        };
        let mut matchers = Vec::new();
        for value in values {
            match field.as_str() {
                "hosts" => matchers.extend(host(value)),
                "ports" => matchers.push(perm(R::DestinationPort(port(value)))),
                "methods" => matchers.push(header_rule(":method", string_matcher(value))),
                _ => matchers.push(path(value)?),
            }
        }
        rules.push(negate_rule(or_rules(matchers), negated));
    }
    Ok(and_rules(rules))
}

/// Istio matches hosts case-insensitively, with or without a port.
fn host(value: &str) -> Vec<Permission> {
    let mut matchers = vec![header_rule(":authority", ignore_case_matcher(value))];
    if !value.starts_with('*') && !value.ends_with('*') {
        matchers.push(header_rule(
            ":authority",
            ignore_case_matcher(&format!("{value}:*")),
        ));
    }
    matchers
}

fn path(value: &str) -> Result<Permission, Unsupported> {
    if value.contains('{') {
        return Err(Unsupported::PathTemplate(value.to_string()));
    }
    Ok(perm(permission::Rule::UrlPath(PathMatcher {
        rule: Some(path_matcher::Rule::Path(string_matcher(value))),
    })))
}

enum Matcher {
    Principal(Principal),
    Permission(Permission),
}

/// `values` as alternatives, `notValues` as exclusions, both required.
fn condition_matcher(condition: &Condition) -> Result<Matcher, Unsupported> {
    let unsupported = || Unsupported::Condition(condition.key.clone());
    let key = ConditionKey::parse(&condition.key).map_err(|_| unsupported())?;
    let (values, not_values) = (&condition.values, &condition.not_values);
    match key {
        ConditionKey::RequestHeader(_)
        | ConditionKey::SourceIp
        | ConditionKey::RemoteIp
        | ConditionKey::SourceNamespace
        | ConditionKey::SourcePrincipal
        | ConditionKey::RequestAuthPrincipal
        | ConditionKey::RequestAuthAudiences
        | ConditionKey::RequestAuthPresenter
        | ConditionKey::RequestAuthClaim(_) => {
            let build = |list: &[String]| {
                or_ids(list.iter().map(|v| principal_condition(&key, v)).collect())
            };
            let mut ids = Vec::new();
            if !values.is_empty() {
                ids.push(build(values));
            }
            if !not_values.is_empty() {
                ids.push(negate_id(build(not_values), true));
            }
            Ok(Matcher::Principal(and_ids(ids)))
        }
        ConditionKey::DestinationIp
        | ConditionKey::DestinationPort
        | ConditionKey::ConnectionSni => {
            let build = |list: &[String]| {
                or_rules(list.iter().map(|v| permission_condition(&key, v)).collect())
            };
            let mut rules = Vec::new();
            if !values.is_empty() {
                rules.push(build(values));
            }
            if !not_values.is_empty() {
                rules.push(negate_rule(build(not_values), true));
            }
            Ok(Matcher::Permission(and_rules(rules)))
        }
        _ => Err(unsupported()),
    }
}

/// A condition on who calls; `key` is one `condition_matcher` sends here.
fn principal_condition(key: &ConditionKey, value: &str) -> Principal {
    use principal::Identifier;
    match key {
        ConditionKey::RequestHeader(name) => id(Identifier::Header(HeaderMatcher {
            name: name.clone(),
            header_match_specifier: Some(HeaderMatchSpecifier::StringMatch(string_matcher(value))),
            ..Default::default()
        })),
        ConditionKey::SourceIp => id(Identifier::DirectRemoteIp(cidr(value))),
        ConditionKey::RemoteIp => id(Identifier::RemoteIp(cidr(value))),
        ConditionKey::SourceNamespace => authenticated(namespace_matcher(value)),
        ConditionKey::RequestAuthPrincipal => request_principal(value),
        ConditionKey::RequestAuthAudiences => claim(&["aud"], string_matcher(value)),
        ConditionKey::RequestAuthPresenter => claim(&["azp"], string_matcher(value)),
        ConditionKey::RequestAuthClaim(path) => {
            let path: Vec<&str> = path.iter().map(String::as_str).collect();
            claim(&path, string_matcher(value))
        }
        _ => authenticated(with_prefix(SPIFFE_PREFIX, value, false)),
    }
}

/// A condition on what is called; `key` is one `condition_matcher` sends here.
fn permission_condition(key: &ConditionKey, value: &str) -> Permission {
    match key {
        ConditionKey::DestinationIp => perm(permission::Rule::DestinationIp(cidr(value))),
        ConditionKey::ConnectionSni => {
            perm(permission::Rule::RequestedServerName(string_matcher(value)))
        }
        _ => perm(permission::Rule::DestinationPort(port(value))),
    }
}

fn id(identifier: principal::Identifier) -> Principal {
    Principal {
        identifier: Some(identifier),
    }
}

fn perm(rule: permission::Rule) -> Permission {
    Permission { rule: Some(rule) }
}

fn authenticated(name: StringMatcher) -> Principal {
    id(principal::Identifier::Authenticated(
        principal::Authenticated {
            principal_name: Some(name),
        },
    ))
}

fn header_rule(name: &str, matcher: StringMatcher) -> Permission {
    perm(permission::Rule::Header(HeaderMatcher {
        name: name.into(),
        header_match_specifier: Some(HeaderMatchSpecifier::StringMatch(matcher)),
        ..Default::default()
    }))
}

/// Validation guarantees a port number; anything else matches no port.
fn port(value: &str) -> u32 {
    value.parse().unwrap_or(0)
}

/// `10.0.0.0/8`, or a bare address as a single-address range.
fn cidr(value: &str) -> CidrRange {
    let (address, bits) = match value.split_once('/') {
        Some((address, bits)) => (address, bits.parse().ok()),
        None => (value, None),
    };
    let full = if address.contains(':') { 128 } else { 32 };
    CidrRange {
        address_prefix: address.to_string(),
        prefix_len: Some(uint32(bits.unwrap_or(full))),
    }
}

fn any_permission() -> Permission {
    perm(permission::Rule::Any(true))
}

fn any_principal() -> Principal {
    id(principal::Identifier::Any(true))
}

fn and_rules(mut rules: Vec<Permission>) -> Permission {
    match rules.len() {
        0 => any_permission(),
        1 => rules.remove(0),
        _ => perm(permission::Rule::AndRules(permission::Set { rules })),
    }
}

fn or_rules(mut rules: Vec<Permission>) -> Permission {
    match rules.len() {
        1 => rules.remove(0),
        _ => perm(permission::Rule::OrRules(permission::Set { rules })),
    }
}

fn and_ids(mut ids: Vec<Principal>) -> Principal {
    match ids.len() {
        0 => any_principal(),
        1 => ids.remove(0),
        _ => id(principal::Identifier::AndIds(principal::Set { ids })),
    }
}

fn or_ids(mut ids: Vec<Principal>) -> Principal {
    match ids.len() {
        1 => ids.remove(0),
        _ => id(principal::Identifier::OrIds(principal::Set { ids })),
    }
}

fn negate_id(principal: Principal, negated: bool) -> Principal {
    if negated {
        id(principal::Identifier::NotId(Box::new(principal)))
    } else {
        principal
    }
}

fn negate_rule(permission: Permission, negated: bool) -> Permission {
    if negated {
        perm(permission::Rule::NotRule(Box::new(permission)))
    } else {
        permission
    }
}
