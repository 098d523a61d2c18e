use envoy_types::pb::envoy::config::core::v3::HttpUri;
use envoy_types::pb::envoy::config::core::v3::{
    GrpcService, HeaderValue as XdsHeaderValue, HeaderValueOption, grpc_service,
};
use envoy_types::pb::envoy::extensions::filters::http::ext_authz::v3::{
    AuthorizationRequest, HttpService as XdsHttpService,
};
use envoy_types::pb::envoy::service::auth::v3::{
    CheckResponse, DeniedHttpResponse, OkHttpResponse, check_response,
};
use envoy_types::pb::envoy::r#type::matcher::v3::{
    MetadataMatcher, StringMatcher, ValueMatcher, metadata_matcher::PathSegment,
    string_matcher::MatchPattern as StringPattern,
};
use envoy_types::pb::envoy::r#type::v3::HttpStatus;
use envoy_types::pb::google::protobuf::BoolValue;
use envoy_types::pb::google::rpc::Status;
use http_body_util::BodyExt as _;

use super::*;

fn gate() -> MetadataMatcher {
    MetadataMatcher {
        filter: RBAC_FILTER_NAME.into(),
        path: vec![PathSegment {
            segment: Some(Segment::Key(
                "istio_ext_authz_shadow_effective_policy_id".into(),
            )),
        }],
        value: Some(ValueMatcher {
            match_pattern: Some(MatchPattern::StringMatch(StringMatcher {
                match_pattern: Some(StringPattern::Prefix("istio-ext-authz".into())),
                ignore_case: false,
            })),
        }),
        invert: false,
    }
}

fn http_filter() -> ExtAuthz {
    ExtAuthz {
        services: Some(Services::HttpService(XdsHttpService {
            server_uri: Some(HttpUri {
                uri: "http://ext-authz.foo.svc.cluster.local:8000".into(),
                timeout: Some(envoy_types::pb::google::protobuf::Duration {
                    seconds: 600,
                    nanos: 0,
                }),
                http_upstream_type: Some(
                    envoy_types::pb::envoy::config::core::v3::http_uri::HttpUpstreamType::Cluster(
                        "outbound|8000||ext-authz.foo.svc.cluster.local".into(),
                    ),
                ),
            }),
            path_prefix: "/check".into(),
            authorization_request: Some(AuthorizationRequest::default()),
            ..Default::default()
        })),
        allowed_headers: Some(ListStringMatcher {
            patterns: vec![StringMatcher {
                match_pattern: Some(StringPattern::Exact("x-ext-authz".into())),
                ignore_case: true,
            }],
        }),
        filter_enabled_metadata: Some(gate()),
        ..Default::default()
    }
}

#[test]
fn compiles_istios_http_provider_and_checks_only_what_the_shadow_rules_select() {
    let filter = ExtAuthzFilter::compile(&http_filter().encode_to_vec()).unwrap();
    assert_eq!(
        filter.cluster,
        "outbound|8000||ext-authz.foo.svc.cluster.local"
    );
    assert_eq!(filter.timeout, Duration::from_secs(600));
    assert_eq!(filter.status_on_error, StatusCode::FORBIDDEN);
    let key = "istio_ext_authz_shadow_effective_policy_id";
    assert!(filter.enabled(&[(key, "istio-ext-authz-ns[foo]-policy[ext]-rule[0]")]));
    assert!(!filter.enabled(&[]));
    assert!(!filter.enabled(&[(key, "ns[foo]-policy[other]-rule[0]")]));
}

#[test]
fn grpc_providers_and_their_error_status() {
    let config = ExtAuthz {
        services: Some(Services::GrpcService(GrpcService {
            target_specifier: Some(grpc_service::TargetSpecifier::EnvoyGrpc(
                grpc_service::EnvoyGrpc {
                    cluster_name: "outbound|9000||ext-authz.foo.svc.cluster.local".into(),
                    ..Default::default()
                },
            )),
            ..Default::default()
        })),
        status_on_error: Some(HttpStatus { code: 503 }),
        failure_mode_allow: true,
        ..Default::default()
    };
    let filter = ExtAuthzFilter::compile(&config.encode_to_vec()).unwrap();
    assert!(matches!(filter.service, Service::Grpc(None)));
    assert_eq!(filter.status_on_error, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(filter.timeout, DEFAULT_TIMEOUT);
    assert!(filter.enabled(&[]), "no gate: every request is checked");
    let with_body = ExtAuthz {
        with_request_body: Some(Default::default()),
        ..config
    };
    assert!(ExtAuthzFilter::compile(&with_body.encode_to_vec()).is_err());
}

fn option(key: &str, value: &str, append: Option<bool>) -> HeaderValueOption {
    #[allow(deprecated)]
    HeaderValueOption {
        header: Some(XdsHeaderValue {
            key: key.into(),
            value: value.into(),
            ..Default::default()
        }),
        append: append.map(|value| BoolValue { value }),
        ..Default::default()
    }
}

#[tokio::test]
async fn grpc_answers_allow_with_header_changes_or_deny_as_written() {
    let ok = CheckResponse {
        status: Some(Status {
            code: 0,
            ..Default::default()
        }),
        http_response: Some(check_response::HttpResponse::OkResponse(OkHttpResponse {
            headers: vec![
                option("x-ext-authz-check-result", "allowed", None),
                option("x-tag", "b", Some(true)),
            ],
            headers_to_remove: vec!["x-secret".into()],
            response_headers_to_add: vec![option("x-checked", "yes", None)],
            ..Default::default()
        })),
        ..Default::default()
    };
    let Decision::Allowed(allowed) = grpc_check::decision(ok) else {
        panic!("an OK status allows");
    };
    let mut upstream = HeaderMap::new();
    upstream.insert("x-secret", HeaderValue::from_static("s"));
    upstream.insert(
        "x-ext-authz-check-result",
        HeaderValue::from_static("forged"),
    );
    upstream.insert("x-tag", HeaderValue::from_static("a"));
    allowed.apply_upstream(&mut upstream);
    assert_eq!(upstream["x-ext-authz-check-result"], "allowed");
    assert_eq!(upstream.get_all("x-tag").iter().count(), 2);
    assert!(!upstream.contains_key("x-secret"));
    assert_eq!(allowed.downstream[0].0, "x-checked");

    let denied = CheckResponse {
        status: Some(Status {
            code: 7,
            ..Default::default()
        }),
        http_response: Some(check_response::HttpResponse::DeniedResponse(
            DeniedHttpResponse {
                status: Some(HttpStatus { code: 401 }),
                headers: vec![option("x-ext-authz-check-result", "denied", None)],
                body: "denied by ext_authz".into(),
            },
        )),
        ..Default::default()
    };
    let Decision::Denied(response) = grpc_check::decision(denied) else {
        panic!("a PERMISSION_DENIED status denies");
    };
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(response.headers()["x-ext-authz-check-result"], "denied");
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, "denied by ext_authz");

    let bare = CheckResponse {
        status: Some(Status {
            code: 7,
            ..Default::default()
        }),
        ..Default::default()
    };
    let Decision::Denied(response) = grpc_check::decision(bare) else {
        panic!("denied without a response");
    };
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
}
