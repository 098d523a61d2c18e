//! JWT filter generation: which rules a workload gets and what each
//! provider says.

use envoy_types::pb::envoy::config::core::v3::data_source;
use envoy_types::pb::envoy::extensions::filters::http::jwt_authn::v3::{
    JwtAuthentication, jwt_provider::JwksSourceSpecifier, jwt_requirement::RequiresType,
    requirement_rule::RequirementType,
};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_filter;
use prost::Message;

use super::super::test_support::{resource, sidecar, snapshot};
use super::{EMPTY_JWKS, JWT_FILTER, PAYLOAD_METADATA_KEY, jwt_filter};

fn policy(namespace: &str, name: &str, spec: &str) -> String {
    resource("RequestAuthentication", namespace, name, spec)
}

fn config_for(yaml: &str, namespace: &str, app: &str) -> Option<JwtAuthentication> {
    let filter = jwt_filter(&snapshot(yaml), &sidecar(namespace, app))?;
    assert_eq!(filter.name, JWT_FILTER);
    let Some(http_filter::ConfigType::TypedConfig(any)) = &filter.config_type else {
        panic!("no typed config");
    };
    Some(JwtAuthentication::decode(any.value.as_slice()).unwrap())
}

/// Issuers by provider name.
fn issuers(config: &JwtAuthentication) -> Vec<(String, String)> {
    let mut issuers: Vec<_> = config
        .providers
        .iter()
        .map(|(name, p)| (name.clone(), p.issuer.clone()))
        .collect();
    issuers.sort();
    issuers
}

#[test]
fn mesh_namespace_and_selector_rules_all_apply() {
    let yaml = [
        policy("istio-system", "mesh", "{jwtRules: [{issuer: mesh}]}"),
        policy("default", "ns", "{jwtRules: [{issuer: ns}]}"),
        policy(
            "default",
            "reviews",
            "{selector: {matchLabels: {app: reviews}}, jwtRules: [{issuer: reviews}]}",
        ),
        policy("other", "elsewhere", "{jwtRules: [{issuer: other}]}"),
        policy(
            "default",
            "gateway",
            "{targetRefs: [{kind: Gateway, name: gw}], jwtRules: [{issuer: gw}]}",
        ),
    ]
    .concat();
    let reviews = config_for(&yaml, "default", "reviews").unwrap();
    let pairs = |list: &[(&str, &str)]| -> Vec<(String, String)> {
        list.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    };
    // Snapshot order: kind, namespace, name.
    assert_eq!(
        issuers(&reviews),
        pairs(&[
            ("origins-0", "ns"),
            ("origins-1", "reviews"),
            ("origins-2", "mesh")
        ])
    );
    let ratings = config_for(&yaml, "default", "ratings").unwrap();
    assert_eq!(
        issuers(&ratings),
        pairs(&[("origins-0", "ns"), ("origins-1", "mesh")])
    );
    assert!(
        config_for(
            &policy("other", "x", "{jwtRules: [{issuer: o}]}"),
            "default",
            "a"
        )
        .is_none()
    );
    assert!(config_for(&policy("default", "x", "{}"), "default", "a").is_none());
}

#[test]
fn any_provider_or_no_token_passes() {
    let yaml = policy("default", "two", "{jwtRules: [{issuer: a}, {issuer: b}]}");
    let config = config_for(&yaml, "default", "reviews").unwrap();
    assert!(config.bypass_cors_preflight);
    let [rule] = config.rules.as_slice() else {
        panic!("one rule expected");
    };
    let Some(RequirementType::Requires(requires)) = &rule.requirement_type else {
        panic!("no requirement");
    };
    let Some(RequiresType::RequiresAny(any)) = &requires.requires_type else {
        panic!("not requires_any");
    };
    let kinds: Vec<String> = any
        .requirements
        .iter()
        .map(|r| match &r.requires_type {
            Some(RequiresType::ProviderName(name)) => name.clone(),
            Some(RequiresType::AllowMissing(_)) => "allow_missing".into(),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(kinds, ["origins-0", "origins-1", "allow_missing"]);
}

#[test]
fn provider_fields_follow_the_rule() {
    let yaml = policy(
        "default",
        "full",
        r#"{jwtRules: [{issuer: "https://issuer.example", audiences: [app1], jwks: '{"keys":[{"kty":"oct"}]}', fromHeaders: [{name: x-token, prefix: "Bearer "}], fromParams: [tok], fromCookies: [session], outputPayloadToHeader: x-payload, forwardOriginalToken: true, outputClaimToHeaders: [{header: x-group, claim: groups}]}, {issuer: unfetched, jwksUri: "https://keys.example/jwks"}]}"#,
    );
    let config = config_for(&yaml, "default", "reviews").unwrap();
    let full = &config.providers["origins-0"];
    assert_eq!(full.audiences, ["app1"]);
    assert_eq!(full.from_headers[0].name, "x-token");
    assert_eq!(full.from_headers[0].value_prefix, "Bearer ");
    assert_eq!(full.from_params, ["tok"]);
    assert_eq!(full.from_cookies, ["session"]);
    assert_eq!(full.forward_payload_header, "x-payload");
    assert!(full.forward);
    assert_eq!(full.claim_to_headers[0].header_name, "x-group");
    assert_eq!(full.claim_to_headers[0].claim_name, "groups");
    assert_eq!(full.payload_in_metadata, PAYLOAD_METADATA_KEY);
    let inline = |name: &str| match &config.providers[name].jwks_source_specifier {
        Some(JwksSourceSpecifier::LocalJwks(source)) => match &source.specifier {
            Some(data_source::Specifier::InlineString(jwks)) => jwks.clone(),
            other => panic!("{other:?}"),
        },
        other => panic!("{other:?}"),
    };
    assert_eq!(inline("origins-0"), r#"{"keys":[{"kty":"oct"}]}"#);
    // Keys not (yet) fetched: fail closed.
    assert_eq!(inline("origins-1"), EMPTY_JWKS);
    assert!(!config.providers["origins-1"].forward);
}

#[test]
fn encoding_is_deterministic() {
    let yaml = policy(
        "default",
        "many",
        "{jwtRules: [{issuer: a}, {issuer: b}, {issuer: c}, {issuer: d}, {issuer: e}]}",
    );
    let (snapshot, node) = (snapshot(&yaml), sidecar("default", "reviews"));
    let first = jwt_filter(&snapshot, &node);
    for _ in 0..10 {
        assert_eq!(jwt_filter(&snapshot, &node), first);
    }
}
