//! AuthorizationPolicy rules on TCP traffic, as Istio applies them: the
//! network RBAC filter sees connections, not requests, so a rule's
//! HTTP-only fields (hosts, methods, paths, requestPrincipals,
//! `request.headers[..]` and `request.auth.*` conditions) cannot match.
//! An ALLOW rule that uses any of them is dropped (it matches nothing); a
//! DENY, AUDIT or CUSTOM rule loses them and so becomes broader, down to
//! every connection when nothing else is left.

use trellis_api::{
    AuthorizationAction, Condition, ConditionKey, Operation, Rule, RuleFrom, RuleTo, Source,
};

/// `rule` as the network filter can evaluate it under `action`; `None`:
/// an ALLOW rule that needs HTTP and so matches no connection.
pub fn l4_rule(rule: &Rule, action: AuthorizationAction) -> Option<Rule> {
    if action == AuthorizationAction::Allow {
        return (!uses_http(rule)).then(|| rule.clone());
    }
    Some(Rule {
        from: rule
            .from
            .iter()
            .map(|from| RuleFrom {
                source: from.source.as_ref().map(l4_source),
            })
            .collect(),
        to: rule
            .to
            .iter()
            .map(|to| RuleTo {
                operation: to.operation.as_ref().map(l4_operation),
            })
            .collect(),
        when: rule
            .when
            .iter()
            .filter(|c| !http_condition(c))
            .cloned()
            .collect(),
    })
}

fn uses_http(rule: &Rule) -> bool {
    let sources = rule.from.iter().filter_map(|f| f.source.as_ref());
    let operations = rule.to.iter().filter_map(|t| t.operation.as_ref());
    sources
        .clone()
        .any(|s| !s.request_principals.is_empty() || !s.not_request_principals.is_empty())
        || operations.clone().any(|o| *o != l4_operation(o))
        || rule.when.iter().any(http_condition)
}

fn l4_source(source: &Source) -> Source {
    Source {
        request_principals: Vec::new(),
        not_request_principals: Vec::new(),
        ..source.clone()
    }
}

/// Only `ports` and `notPorts` describe a connection.
fn l4_operation(operation: &Operation) -> Operation {
    Operation {
        ports: operation.ports.clone(),
        not_ports: operation.not_ports.clone(),
        ..Operation::default()
    }
}

/// A condition on the request rather than the connection. Keys that do
/// not parse stay, so that translation refuses them as it does for HTTP.
fn http_condition(condition: &Condition) -> bool {
    matches!(
        ConditionKey::parse(&condition.key),
        Ok(ConditionKey::RequestHeader(_)
            | ConditionKey::RequestAuthPrincipal
            | ConditionKey::RequestAuthAudiences
            | ConditionKey::RequestAuthPresenter
            | ConditionKey::RequestAuthClaim(_))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(json: &str) -> Rule {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn allow_rules_with_http_fields_are_dropped() {
        let l4 = rule(
            r#"{"from": [{"source": {"principals": ["a"]}}], "to": [{"operation": {"ports": ["9000"]}}],
                "when": [{"key": "source.ip", "values": ["10.0.0.1"]}]}"#,
        );
        assert_eq!(l4_rule(&l4, AuthorizationAction::Allow), Some(l4.clone()));
        for http in [
            r#"{"to": [{"operation": {"ports": ["9000"], "methods": ["GET"]}}]}"#,
            r#"{"to": [{"operation": {"notPaths": ["/x"]}}]}"#,
            r#"{"from": [{"source": {"requestPrincipals": ["*"]}}]}"#,
            r#"{"when": [{"key": "request.headers[x-user]", "values": ["a"]}]}"#,
            r#"{"when": [{"key": "request.auth.claims[iss]", "values": ["a"]}]}"#,
        ] {
            let dropped = l4_rule(&rule(http), AuthorizationAction::Allow);
            assert_eq!(dropped, None, "{http}");
        }
    }

    #[test]
    fn deny_rules_lose_their_http_fields() {
        let deny = rule(
            r#"{"from": [{"source": {"namespaces": ["foo"], "requestPrincipals": ["*"]}}],
                "to": [{"operation": {"ports": ["9000"], "methods": ["GET"], "hosts": ["a"]}}],
                "when": [{"key": "request.auth.principal", "values": ["x"]},
                         {"key": "destination.port", "values": ["9000"]}]}"#,
        );
        let expected = rule(
            r#"{"from": [{"source": {"namespaces": ["foo"]}}], "to": [{"operation": {"ports": ["9000"]}}],
                "when": [{"key": "destination.port", "values": ["9000"]}]}"#,
        );
        for action in [
            AuthorizationAction::Deny,
            AuthorizationAction::Audit,
            AuthorizationAction::Custom,
        ] {
            assert_eq!(l4_rule(&deny, action), Some(expected.clone()));
        }
        // Nothing left but an empty operation: every connection.
        let methods_only = rule(r#"{"to": [{"operation": {"methods": ["GET"]}}]}"#);
        let everything = l4_rule(&methods_only, AuthorizationAction::Deny).unwrap();
        assert_eq!(everything.to[0].operation, Some(Operation::default()));
    }
}
