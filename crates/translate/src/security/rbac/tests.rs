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
use super::{NETWORK_RBAC_FILTER, RBAC_FILTER, network_rbac_filters, rbac_filters};

fn policy(namespace: &str, name: &str, spec: &str) -> String {
    resource("AuthorizationPolicy", namespace, name, spec)
}

/// (action, policy names) of each filter, in order.
fn filters_for(yaml: &str, namespace: &str, app: &str) -> Vec<(&'static str, Vec<String>)> {
    rbac_filters(&snapshot(yaml), &sidecar(namespace, app), &[])
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
            "sa-allow",
            "{rules: [{from: [{source: {serviceAccounts: [default/reviews]}}]}, {to: [{operation: {methods: [GET]}}]}]}",
        ),
        policy(
            "default",
            "sni-deny",
            "{action: DENY, rules: [{when: [{key: connection.sni, values: [a]}]}]}",
        ),
        policy("default", "ext", "{action: CUSTOM, provider: {name: opa}, rules: [{to: [{operation: {paths: ['/x']}}]}]}"),
    ]
    .concat();
    let filters = rbac_filters(&snapshot(&yaml), &sidecar("default", "reviews"), &[]);
    let [deny, allow] = filters.as_slice() else {
        panic!("expected DENY and ALLOW filters, got {filters:?}");
    };
    let deny = decode(deny);
    // A CUSTOM policy whose provider the mesh config lacks denies what it matches.
    let ext = &deny.policies["ns[default]-policy[ext]-rule[0]"];
    assert_ne!(ext.permissions, vec![any_permission()]);
    assert_eq!(ext.principals, vec![any_principal()]);
    // connection.sni is enforced on HTTP too: the connection's server name.
    let sni = &deny.policies["ns[default]-policy[sni-deny]-rule[0]"];
    assert!(
        matches!(
            sni.permissions[0].rule,
            Some(permission::Rule::RequestedServerName(_))
        ),
        "{sni:?}"
    );
    // The serviceAccounts rule is dropped; the enforceable one stays.
    let allow = decode(allow);
    let kept: Vec<_> = allow.policies.keys().collect();
    assert_eq!(kept, ["ns[default]-policy[sa-allow]-rule[1]"]);
}

#[test]
fn jwt_rules_become_metadata_principals() {
    let yaml = policy(
        "default",
        "jwt",
        "{rules: [{from: [{source: {requestPrincipals: ['issuer/alice'], notRequestPrincipals: ['*/mallory']}}], when: [{key: 'request.auth.claims[groups]', values: [group1]}, {key: request.auth.audiences, values: [app]}, {key: request.auth.presenter, values: [web]}, {key: request.auth.principal, values: ['*']}]}]}",
    );
    let filters = rbac_filters(&snapshot(&yaml), &sidecar("default", "reviews"), &[]);
    let rules = decode(&filters[0]);
    let rule = &rules.policies["ns[default]-policy[jwt]-rule[0]"];
    let Some(principal::Identifier::AndIds(set)) = &rule.principals[0].identifier else {
        panic!("{:?}", rule.principals)
    };
    assert_eq!(set.ids.len(), 5, "the source and four conditions");
    let metadata_paths = |principal: &Principal| {
        let mut paths = Vec::new();
        collect_paths(principal, &mut paths);
        paths
    };
    assert_eq!(
        metadata_paths(&set.ids[0]),
        ["payload.iss", "payload.sub", "payload.iss", "payload.sub"]
    );
    assert_eq!(metadata_paths(&set.ids[1]), ["payload.groups"]);
    assert_eq!(metadata_paths(&set.ids[2]), ["payload.aud"]);
    assert_eq!(metadata_paths(&set.ids[3]), ["payload.azp"]);
    assert_eq!(metadata_paths(&set.ids[4]), ["payload.iss"]);
}

/// The metadata paths a principal tree reads, depth first, dot-joined.
#[allow(deprecated)] // the Metadata principal, as Istio generates it
fn collect_paths(principal: &Principal, paths: &mut Vec<String>) {
    use envoy_types::pb::envoy::r#type::matcher::v3::metadata_matcher::path_segment::Segment;
    match principal.identifier.as_ref().unwrap() {
        principal::Identifier::AndIds(set) | principal::Identifier::OrIds(set) => {
            set.ids.iter().for_each(|id| collect_paths(id, paths));
        }
        principal::Identifier::NotId(id) => collect_paths(id, paths),
        principal::Identifier::Metadata(matcher) => {
            assert_eq!(matcher.filter, "envoy.filters.http.jwt_authn");
            let keys: Vec<&str> = matcher
                .path
                .iter()
                .map(|s| match s.segment.as_ref().unwrap() {
                    Segment::Key(key) => key.as_str(),
                })
                .collect();
            paths.push(keys.join("."));
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn rule_structure() {
    let yaml = policy(
        "default",
        "p",
        "{rules: [{from: [{source: {principals: [cluster.local/ns/default/sa/productpage], notNamespaces: [prod]}}], to: [{operation: {methods: [GET], paths: ['/api*']}}], when: [{key: destination.port, values: ['9080']}, {key: 'request.headers[x-user]', notValues: [bob]}]}]}",
    );
    let filters = rbac_filters(&snapshot(&yaml), &sidecar("default", "reviews"), &[]);
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
    let first = rbac_filters(&snapshot, &node, &[]);
    for _ in 0..4 {
        assert_eq!(rbac_filters(&snapshot, &node, &[]), first);
    }
    assert_eq!(decode(&first[0]).policies.len(), 16);
}

/// (action, policies) of each network filter of `app`, in order.
fn network_filters(yaml: &str, app: &str) -> Vec<(i32, Vec<(String, Policy)>)> {
    use envoy_types::pb::envoy::config::listener::v3::filter::ConfigType;
    use envoy_types::pb::envoy::extensions::filters::network::rbac::v3::Rbac as NetworkRbac;
    network_rbac_filters(&snapshot(yaml), &sidecar("default", app))
        .iter()
        .map(|filter| {
            assert_eq!(filter.name, NETWORK_RBAC_FILTER);
            let Some(ConfigType::TypedConfig(any)) = &filter.config_type else {
                panic!("no typed config");
            };
            let config = NetworkRbac::decode(any.value.as_slice()).unwrap();
            assert_eq!(config.stat_prefix, "tcp.");
            let rules = config.rules.unwrap();
            let mut policies: Vec<_> = rules.policies.into_iter().collect();
            policies.sort_by(|a, b| a.0.cmp(&b.0));
            (rules.action, policies)
        })
        .collect()
}

/// Istio's "Authorization for TCP traffic" task, on the translation side.
#[test]
fn tcp_chains_get_network_filters_without_http_fields() {
    const ALLOW: i32 = 0;
    const DENY: i32 = 1;
    let by_port = policy(
        "default",
        "tcp-policy",
        "{selector: {matchLabels: {app: echo}}, rules: [{from: [{source: {principals: [cluster.local/ns/default/sa/curl]}}], to: [{operation: {ports: ['9000']}}]}]}",
    );
    let filters = network_filters(&by_port, "echo");
    let [(ALLOW, policies)] = filters.as_slice() else {
        panic!("{filters:?}")
    };
    let [(name, rule)] = policies.as_slice() else {
        panic!("{policies:?}")
    };
    assert_eq!(name, "ns[default]-policy[tcp-policy]-rule[0]");
    assert_eq!(
        rule.permissions[0].rule,
        Some(permission::Rule::DestinationPort(9000))
    );
    // An ALLOW rule on methods matches no connection: deny all.
    let allow_get = policy(
        "default",
        "allow-get",
        "{rules: [{to: [{operation: {methods: [GET], ports: ['9000']}}]}]}",
    );
    assert_eq!(network_filters(&allow_get, "echo"), vec![(ALLOW, vec![])]);
    // A DENY rule on methods loses them: it denies every connection to the port.
    let deny_get = policy(
        "default",
        "deny-get",
        "{action: DENY, rules: [{to: [{operation: {methods: [GET], ports: ['9000']}}]}]}",
    );
    let filters = network_filters(&deny_get, "echo");
    let [(DENY, policies)] = filters.as_slice() else {
        panic!("{filters:?}")
    };
    assert_eq!(
        policies[0].1.permissions[0].rule,
        Some(permission::Rule::DestinationPort(9000))
    );
    assert_eq!(policies[0].1.principals, vec![any_principal()]);
    // connection.sni is a connection fact: enforced on TCP, not failed closed.
    let sni = policy(
        "default",
        "sni",
        "{action: DENY, rules: [{when: [{key: connection.sni, values: ['*.internal']}]}]}",
    );
    let filters = network_filters(&sni, "echo");
    assert!(matches!(
        filters[0].1[0].1.permissions[0].rule,
        Some(permission::Rule::RequestedServerName(_))
    ));
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

fn http_provider() -> super::AuthzProvider {
    use super::super::ext_authz::{AuthzProtocol, HttpAuthz};
    super::AuthzProvider {
        name: "sample-ext-authz-http".into(),
        service: "ext-authz.foo.svc.cluster.local".into(),
        port: 8000,
        protocol: AuthzProtocol::Http(HttpAuthz {
            include_request_headers_in_check: vec!["x-ext-authz".into()],
            ..Default::default()
        }),
        timeout: std::time::Duration::from_secs(600),
        fail_open: false,
        status_on_error: None,
        clear_route_cache: false,
    }
}

/// Istio's order: AUDIT, CUSTOM (shadow rules, then the authorizer), DENY, ALLOW.
#[test]
fn custom_policies_become_shadow_rules_and_an_ext_authz_filter() {
    use envoy_types::pb::envoy::extensions::filters::http::ext_authz::v3::{
        ExtAuthz, ext_authz::Services,
    };
    let yaml = [
        policy(
            "foo",
            "ext-authz",
            "{action: CUSTOM, provider: {name: sample-ext-authz-http}, rules: [{to: [{operation: {paths: [/headers]}}]}]}",
        ),
        policy("foo", "deny-post", "{action: DENY, rules: [{to: [{operation: {methods: [POST]}}]}]}"),
        policy("foo", "audit", "{action: AUDIT, rules: [{}]}"),
        policy("foo", "allow-all", "{rules: [{}]}"),
    ]
    .concat();
    let filters = rbac_filters(
        &snapshot(&yaml),
        &sidecar("foo", "httpbin"),
        &[http_provider()],
    );
    let names: Vec<&str> = filters.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        names,
        [
            RBAC_FILTER,
            RBAC_FILTER,
            "envoy.filters.http.ext_authz",
            RBAC_FILTER,
            RBAC_FILTER
        ]
    );
    let Some(http_filter::ConfigType::TypedConfig(any)) = &filters[1].config_type else {
        panic!("typed config");
    };
    let shadow = RbacFilter::decode(any.value.as_slice()).unwrap();
    assert!(shadow.rules.is_none(), "shadow rules enforce nothing");
    assert_eq!(shadow.shadow_rules_stat_prefix, "istio_ext_authz_");
    let shadow_rules = shadow.shadow_rules.unwrap();
    assert_eq!(
        shadow_rules.policies.keys().collect::<Vec<_>>(),
        ["istio-ext-authz-ns[foo]-policy[ext-authz]-rule[0]"]
    );
    let Some(http_filter::ConfigType::TypedConfig(any)) = &filters[2].config_type else {
        panic!("typed config");
    };
    let ext = ExtAuthz::decode(any.value.as_slice()).unwrap();
    let Some(Services::HttpService(http)) = &ext.services else {
        panic!("an HTTP service");
    };
    assert_eq!(
        http.server_uri.as_ref().unwrap().uri,
        "http://ext-authz.foo.svc.cluster.local"
    );
    let allowed = ext.allowed_headers.unwrap().patterns;
    assert_eq!(
        allowed[0].match_pattern,
        Some(MatchPattern::Exact("x-ext-authz".into()))
    );
    assert!(ext.filter_enabled_metadata.is_some());
    // The DENY filter keeps only the DENY policy.
    assert_eq!(
        decode(&filters[3]).policies.keys().collect::<Vec<_>>(),
        ["ns[foo]-policy[deny-post]-rule[0]"]
    );

    // Without the provider in the mesh config, CUSTOM rules deny.
    let unserved = filters_for(&yaml, "foo", "httpbin");
    assert_eq!(unserved[1].0, "DENY");
    assert!(
        unserved[1]
            .1
            .contains(&"ns[foo]-policy[ext-authz]-rule[0]".to_string())
    );
}
