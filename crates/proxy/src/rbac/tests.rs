//! RBAC matching over request facts, table-driven.

use envoy_types::pb::envoy::config::core::v3::CidrRange;
use envoy_types::pb::envoy::config::rbac::v3::{
    Permission, Policy, Principal, Rbac, permission, principal, rbac::Action as XdsAction,
};
use envoy_types::pb::envoy::config::route::v3::{
    HeaderMatcher, header_matcher::HeaderMatchSpecifier,
};
use envoy_types::pb::envoy::extensions::filters::http::rbac::v3::Rbac as RbacConfig;
use envoy_types::pb::envoy::r#type::matcher::v3::{
    PathMatcher, RegexMatcher, StringMatcher, path_matcher, string_matcher::MatchPattern,
};
use envoy_types::pb::google::protobuf::UInt32Value;
use http::HeaderMap;
use prost::Message;

use super::{RbacFilter, RequestFacts, Verdict};

const PRODUCTPAGE: &str = "spiffe://cluster.local/ns/default/sa/bookinfo-productpage";

fn text(pattern: MatchPattern) -> StringMatcher {
    StringMatcher {
        match_pattern: Some(pattern),
        ignore_case: false,
    }
}

fn principal_named(pattern: MatchPattern) -> Principal {
    Principal {
        identifier: Some(principal::Identifier::Authenticated(
            principal::Authenticated {
                principal_name: Some(text(pattern)),
            },
        )),
    }
}

fn rule(rule: permission::Rule) -> Permission {
    Permission { rule: Some(rule) }
}

fn any_principal() -> Principal {
    Principal {
        identifier: Some(principal::Identifier::Any(true)),
    }
}

fn filter(action: XdsAction, policies: Vec<(&str, Policy)>) -> RbacFilter {
    let config = RbacConfig {
        rules: Some(Rbac {
            action: action as i32,
            policies: policies
                .into_iter()
                .map(|(name, policy)| (name.to_string(), policy))
                .collect(),
            ..Default::default()
        }),
        ..Default::default()
    };
    RbacFilter::compile(&config.encode_to_vec()).unwrap()
}

struct Request {
    path: &'static str,
    principal: Option<&'static str>,
    source: &'static str,
    headers: HeaderMap,
}

fn request(path: &'static str, principal: Option<&'static str>) -> Request {
    Request {
        path,
        principal,
        source: "127.0.0.9:40000",
        headers: HeaderMap::new(),
    }
}

fn verdict(filter: &RbacFilter, request: &Request) -> Verdict {
    filter.evaluate(&RequestFacts {
        method: "GET",
        authority: "reviews:9080",
        path: request.path,
        headers: &request.headers,
        principal: request.principal,
        source: request.source.parse().unwrap(),
        destination: "127.0.0.5:9080".parse().unwrap(),
        jwt: None,
        server_name: None,
    })
}

#[test]
fn allow_matches_principal_and_denies_the_rest() {
    let allow = filter(
        XdsAction::Allow,
        vec![(
            "productpage",
            Policy {
                permissions: vec![rule(permission::Rule::DestinationPort(9080))],
                principals: vec![principal_named(MatchPattern::Exact(PRODUCTPAGE.into()))],
                ..Default::default()
            },
        )],
    );
    let cases = [
        (request("/reviews/1", Some(PRODUCTPAGE)), true),
        (
            request(
                "/reviews/1",
                Some("spiffe://cluster.local/ns/default/sa/other"),
            ),
            false,
        ),
        (request("/reviews/1", None), false),
    ];
    for (request, allowed) in cases {
        assert_eq!(
            verdict(&allow, &request) == Verdict::Allowed,
            allowed,
            "{:?}",
            request.principal
        );
    }
    assert_eq!(
        verdict(
            &filter(XdsAction::Allow, vec![]),
            &request("/", Some(PRODUCTPAGE))
        ),
        Verdict::Denied { policy: None },
        "an ALLOW filter without policies denies everything"
    );
}

#[test]
fn deny_on_path_prefix_ignores_the_query() {
    let admin = PathMatcher {
        rule: Some(path_matcher::Rule::Path(text(MatchPattern::Prefix(
            "/admin".into(),
        )))),
    };
    let deny = filter(
        XdsAction::Deny,
        vec![(
            "ns[default]-policy[deny-admin]-rule[0]",
            Policy {
                permissions: vec![rule(permission::Rule::UrlPath(admin))],
                principals: vec![any_principal()],
                ..Default::default()
            },
        )],
    );
    let denied = Verdict::Denied {
        policy: Some("ns[default]-policy[deny-admin]-rule[0]".into()),
    };
    assert_eq!(verdict(&deny, &request("/admin/users", None)), denied);
    assert_eq!(verdict(&deny, &request("/admin?x=1", None)), denied);
    assert_eq!(
        verdict(&deny, &request("/api?next=/admin", None)),
        Verdict::Allowed
    );
}

#[test]
fn combinators_ips_headers_and_regexes() {
    let namespace = principal_named(MatchPattern::SafeRegex(RegexMatcher {
        regex: ".*/ns/default/.*".into(),
        ..Default::default()
    }));
    let loopback_block = Principal {
        identifier: Some(principal::Identifier::DirectRemoteIp(CidrRange {
            address_prefix: "127.0.0.0".into(),
            prefix_len: Some(UInt32Value { value: 24 }),
        })),
    };
    let admin_header = Principal {
        identifier: Some(principal::Identifier::Header(HeaderMatcher {
            name: "x-user".into(),
            header_match_specifier: Some(HeaderMatchSpecifier::StringMatch(text(
                MatchPattern::Exact("admin".into()),
            ))),
            ..Default::default()
        })),
    };
    let not_admin = Principal {
        identifier: Some(principal::Identifier::NotId(Box::new(admin_header))),
    };
    let all = Principal {
        identifier: Some(principal::Identifier::AndIds(principal::Set {
            ids: vec![namespace, loopback_block, not_admin],
        })),
    };
    let allow = filter(
        XdsAction::Allow,
        vec![(
            "p",
            Policy {
                permissions: vec![rule(permission::Rule::Any(true))],
                principals: vec![all],
                ..Default::default()
            },
        )],
    );
    let mut admin = request("/", Some(PRODUCTPAGE));
    admin.headers.insert("x-user", "admin".parse().unwrap());
    let mut elsewhere = request("/", Some(PRODUCTPAGE));
    elsewhere.source = "127.0.1.9:40000";
    let cases = [
        (request("/", Some(PRODUCTPAGE)), true),
        (
            request("/", Some("spiffe://cluster.local/ns/prod/sa/a")),
            false,
        ),
        (admin, false),
        (elsewhere, false),
    ];
    for (index, (request, allowed)) in cases.into_iter().enumerate() {
        assert_eq!(
            verdict(&allow, &request) == Verdict::Allowed,
            allowed,
            "case {index}"
        );
    }
}

/// Istio's CUSTOM action: shadow rules only name the policy they match.
#[test]
fn shadow_rules_publish_the_matched_policy_without_enforcing() {
    let admin_only = Policy {
        permissions: vec![rule(permission::Rule::UrlPath(PathMatcher {
            rule: Some(path_matcher::Rule::Path(text(MatchPattern::Prefix(
                "/admin".into(),
            )))),
        }))],
        principals: vec![any_principal()],
        ..Default::default()
    };
    let config = RbacConfig {
        shadow_rules: Some(Rbac {
            action: XdsAction::Deny as i32,
            policies: [(
                "istio-ext-authz-ns[default]-policy[ext]-rule[0]".to_string(),
                admin_only,
            )]
            .into(),
            ..Default::default()
        }),
        shadow_rules_stat_prefix: "istio_ext_authz_".into(),
        ..Default::default()
    };
    let filter = RbacFilter::compile(&config.encode_to_vec()).unwrap();
    let headers = HeaderMap::new();
    let facts = |path| RequestFacts {
        method: "GET",
        authority: "reviews:9080",
        path,
        headers: &headers,
        principal: None,
        source: "127.0.0.9:40000".parse().unwrap(),
        destination: "127.0.0.5:9080".parse().unwrap(),
        jwt: None,
        server_name: None,
    };
    assert_eq!(filter.evaluate(&facts("/admin/x")), Verdict::Allowed);
    assert_eq!(
        filter.shadow_effective_policy(&facts("/admin/x")),
        Some((
            "istio_ext_authz_shadow_effective_policy_id",
            "istio-ext-authz-ns[default]-policy[ext]-rule[0]"
        ))
    );
    assert_eq!(filter.shadow_effective_policy(&facts("/public")), None);
}

/// `connection.sni` on HTTP: the server name of the request's connection.
#[test]
fn requested_server_name_reads_the_connections_client_hello() {
    let deny = filter(
        XdsAction::Deny,
        vec![(
            "sni",
            Policy {
                permissions: vec![rule(permission::Rule::RequestedServerName(text(
                    MatchPattern::Suffix(".internal".into()),
                )))],
                principals: vec![any_principal()],
                ..Default::default()
            },
        )],
    );
    let headers = HeaderMap::new();
    let facts = |server_name| RequestFacts {
        method: "GET",
        authority: "reviews:9080",
        path: "/",
        headers: &headers,
        principal: None,
        source: "127.0.0.9:40000".parse().unwrap(),
        destination: "127.0.0.5:9080".parse().unwrap(),
        jwt: None,
        server_name,
    };
    assert!(matches!(
        deny.evaluate(&facts(Some("db.internal"))),
        Verdict::Denied { policy: Some(_) }
    ));
    for allowed in [Some("db.example.com"), None] {
        assert_eq!(
            deny.evaluate(&facts(allowed)),
            Verdict::Allowed,
            "{allowed:?}"
        );
    }
}
