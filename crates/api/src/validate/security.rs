//! PeerAuthentication, RequestAuthentication and AuthorizationPolicy
//! checks, after Istio's `ValidatePeerAuthentication`,
//! `ValidateRequestAuthentication` and `ValidateAuthorizationPolicy`.

mod request_authentication;

pub(super) use request_authentication::validate_request_authentication;

use super::network::ip_or_cidr;
use super::{Violations, labels};
use crate::istio::{
    AuthorizationAction, AuthorizationPolicy, ConditionKey, Operation, PeerAuthentication,
    PolicyTargetReference, Rule, Source, WorkloadSelector,
};

pub(super) fn validate_peer_authentication(
    violations: &mut Violations,
    policy: &PeerAuthentication,
) {
    selector(violations, "spec.selector", policy.selector.as_ref());
    if policy.port_level_mtls.is_empty() {
        return;
    }
    if policy
        .selector
        .as_ref()
        .is_none_or(|s| s.match_labels.is_empty())
    {
        violations.push(
            "spec.portLevelMtls",
            "mesh/namespace peer authentication cannot have port level mTLS",
        );
    }
    for &port in policy.port_level_mtls.keys() {
        let field = format!("spec.portLevelMtls.{port}");
        if port == 0 {
            violations.push(field, "port cannot be 0");
        } else {
            violations.port(&field, Some(port));
        }
    }
}

pub(super) fn validate_authorization_policy(
    violations: &mut Violations,
    policy: &AuthorizationPolicy,
) {
    targets(
        violations,
        policy.selector.as_ref(),
        policy.target_ref.as_ref(),
        &policy.target_refs,
    );
    match (policy.action, &policy.provider) {
        (AuthorizationAction::Custom, None) => {
            violations.push("spec.provider", "must specify a provider for CUSTOM action");
        }
        (AuthorizationAction::Custom, Some(provider)) if provider.name.is_empty() => {
            violations.push("spec.provider.name", "provider name must not be empty");
        }
        (action, Some(_)) if action != AuthorizationAction::Custom => {
            violations.push(
                "spec.provider",
                "provider can only be set for CUSTOM action",
            );
        }
        _ => {}
    }
    for (index, rule) in policy.rules.iter().enumerate() {
        validate_rule(violations, &format!("spec.rules[{index}]"), rule);
    }
}

/// A policy picks its workloads by a selector or by target references, not both.
pub(super) fn targets(
    violations: &mut Violations,
    workload_selector: Option<&WorkloadSelector>,
    target_ref: Option<&PolicyTargetReference>,
    target_refs: &[PolicyTargetReference],
) {
    selector(violations, "spec.selector", workload_selector);
    let has_selector = workload_selector.is_some_and(|s| !s.match_labels.is_empty());
    if has_selector && (target_ref.is_some() || !target_refs.is_empty()) {
        violations.push(
            "spec",
            "only one of targetRefs or workloadSelector can be set",
        );
    }
    if target_ref.is_some() && !target_refs.is_empty() {
        violations.push("spec", "only one of targetRef or targetRefs can be set");
    }
}

fn selector(violations: &mut Violations, field: &str, selector: Option<&WorkloadSelector>) {
    if let Some(selector) = selector {
        labels(
            violations,
            &format!("{field}.matchLabels"),
            &selector.match_labels,
        );
    }
}

fn validate_rule(violations: &mut Violations, field: &str, rule: &Rule) {
    for (index, from) in rule.from.iter().enumerate() {
        let field = format!("{field}.from[{index}].source");
        match &from.source {
            None => violations.push(field, "`from.source` must not be nil"),
            Some(source) => validate_source(violations, &field, source),
        }
    }
    for (index, to) in rule.to.iter().enumerate() {
        let field = format!("{field}.to[{index}].operation");
        match &to.operation {
            None => violations.push(field, "`to.operation` must not be nil"),
            Some(operation) => validate_operation(violations, &field, operation),
        }
    }
    for (index, condition) in rule.when.iter().enumerate() {
        let field = format!("{field}.when[{index}]");
        if condition.values.is_empty() && condition.not_values.is_empty() {
            violations.push(&field, "at least one of values or notValues must be set");
        }
        match ConditionKey::parse(&condition.key) {
            Err(message) => violations.push(format!("{field}.key"), message),
            Ok(key) => {
                for (name, values) in [
                    ("values", &condition.values),
                    ("notValues", &condition.not_values),
                ] {
                    condition_values(violations, &format!("{field}.{name}"), &key, values);
                }
            }
        }
    }
}

fn validate_source(violations: &mut Violations, field: &str, source: &Source) {
    let fields = source.fields();
    if fields.iter().all(|(_, values)| values.is_empty()) {
        violations.push(field, "`from.source` must not be empty");
    }
    for (name, values) in fields {
        let field = format!("{field}.{name}");
        non_empty_values(violations, &field, values);
        if name.ends_with("pBlocks") || name.ends_with("PBlocks") {
            each_value(violations, &field, values, ip_or_cidr);
        }
    }
}

fn validate_operation(violations: &mut Violations, field: &str, operation: &Operation) {
    let fields = operation.fields();
    if fields.iter().all(|(_, values)| values.is_empty()) {
        violations.push(field, "`to.operation` must not be empty");
    }
    for (name, values) in fields {
        let field = format!("{field}.{name}");
        non_empty_values(violations, &field, values);
        if name.ends_with("orts") {
            each_value(violations, &field, values, port);
        }
    }
}

fn condition_values(
    violations: &mut Violations,
    field: &str,
    key: &ConditionKey,
    values: &[String],
) {
    non_empty_values(violations, field, values);
    match key {
        ConditionKey::SourceIp | ConditionKey::RemoteIp | ConditionKey::DestinationIp => {
            each_value(violations, field, values, ip_or_cidr);
        }
        ConditionKey::DestinationPort => each_value(violations, field, values, port),
        _ => {}
    }
}

fn non_empty_values(violations: &mut Violations, field: &str, values: &[String]) {
    if values.iter().any(String::is_empty) {
        violations.push(field, format!("empty value not allowed, found in {field}"));
    }
}

fn each_value(
    violations: &mut Violations,
    field: &str,
    values: &[String],
    check: fn(&str) -> Result<(), String>,
) {
    for (index, value) in values.iter().enumerate() {
        if value.is_empty() {
            continue;
        }
        if let Err(message) = check(value) {
            violations.push(format!("{field}[{index}]"), message);
        }
    }
}

fn port(value: &str) -> Result<(), String> {
    match value.parse::<u32>() {
        Ok(port) if (1..=65535).contains(&port) => Ok(()),
        _ => Err(format!("invalid port: {value}")),
    }
}
