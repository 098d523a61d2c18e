//! The JWT filter against tokens signed here with freshly generated keys
//! (RSA, EC P-256/P-384, Ed25519): what verifies, what is refused, and
//! what a verified token does to the request.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use envoy_types::pb::envoy::config::core::v3::{DataSource, data_source};
use envoy_types::pb::envoy::config::route::v3::{RouteMatch, route_match::PathSpecifier};
use envoy_types::pb::envoy::extensions::filters::http::jwt_authn::v3::{
    JwtAuthentication, JwtClaimToHeader, JwtHeader, JwtProvider, JwtRequirement,
    JwtRequirementOrList, RequirementRule, jwt_provider::JwksSourceSpecifier,
    jwt_requirement::RequiresType, requirement_rule::RequirementType,
};
use http::HeaderMap;
use prost::Message;
use serde_json::{Value, json};

use super::{JwtFilter, Rejection};

enum TestKey {
    Rsa(aws_lc_rs::rsa::KeyPair),
    Ec(EcdsaKeyPair, &'static str),
    Ed(Ed25519KeyPair),
}

impl TestKey {
    fn rsa() -> TestKey {
        TestKey::Rsa(aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap())
    }

    fn ec(alg: &'static signature::EcdsaSigningAlgorithm, curve: &'static str) -> TestKey {
        TestKey::Ec(EcdsaKeyPair::generate(alg).unwrap(), curve)
    }

    fn ed() -> TestKey {
        TestKey::Ed(Ed25519KeyPair::generate().unwrap())
    }

    fn jwk(&self, kid: &str) -> Value {
        match self {
            TestKey::Rsa(pair) => {
                let public =
                    aws_lc_rs::rsa::PublicKeyComponents::<Vec<u8>>::from(pair.public_key());
                json!({"kty": "RSA", "kid": kid, "n": B64.encode(public.n), "e": B64.encode(public.e)})
            }
            TestKey::Ec(pair, curve) => {
                let point = &pair.public_key().as_ref()[1..];
                let (x, y) = point.split_at(point.len() / 2);
                json!({"kty": "EC", "kid": kid, "crv": curve, "x": B64.encode(x), "y": B64.encode(y)})
            }
            TestKey::Ed(pair) => {
                json!({"kty": "OKP", "kid": kid, "crv": "Ed25519", "x": B64.encode(pair.public_key().as_ref())})
            }
        }
    }

    fn sign(&self, alg: &str, kid: &str, claims: &Value) -> String {
        let input = signing_input(&json!({"alg": alg, "kid": kid, "typ": "JWT"}), claims);
        let signature = match self {
            TestKey::Rsa(pair) => {
                let padding: &dyn signature::RsaEncoding = match alg {
                    "RS256" => &signature::RSA_PKCS1_SHA256,
                    "RS384" => &signature::RSA_PKCS1_SHA384,
                    "RS512" => &signature::RSA_PKCS1_SHA512,
                    _ => &signature::RSA_PSS_SHA256,
                };
                let mut out = vec![0; pair.public_modulus_len()];
                pair.sign(padding, &SystemRandom::new(), input.as_bytes(), &mut out)
                    .unwrap();
                out
            }
            TestKey::Ec(pair, _) => pair
                .sign(&SystemRandom::new(), input.as_bytes())
                .unwrap()
                .as_ref()
                .to_vec(),
            TestKey::Ed(pair) => pair.sign(input.as_bytes()).as_ref().to_vec(),
        };
        format!("{input}.{}", B64.encode(signature))
    }
}

fn signing_input(header: &Value, claims: &Value) -> String {
    format!(
        "{}.{}",
        B64.encode(header.to_string()),
        B64.encode(claims.to_string())
    )
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn claims(extra: Value) -> Value {
    let mut claims =
        json!({"iss": "https://issuer.test", "sub": "alice", "aud": "app", "exp": now() + 600});
    for (key, value) in extra.as_object().unwrap() {
        claims[key] = value.clone();
    }
    claims
}

/// A provider as the translator emits it for a rule with `issuer`, keys
/// `jwks` and otherwise Istio's defaults.
fn provider(issuer: &str, jwks: &[Value]) -> JwtProvider {
    JwtProvider {
        issuer: issuer.into(),
        jwks_source_specifier: Some(JwksSourceSpecifier::LocalJwks(DataSource {
            specifier: Some(data_source::Specifier::InlineString(
                json!({ "keys": jwks }).to_string(),
            )),
            ..Default::default()
        })),
        payload_in_metadata: "payload".into(),
        clock_skew_seconds: 60,
        ..Default::default()
    }
}

/// The filter for `providers`: any of them, or no token.
fn filter(providers: Vec<JwtProvider>) -> JwtFilter {
    let mut any: Vec<JwtRequirement> = (0..providers.len())
        .map(|index| JwtRequirement {
            requires_type: Some(RequiresType::ProviderName(format!("origins-{index}"))),
        })
        .collect();
    any.push(JwtRequirement {
        requires_type: Some(RequiresType::AllowMissing(Default::default())),
    });
    let config = JwtAuthentication {
        providers: providers
            .into_iter()
            .enumerate()
            .map(|(index, p)| (format!("origins-{index}"), p))
            .collect(),
        rules: vec![RequirementRule {
            r#match: Some(RouteMatch {
                path_specifier: Some(PathSpecifier::Prefix("/".into())),
                ..Default::default()
            }),
            requirement_type: Some(RequirementType::Requires(JwtRequirement {
                requires_type: Some(RequiresType::RequiresAny(JwtRequirementOrList {
                    requirements: any,
                })),
            })),
        }],
        ..Default::default()
    };
    JwtFilter::compile(&config.encode_to_vec()).unwrap()
}

fn bearer(token: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert("authorization", format!("Bearer {token}").parse().unwrap());
    headers
}

fn check(filter: &JwtFilter, token: &str) -> Result<Option<String>, Rejection> {
    filter
        .authenticate(&mut bearer(token), None)
        .map(|verified| verified.map(|v| v.principal))
}

#[test]
fn every_supported_key_type_verifies() {
    let keys = [
        (TestKey::rsa(), "RS256"),
        (
            TestKey::ec(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, "P-256"),
            "ES256",
        ),
        (
            TestKey::ec(&signature::ECDSA_P384_SHA384_FIXED_SIGNING, "P-384"),
            "ES384",
        ),
        (TestKey::ed(), "EdDSA"),
    ];
    let set: Vec<Value> = keys
        .iter()
        .enumerate()
        .map(|(i, (k, _))| k.jwk(&format!("k{i}")))
        .collect();
    let filter = filter(vec![JwtProvider {
        audiences: vec!["app".into()],
        ..provider("https://issuer.test", &set)
    }]);
    for (index, (key, alg)) in keys.iter().enumerate() {
        let token = key.sign(alg, &format!("k{index}"), &claims(json!({})));
        assert_eq!(
            check(&filter, &token),
            Ok(Some("https://issuer.test/alice".into())),
            "{alg}"
        );
    }
    let rsa = &keys[0].0;
    for alg in ["RS384", "RS512", "PS256"] {
        let token = rsa.sign(alg, "k0", &claims(json!({})));
        assert!(check(&filter, &token).is_ok(), "{alg}");
    }
}

#[test]
fn bad_tokens_are_refused_and_missing_ones_pass() {
    let key = TestKey::ec(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, "P-256");
    let other = TestKey::ec(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, "P-256");
    let filter = filter(vec![JwtProvider {
        audiences: vec!["app".into()],
        ..provider("https://issuer.test", &[key.jwk("k")])
    }]);
    assert_eq!(filter.authenticate(&mut HeaderMap::new(), None), Ok(None));
    let good = key.sign("ES256", "k", &claims(json!({})));
    let tampered = {
        let parts: Vec<&str> = good.split('.').collect();
        let forged = B64.encode(claims(json!({"sub": "mallory"})).to_string());
        format!("{}.{forged}.{}", parts[0], parts[2])
    };
    let unsigned = format!(
        "{}.",
        signing_input(&json!({"alg": "none"}), &claims(json!({})))
    );
    let hs256 = {
        use aws_lc_rs::hmac;
        let public = key.jwk("k").to_string();
        let input = signing_input(&json!({"alg": "HS256", "kid": "k"}), &claims(json!({})));
        let tag = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, public.as_bytes()),
            input.as_bytes(),
        );
        format!("{input}.{}", B64.encode(tag.as_ref()))
    };
    let cases = [
        (
            "expired",
            key.sign("ES256", "k", &claims(json!({"exp": now() - 3600}))),
        ),
        (
            "not yet valid",
            key.sign("ES256", "k", &claims(json!({"nbf": now() + 3600}))),
        ),
        (
            "wrong issuer",
            key.sign("ES256", "k", &claims(json!({"iss": "https://evil.test"}))),
        ),
        (
            "wrong audience",
            key.sign("ES256", "k", &claims(json!({"aud": ["other"]}))),
        ),
        (
            "no audience",
            key.sign(
                "ES256",
                "k",
                &json!({"iss": "https://issuer.test", "sub": "a"}),
            ),
        ),
        ("unknown key", other.sign("ES256", "k", &claims(json!({})))),
        ("tampered", tampered),
        ("alg none", unsigned),
        ("HS256 with the public key", hs256),
        ("garbage", "not-a-jwt".to_string()),
    ];
    for (name, token) in cases {
        assert!(check(&filter, &token).is_err(), "{name} was accepted");
    }
    // Within the clock skew allowance.
    let just_expired = key.sign("ES256", "k", &claims(json!({"exp": now() - 10})));
    assert!(check(&filter, &just_expired).is_ok());
    let listed = key.sign("ES256", "k", &claims(json!({"aud": ["x", "app"]})));
    assert!(check(&filter, &listed).is_ok());
}

#[test]
fn locations_and_outputs() {
    let key = TestKey::ed();
    let claim = |header: &str, claim: &str| JwtClaimToHeader {
        header_name: header.into(),
        claim_name: claim.into(),
        ..Default::default()
    };
    let filter = filter(vec![JwtProvider {
        from_headers: vec![JwtHeader {
            name: "x-jwt".into(),
            value_prefix: "Token ".into(),
        }],
        from_params: vec!["tok".into()],
        from_cookies: vec!["session".into()],
        forward_payload_header: "x-payload".into(),
        claim_to_headers: vec![claim("x-group", "team.name"), claim("x-sub", "sub")],
        ..provider("https://issuer.test", &[key.jwk("k")])
    }]);
    let token = key.sign("EdDSA", "k", &claims(json!({"team": {"name": "blue"}})));
    let mut headers = HeaderMap::new();
    headers.insert("x-jwt", format!("Token {token}").parse().unwrap());
    headers.insert("x-sub", "spoofed".parse().unwrap());
    let verified = filter.authenticate(&mut headers, None).unwrap().unwrap();
    assert_eq!(verified.payload["team"]["name"], "blue");
    assert!(headers.get("x-jwt").is_none(), "the token is not forwarded");
    assert_eq!(headers["x-payload"], token.split('.').nth(1).unwrap());
    assert_eq!(headers["x-group"], "blue");
    assert_eq!(headers["x-sub"], "alice");
    // The default location is not used when others are configured.
    assert_eq!(filter.authenticate(&mut bearer(&token), None), Ok(None));
    let query = format!("a=1&tok={token}");
    assert!(
        filter
            .authenticate(&mut HeaderMap::new(), Some(&query))
            .unwrap()
            .is_some()
    );
    let mut cookies = HeaderMap::new();
    cookies.insert("cookie", format!("x=y; session={token}").parse().unwrap());
    assert!(filter.authenticate(&mut cookies, None).unwrap().is_some());
}

#[test]
fn the_first_provider_of_the_token_issuer_verifies_it() {
    let (a, b) = (TestKey::ed(), TestKey::ed());
    let filter = filter(vec![
        JwtProvider {
            forward: true,
            ..provider("a", &[a.jwk("a")])
        },
        provider("b", &[b.jwk("b")]),
    ]);
    let token = b.sign("EdDSA", "b", &json!({"iss": "b", "sub": "bob"}));
    assert_eq!(check(&filter, &token), Ok(Some("b/bob".into())));
    let forged = a.sign("EdDSA", "a", &json!({"iss": "b", "sub": "bob"}));
    assert!(check(&filter, &forged).is_err());
    let unknown = a.sign("EdDSA", "a", &json!({"iss": "c", "sub": "carol"}));
    assert_eq!(
        check(&filter, &unknown).unwrap_err().reason,
        "Jwt issuer is not configured"
    );
}

#[test]
fn providers_without_usable_keys_fail_closed() {
    let key = TestKey::ed();
    let token = key.sign("EdDSA", "k", &json!({"iss": "a", "sub": "s"}));
    for jwks in [
        "{\"keys\":[]}",
        "not json",
        "{\"keys\":[{\"kty\":\"oct\",\"k\":\"c2VjcmV0\"}]}",
    ] {
        let mut unusable = provider("a", &[]);
        unusable.jwks_source_specifier = Some(JwksSourceSpecifier::LocalJwks(DataSource {
            specifier: Some(data_source::Specifier::InlineString(jwks.into())),
            ..Default::default()
        }));
        assert!(check(&filter(vec![unusable]), &token).is_err(), "{jwks}");
    }
}

#[test]
fn rejection_is_envoys_401() {
    let rejection = Rejection {
        reason: "Jwt is expired".into(),
    };
    let response = rejection.response("http", "reviews:9080", "/reviews/1?x=1");
    assert_eq!(response.status(), 401);
    assert_eq!(
        response.headers()["www-authenticate"],
        "Bearer realm=\"http://reviews:9080/reviews/1\", error=\"invalid_token\""
    );
}
