//! Table-driven checks of the PeerAuthentication and AuthorizationPolicy
//! rules: accepted specs, and rejected ones with the field and Istio's message.

use std::path::Path;

use super::parse_yaml;
use crate::{AnyResource, AuthorizationAction, ConditionKey, MtlsMode};

fn problems(api_version: &str, kind: &str, spec: &str) -> Vec<(String, String)> {
    let text =
        format!("apiVersion: {api_version}\nkind: {kind}\nmetadata: {{name: test}}\nspec:\n{spec}");
    let outcome = parse_yaml(Path::new("test.yaml"), &text);
    assert!(outcome.warnings.is_empty(), "{:?}", outcome.warnings);
    outcome
        .errors
        .into_iter()
        .map(|e| (e.field, e.message))
        .collect()
}

fn check(kind: &str, cases: &[(&str, &[(&str, &str)])]) {
    for (spec, expected) in cases {
        let expected: Vec<(String, String)> = expected
            .iter()
            .map(|(f, m)| (f.to_string(), m.to_string()))
            .collect();
        for version in ["security.istio.io/v1", "security.istio.io/v1beta1"] {
            assert_eq!(problems(version, kind, spec), expected, "{kind}:\n{spec}");
        }
    }
}

#[test]
fn peer_authentications() {
    let cases: &[(&str, &[(&str, &str)])] = &[
        ("  mtls: {mode: STRICT}\n", &[]),
        ("  {}\n", &[]),
        (
            "  selector: {matchLabels: {app: reviews}}\n  mtls: {mode: PERMISSIVE}\n  portLevelMtls:\n    8080: {mode: DISABLE}\n",
            &[],
        ),
        (
            "  portLevelMtls:\n    8080: {mode: DISABLE}\n",
            &[(
                "spec.portLevelMtls",
                "mesh/namespace peer authentication cannot have port level mTLS",
            )],
        ),
        (
            "  selector: {matchLabels: {app: a}}\n  portLevelMtls:\n    0: {mode: DISABLE}\n",
            &[("spec.portLevelMtls.0", "port cannot be 0")],
        ),
    ];
    check("PeerAuthentication", cases);
}

#[test]
fn unknown_modes_are_schema_errors_and_unknown_fields_warnings() {
    let bad_mode = problems(
        "security.istio.io/v1",
        "PeerAuthentication",
        "  mtls: {mode: SOMETIMES}\n",
    );
    assert_eq!(bad_mode.len(), 1);
    assert_eq!(bad_mode[0].0, "spec.mtls.mode");
    let typo = "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: test}\nspec:\n  rules:\n  - from:\n    - source: {principal: [a]}\n";
    let outcome = parse_yaml(Path::new("test.yaml"), typo);
    let warnings: Vec<(&str, usize)> = outcome
        .warnings
        .iter()
        .map(|w| (w.field.as_str(), w.line))
        .collect();
    assert_eq!(warnings, [("spec.rules[0].from[0].source.principal", 7)]);
}

#[test]
fn authorization_policies() {
    let cases: &[(&str, &[(&str, &str)])] = &[
        ("  {}\n", &[]),
        ("  rules: [{}]\n", &[]),
        (
            "  selector: {matchLabels: {app: reviews}}\n  action: ALLOW\n  rules:\n  - from:\n    - source: {principals: [cluster.local/ns/default/sa/bookinfo-productpage]}\n    to:\n    - operation: {methods: [GET], paths: ['/api/*'], ports: ['9080']}\n    when:\n    - {key: 'request.headers[x-user]', values: [admin]}\n    - {key: source.ip, notValues: [10.0.0.0/8]}\n",
            &[],
        ),
        (
            "  rules:\n  - from:\n    - source: {}\n    - {}\n",
            &[
                (
                    "spec.rules[0].from[0].source",
                    "`from.source` must not be empty",
                ),
                (
                    "spec.rules[0].from[1].source",
                    "`from.source` must not be nil",
                ),
            ],
        ),
        (
            "  rules:\n  - to:\n    - operation: {ports: ['0', http], paths: ['']}\n",
            &[
                ("spec.rules[0].to[0].operation.ports[0]", "invalid port: 0"),
                (
                    "spec.rules[0].to[0].operation.ports[1]",
                    "invalid port: http",
                ),
                (
                    "spec.rules[0].to[0].operation.paths",
                    "empty value not allowed, found in spec.rules[0].to[0].operation.paths",
                ),
            ],
        ),
        (
            "  rules:\n  - from:\n    - source: {ipBlocks: [10.0.0.0/33]}\n",
            &[(
                "spec.rules[0].from[0].source.ipBlocks[0]",
                "10.0.0.0/33 is not a valid CIDR block",
            )],
        ),
        (
            "  rules:\n  - when:\n    - {key: request.colour, values: [red]}\n    - {key: 'request.headers[]', values: [a]}\n    - {key: destination.port}\n",
            &[
                (
                    "spec.rules[0].when[0].key",
                    "unknown attribute: request.colour",
                ),
                (
                    "spec.rules[0].when[1].key",
                    "invalid key: request.headers[]",
                ),
                (
                    "spec.rules[0].when[2]",
                    "at least one of values or notValues must be set",
                ),
            ],
        ),
        (
            "  action: CUSTOM\n",
            &[("spec.provider", "must specify a provider for CUSTOM action")],
        ),
        (
            "  action: DENY\n  provider: {name: ext}\n",
            &[(
                "spec.provider",
                "provider can only be set for CUSTOM action",
            )],
        ),
        (
            "  selector: {matchLabels: {app: a}}\n  targetRefs: [{kind: Gateway, name: gw}]\n",
            &[(
                "spec",
                "only one of targetRefs or workloadSelector can be set",
            )],
        ),
    ];
    check("AuthorizationPolicy", cases);
}

#[test]
fn policies_read_into_typed_specs() {
    let text = "apiVersion: security.istio.io/v1beta1\nkind: PeerAuthentication\nmetadata: {name: default, namespace: istio-system}\nspec: {mtls: {mode: STRICT}}\n---\napiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: deny}\nspec: {action: DENY, rules: [{}]}\n";
    let outcome = parse_yaml(Path::new("p.yaml"), text);
    assert!(outcome.is_valid(), "{:?}", outcome.errors);
    let [
        AnyResource::PeerAuthentication(peer),
        AnyResource::AuthorizationPolicy(authz),
    ] = outcome.resources.as_slice()
    else {
        panic!("unexpected resources: {:?}", outcome.resources);
    };
    assert_eq!(peer.spec.mtls.map(|m| m.mode), Some(MtlsMode::Strict));
    assert_eq!(peer.namespace(), "istio-system");
    assert_eq!(authz.spec.action, AuthorizationAction::Deny);
    assert_eq!(authz.spec.rules.len(), 1);
}

#[test]
fn condition_keys() {
    assert_eq!(
        ConditionKey::parse("request.headers[x-token]"),
        Ok(ConditionKey::RequestHeader("x-token".into()))
    );
    assert_eq!(
        ConditionKey::parse("request.auth.claims[groups][0]"),
        Ok(ConditionKey::RequestAuthClaim(vec![
            "groups".into(),
            "0".into()
        ]))
    );
    assert_eq!(
        ConditionKey::parse("destination.port"),
        Ok(ConditionKey::DestinationPort)
    );
    assert!(ConditionKey::parse("request.headers").is_err());
    assert!(ConditionKey::parse("request.headers[a]x").is_err());
}
