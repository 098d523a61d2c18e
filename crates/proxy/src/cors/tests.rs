//! The filter against Envoy's documented CORS behaviour.

use envoy_types::pb::envoy::r#type::matcher::v3::RegexMatcher;
use envoy_types::pb::google::protobuf::BoolValue;
use envoy_types::util::pack_any;

use super::*;

fn matcher(pattern: MatchPattern) -> StringMatcher {
    StringMatcher {
        match_pattern: Some(pattern),
        ignore_case: false,
    }
}

fn config() -> EnvoyCors {
    EnvoyCors {
        allow_origin_string_match: vec![
            matcher(MatchPattern::Exact("https://a.example".into())),
            matcher(MatchPattern::Prefix("https://b.".into())),
            matcher(MatchPattern::SafeRegex(RegexMatcher {
                regex: r"https://[a-z]+\.c\.example".into(),
                ..Default::default()
            })),
        ],
        allow_methods: "GET,POST".into(),
        allow_headers: "x-a,x-b".into(),
        expose_headers: "x-c".into(),
        max_age: "86400".into(),
        allow_credentials: Some(BoolValue { value: true }),
        ..Default::default()
    }
}

fn policy(config: EnvoyCors) -> CorsPolicy {
    CorsPolicy::compile(&pack_any(config)).unwrap()
}

fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
    pairs
        .iter()
        .map(|(name, value)| {
            (
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            )
        })
        .collect()
}

fn preflight(origin: &'static str) -> HeaderMap {
    headers(&[
        ("origin", origin),
        ("access-control-request-method", "POST"),
    ])
}

#[test]
fn a_preflight_from_an_allowed_origin_is_answered_with_the_policy() {
    let policy = policy(config());
    for origin in [
        "https://a.example",
        "https://b.other",
        "https://x.c.example",
    ] {
        let CorsOutcome::Answered(response) = policy.inspect(&Method::OPTIONS, &preflight(origin))
        else {
            panic!("{origin}: preflight not answered");
        };
        assert_eq!(response.status(), StatusCode::OK);
        let h = response.headers();
        assert_eq!(h["access-control-allow-origin"], origin);
        assert_eq!(h["access-control-allow-methods"], "GET,POST");
        assert_eq!(h["access-control-allow-headers"], "x-a,x-b");
        assert_eq!(h["access-control-max-age"], "86400");
        assert_eq!(h["access-control-allow-credentials"], "true");
        assert!(!h.contains_key("access-control-expose-headers"));
    }
}

#[test]
fn unmatched_origins_are_forwarded_untouched_unless_told_to_ignore() {
    let forwarding = policy(config());
    for origin in [
        "https://a.example.evil",
        "http://a.example",
        "https://x.c.example.org",
    ] {
        assert!(matches!(
            forwarding.inspect(&Method::OPTIONS, &preflight(origin)),
            CorsOutcome::Untouched
        ));
        assert!(matches!(
            forwarding.inspect(&Method::GET, &headers(&[("origin", origin)])),
            CorsOutcome::Untouched
        ));
    }
    let ignoring = policy(EnvoyCors {
        forward_not_matching_preflights: Some(BoolValue { value: false }),
        ..config()
    });
    let CorsOutcome::Answered(response) =
        ignoring.inspect(&Method::OPTIONS, &preflight("https://evil.example"))
    else {
        panic!("IGNORE answers unmatched preflights");
    };
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers().is_empty(), "no CORS headers for them");
    // Only preflights are answered; an unmatched actual request goes on.
    assert!(matches!(
        ignoring.inspect(
            &Method::GET,
            &headers(&[("origin", "https://evil.example")])
        ),
        CorsOutcome::Untouched
    ));
}

#[test]
fn actual_requests_from_allowed_origins_get_the_response_headers() {
    let policy = policy(config());
    // OPTIONS without Access-Control-Request-Method is not a preflight.
    for method in [Method::GET, Method::OPTIONS] {
        let CorsOutcome::Allowed(origin) =
            policy.inspect(&method, &headers(&[("origin", "https://a.example")]))
        else {
            panic!("{method}: allowed origin not recognised");
        };
        let mut response = HeaderMap::new();
        policy.decorate(&origin, &mut response);
        assert_eq!(response["access-control-allow-origin"], "https://a.example");
        assert_eq!(response["access-control-expose-headers"], "x-c");
        assert_eq!(response["access-control-allow-credentials"], "true");
        assert!(!response.contains_key("access-control-allow-methods"));
    }
}

#[test]
fn requests_without_origin_are_not_cors() {
    let policy = policy(config());
    let no_origin = headers(&[("access-control-request-method", "POST")]);
    assert!(matches!(
        policy.inspect(&Method::OPTIONS, &no_origin),
        CorsOutcome::Untouched
    ));
}

#[test]
fn an_exact_star_allows_any_origin_and_unset_fields_add_no_headers() {
    let policy = policy(EnvoyCors {
        allow_origin_string_match: vec![matcher(MatchPattern::Exact("*".into()))],
        ..Default::default()
    });
    let CorsOutcome::Answered(response) =
        policy.inspect(&Method::OPTIONS, &preflight("https://anything.example"))
    else {
        panic!("star origin not allowed");
    };
    let names: Vec<_> = response.headers().keys().map(|k| k.as_str()).collect();
    assert_eq!(names, ["access-control-allow-origin"]);
}

#[test]
fn unimplemented_settings_are_refused() {
    let bad_regex = EnvoyCors {
        allow_origin_string_match: vec![matcher(MatchPattern::SafeRegex(RegexMatcher {
            regex: "(".into(),
            ..Default::default()
        }))],
        ..Default::default()
    };
    let private_network = EnvoyCors {
        allow_private_network_access: Some(BoolValue { value: true }),
        ..Default::default()
    };
    for config in [bad_regex, private_network] {
        assert!(CorsPolicy::compile(&pack_any(config)).is_err());
    }
    let wrong_type = pack_any(BoolValue { value: true });
    assert!(CorsPolicy::compile(&wrong_type).is_err());
}
