//! Istio's merge rules for a delegate's matches under its root's.

use super::*;

fn uri(m: StringMatch) -> HttpMatchRequest {
    HttpMatchRequest {
        uri: Some(m),
        ..Default::default()
    }
}

fn prefix(p: &str) -> StringMatch {
    StringMatch::Prefix(p.into())
}

#[test]
fn a_delegate_uri_must_narrow_the_roots() {
    let root = uri(prefix("/reviews"));
    for (child, kept) in [
        (prefix("/reviews/1"), true),
        (StringMatch::Exact("/reviews/2".into()), true),
        (prefix("/ratings"), false),
        (StringMatch::Regex("/reviews/.*".into()), false),
    ] {
        let merged = merge_match(&root, &uri(child.clone()));
        assert_eq!(merged.is_some(), kept, "{child:?}");
        if let Some(merged) = merged {
            assert_eq!(merged.uri, Some(child));
        }
    }
    let exact = uri(StringMatch::Exact("/a".into()));
    assert!(merge_match(&exact, &uri(prefix("/a"))).is_none());
    assert!(merge_match(&exact, &exact).is_some());
}

#[test]
fn root_conditions_carry_over_and_contradictions_conflict() {
    let root = HttpMatchRequest {
        uri: Some(prefix("/api")),
        headers: [("end-user".to_string(), StringMatch::Exact("jason".into()))].into(),
        port: Some(9080),
        ..Default::default()
    };
    let child = HttpMatchRequest {
        method: Some(StringMatch::Exact("GET".into())),
        headers: [("x-canary".to_string(), StringMatch::Present)].into(),
        ..Default::default()
    };
    let merged = merge_match(&root, &child).expect("compatible");
    assert_eq!(merged.uri, Some(prefix("/api")));
    assert_eq!(merged.method, Some(StringMatch::Exact("GET".into())));
    assert_eq!(merged.headers.len(), 2);
    assert_eq!(merged.port, Some(9080));

    let other_user = HttpMatchRequest {
        headers: [("end-user".to_string(), StringMatch::Exact("mary".into()))].into(),
        ..Default::default()
    };
    assert!(merge_match(&root, &other_user).is_none());
    let other_port = HttpMatchRequest {
        port: Some(8080),
        ..Default::default()
    };
    assert!(merge_match(&root, &other_port).is_none());
}

#[test]
fn rules_keep_compatible_pairs_and_inherit_unset_settings() {
    let root = HttpRoute {
        name: Some("api".into()),
        r#match: vec![uri(prefix("/a")), uri(prefix("/b"))],
        timeout: Some("5s".into()),
        ..Default::default()
    };
    let child = HttpRoute {
        name: Some("v1".into()),
        r#match: vec![uri(prefix("/a/1"))],
        ..Default::default()
    };
    let merged = merge_rule(&root, &child).unwrap();
    assert_eq!(merged.r#match, vec![uri(prefix("/a/1"))]);
    assert_eq!(merged.name.as_deref(), Some("api-v1"));
    assert_eq!(merged.timeout.as_deref(), Some("5s"));

    let own_timeout = HttpRoute {
        timeout: Some("1s".into()),
        ..Default::default()
    };
    let merged = merge_rule(&root, &own_timeout).unwrap();
    assert_eq!(merged.r#match, root.r#match, "no match: the root's");
    assert_eq!(merged.timeout.as_deref(), Some("1s"));

    let elsewhere = HttpRoute {
        r#match: vec![uri(prefix("/c"))],
        ..Default::default()
    };
    assert!(merge_rule(&root, &elsewhere).is_none());
}
