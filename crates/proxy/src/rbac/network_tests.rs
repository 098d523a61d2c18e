//! The network RBAC filter: compiled from its own config, refusing what
//! only a request shows, and deciding over connection facts.

use envoy_types::pb::envoy::config::core::v3::CidrRange;
use envoy_types::pb::envoy::config::rbac::v3::{
    Permission, Policy, Principal, Rbac, permission, principal, rbac::Action,
};
use envoy_types::pb::envoy::config::route::v3::HeaderMatcher;
use envoy_types::pb::envoy::extensions::filters::network::rbac::v3::Rbac as NetworkConfig;
use envoy_types::pb::envoy::r#type::matcher::v3::{StringMatcher, string_matcher::MatchPattern};
use envoy_types::pb::google::protobuf::{Duration, UInt32Value};
use prost::Message;

use super::{ConnectionFacts, RbacFilter, Verdict};

const CURL: &str = "spiffe://cluster.local/ns/foo/sa/curl";

fn exact(value: &str) -> StringMatcher {
    StringMatcher {
        match_pattern: Some(MatchPattern::Exact(value.into())),
        ignore_case: false,
    }
}

fn permission(rule: permission::Rule) -> Permission {
    Permission { rule: Some(rule) }
}

fn principal(id: principal::Identifier) -> Principal {
    Principal {
        identifier: Some(id),
    }
}

fn rules(action: Action, policies: Vec<(&str, Policy)>) -> Rbac {
    Rbac {
        action: action as i32,
        policies: policies
            .into_iter()
            .map(|(name, policy)| (name.to_string(), policy))
            .collect(),
        ..Default::default()
    }
}

fn network(action: Action, policies: Vec<(&str, Policy)>) -> Result<RbacFilter, &'static str> {
    let config = NetworkConfig {
        rules: Some(rules(action, policies)),
        stat_prefix: "tcp.".into(),
        ..Default::default()
    };
    RbacFilter::compile_network(&config.encode_to_vec()).map_err(|e| e.0)
}

fn policy(permissions: Vec<Permission>, principals: Vec<Principal>) -> Policy {
    Policy {
        permissions,
        principals,
        ..Default::default()
    }
}

fn connection(
    principal: Option<&'static str>,
    source: &str,
    port: u16,
    sni: Option<&'static str>,
) -> ConnectionFacts<'static> {
    ConnectionFacts {
        principal,
        source: source.parse().unwrap(),
        destination: format!("10.0.0.3:{port}").parse().unwrap(),
        server_name: sni,
    }
}

/// Istio's TCP task: only curl may reach port 9000; other ports are closed.
#[test]
fn allow_by_principal_and_port() {
    let filter = network(
        Action::Allow,
        vec![(
            "ns[foo]-policy[tcp-policy]-rule[0]",
            policy(
                vec![permission(permission::Rule::DestinationPort(9000))],
                vec![principal(principal::Identifier::Authenticated(
                    principal::Authenticated {
                        principal_name: Some(exact(CURL)),
                    },
                ))],
            ),
        )],
    )
    .unwrap();
    let cases = [
        (connection(Some(CURL), "10.0.0.2:4000", 9000, None), true),
        (connection(None, "10.0.0.2:4000", 9000, None), false),
        (
            connection(
                Some("spiffe://cluster.local/ns/foo/sa/other"),
                "10.0.0.2:1",
                9000,
                None,
            ),
            false,
        ),
        (connection(Some(CURL), "10.0.0.2:4000", 9001, None), false),
    ];
    for (facts, allowed) in cases {
        let verdict = filter.evaluate_connection(&facts);
        assert_eq!(verdict == Verdict::Allowed, allowed, "{facts:?}");
    }
    let denied = filter.evaluate_connection(&connection(None, "10.0.0.2:1", 9000, None));
    assert_eq!(
        denied.details().as_deref(),
        Some("rbac_access_denied_matched_policy[none]")
    );
}

#[test]
fn deny_by_source_block_and_server_name_names_the_policy() {
    let filter = network(
        Action::Deny,
        vec![(
            "ns[foo]-policy[deny]-rule[0]",
            policy(
                vec![permission(permission::Rule::RequestedServerName(exact(
                    "db.internal",
                )))],
                vec![principal(principal::Identifier::DirectRemoteIp(
                    CidrRange {
                        address_prefix: "10.1.0.0".into(),
                        prefix_len: Some(UInt32Value { value: 16 }),
                    },
                ))],
            ),
        )],
    )
    .unwrap();
    let denied =
        filter.evaluate_connection(&connection(None, "10.1.2.3:5", 5432, Some("db.internal")));
    assert_eq!(
        denied.details().as_deref(),
        Some("rbac_access_denied_matched_policy[ns[foo]-policy[deny]-rule[0]]")
    );
    for allowed in [
        connection(None, "10.2.0.1:5", 5432, Some("db.internal")),
        connection(None, "10.1.2.3:5", 5432, Some("other.internal")),
        connection(None, "10.1.2.3:5", 5432, None),
    ] {
        assert_eq!(filter.evaluate_connection(&allowed), Verdict::Allowed);
    }
}

#[test]
fn request_matchers_are_refused_on_connections() {
    let header = permission(permission::Rule::Header(HeaderMatcher {
        name: ":method".into(),
        ..Default::default()
    }));
    let any_principal = principal(principal::Identifier::Any(true));
    let not_header = permission(permission::Rule::NotRule(Box::new(header.clone())));
    for permissions in [vec![header], vec![not_header]] {
        let refused = network(
            Action::Deny,
            vec![("p", policy(permissions, vec![any_principal.clone()]))],
        );
        assert!(refused.is_err(), "{refused:?}");
    }
    let delayed = NetworkConfig {
        rules: Some(rules(Action::Allow, vec![])),
        delay_deny: Some(Duration {
            seconds: 1,
            nanos: 0,
        }),
        ..Default::default()
    };
    assert!(RbacFilter::compile_network(&delayed.encode_to_vec()).is_err());
    assert!(RbacFilter::compile_network(b"\xff\xff").is_err());
}

/// An ALLOW filter without policies (an ALLOW policy whose rules all
/// needed HTTP) closes every connection.
#[test]
fn allow_without_policies_denies_everything() {
    let filter = network(Action::Allow, vec![]).unwrap();
    let facts = connection(Some(CURL), "10.0.0.2:4000", 9000, None);
    assert!(matches!(
        filter.evaluate_connection(&facts),
        Verdict::Denied { policy: None }
    ));
}
