//! RBAC generation: which filters a workload gets, in which order, and
//! what each rule becomes.

use envoy_types::pb::envoy::config::rbac::v3::{
    Permission, Policy, Principal, permission, principal,
};
use envoy_types::pb::envoy::extensions::filters::http::rbac::v3::Rbac as RbacFilter;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpFilter, http_filter,
};
use envoy_types::pb::envoy::r#type::matcher::v3::string_matcher::MatchPattern;
use prost::Message;

use super::super::test_support::{resource, sidecar, snapshot};
use super::{RBAC_FILTER, rbac_filters};

fn policy(namespace: &str, name: &str, spec: &str) -> String {
    resource("AuthorizationPolicy", namespace, name, spec)
}

/// (action, policy names) of each filter, in order.
fn filters_for(yaml: &str, namespace: &str, app: &str) -> Vec<(&'static str, Vec<String>)> {
    rbac_filters(&snapshot(yaml), &sidecar(namespace, app))
        .iter()
        .map(|filter| {
            let rules = decode(filter);
            let mut names: Vec<_> = rules.policies.keys().cloned().collect();
            names.sort();
            let action = match rules.action {
                0 => "ALLOW",
                1 => "DENY",
                _ => "LOG",
            };
            (action, names)
        })
        .collect()
}

fn decode(filter: &HttpFilter) -> envoy_types::pb::envoy::config::rbac::v3::Rbac {
    assert_eq!(filter.name, RBAC_FILTER);
    let Some(http_filter::ConfigType::TypedConfig(any)) = &filter.config_type else {
        panic!("no typed config");
    };
    RbacFilter::decode(any.value.as_slice())
        .unwrap()
        .rules
        .unwrap()
}

fn names(names: &[&str]) -> Vec<String> {
    names.iter().map(|n| n.to_string()).collect()
}

#[test]
fn selection_and_order() {
    let allow_reviews = policy(
        "default",
        "reviews-viewer",
        "{selector: {matchLabels: {app: reviews}}, rules: [{from: [{source: {principals: [a]}}]}]}",
    );
    let deny_ns = policy(
        "default",
        "deny-admin",
        "{action: DENY, rules: [{to: [{operation: {paths: ['/admin*']}}]}]}",
    );
    let mesh_audit = policy("istio-system", "audit", "{action: AUDIT, rules: [{}]}");
    let allow_nothing = policy("default", "allow-nothing", "{}");
    let other_ns = policy("prod", "deny-all", "{action: DENY, rules: [{}]}");
    let gateway_only = policy(
        "default",
        "gw",
        "{targetRefs: [{kind: Gateway, name: gw}], rules: [{}]}",
    );
    type Expected = Vec<(&'static str, Vec<String>)>;
    let cases: Vec<(Vec<&str>, &str, Expected)> = vec![
        (vec![], "reviews", vec![]),
        (vec![&other_ns, &gateway_only], "reviews", vec![]),
        (
            vec![&allow_reviews],
            "reviews",
            vec![(
                "ALLOW",
                names(&["ns[default]-policy[reviews-viewer]-rule[0]"]),
            )],
        ),
        (vec![&allow_reviews], "ratings", vec![]),
        // An ALLOW policy without rules: an ALLOW filter without policies.
        (vec![&allow_nothing], "ratings", vec![("ALLOW", vec![])]),
        (
            vec![&allow_reviews, &deny_ns, &mesh_audit],
            "reviews",
            vec![
                ("LOG", names(&["ns[istio-system]-policy[audit]-rule[0]"])),
                ("DENY", names(&["ns[default]-policy[deny-admin]-rule[0]"])),
                (
                    "ALLOW",
                    names(&["ns[default]-policy[reviews-viewer]-rule[0]"]),
                ),
            ],
        ),
    ];
    for (policies, app, expected) in cases {
        let yaml = policies.concat();
        assert_eq!(
            filters_for(&yaml, "default", app),
            expected,
            "{app}:\n{yaml}"
        );
    }
}

#[test]
fn unenforceable_rules_fail_closed() {
    let yaml = [
        policy(
            "default",
            "jwt-allow",
            "{rules: [{from: [{source: {requestPrincipals: ['*']}}]}, {to: [{operation: {methods: [GET]}}]}]}",
        ),
        policy(
            "default",
            "sni-deny",
            "{action: DENY, rules: [{when: [{key: connection.sni, values: [a]}]}]}",
        ),
        policy("default", "ext", "{action: CUSTOM, provider: {name: opa}, rules: [{to: [{operation: {paths: ['/x']}}]}]}"),
    ]
    .concat();
    let filters = rbac_filters(&snapshot(&yaml), &sidecar("default", "reviews"));
    let [deny, allow] = filters.as_slice() else {
        panic!("expected DENY and ALLOW filters, got {filters:?}");
    };
    let deny = decode(deny);
    for name in [
        "ns[default]-policy[ext]-rule[0]",
        "ns[default]-policy[sni-deny]-rule[0]",
    ] {
        let rule = &deny.policies[name];
        assert_eq!(rule.permissions, vec![any_permission()], "{name}");
        assert_eq!(rule.principals, vec![any_principal()], "{name}");
    }
    // The JWT rule is dropped; the enforceable one stays.
    let allow = decode(allow);
    let kept: Vec<_> = allow.policies.keys().collect();
    assert_eq!(kept, ["ns[default]-policy[jwt-allow]-rule[1]"]);
}

#[test]
fn rule_structure() {
    let yaml = policy(
        "default",
        "p",
        "{rules: [{from: [{source: {principals: [cluster.local/ns/default/sa/productpage], notNamespaces: [prod]}}], to: [{operation: {methods: [GET], paths: ['/api*']}}], when: [{key: destination.port, values: ['9080']}, {key: 'request.headers[x-user]', notValues: [bob]}]}]}",
    );
    let filters = rbac_filters(&snapshot(&yaml), &sidecar("default", "reviews"));
    let rules = decode(&filters[0]);
    let rule: &Policy = &rules.policies["ns[default]-policy[p]-rule[0]"];
    let [permission] = rule.permissions.as_slice() else {
        panic!()
    };
    let Some(permission::Rule::AndRules(set)) = &permission.rule else {
        panic!("{permission:?}")
    };
    assert_eq!(set.rules.len(), 2, "operation and destination.port");
    assert_eq!(
        set.rules[1].rule,
        Some(permission::Rule::DestinationPort(9080))
    );
    let [principal] = rule.principals.as_slice() else {
        panic!()
    };
    let Some(principal::Identifier::AndIds(set)) = &principal.identifier else {
        panic!("{principal:?}")
    };
    assert_eq!(set.ids.len(), 2, "source and header condition");
    let Some(principal::Identifier::AndIds(source)) = &set.ids[0].identifier else {
        panic!()
    };
    let Some(principal::Identifier::Authenticated(authenticated)) = &source.ids[0].identifier
    else {
        panic!()
    };
    assert_eq!(
        authenticated.principal_name.as_ref().unwrap().match_pattern,
        Some(MatchPattern::Exact(
            "spiffe://cluster.local/ns/default/sa/productpage".into()
        ))
    );
    assert!(matches!(
        source.ids[1].identifier,
        Some(principal::Identifier::NotId(_))
    ));
    assert!(matches!(
        set.ids[1].identifier,
        Some(principal::Identifier::NotId(_))
    ));
}

#[test]
fn encoding_is_stable() {
    let yaml: String = (0..8)
        .map(|i| policy("default", &format!("p{i}"), "{rules: [{}, {}]}"))
        .collect();
    let snapshot = snapshot(&yaml);
    let node = sidecar("default", "reviews");
    let first = rbac_filters(&snapshot, &node);
    for _ in 0..4 {
        assert_eq!(rbac_filters(&snapshot, &node), first);
    }
    assert_eq!(decode(&first[0]).policies.len(), 16);
}

fn any_permission() -> Permission {
    Permission {
        rule: Some(permission::Rule::Any(true)),
    }
}

fn any_principal() -> Principal {
    Principal {
        identifier: Some(principal::Identifier::Any(true)),
    }
}
