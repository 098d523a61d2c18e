use std::time::{Duration, UNIX_EPOCH};

use super::*;

fn entry<'a>(
    request: &'a [Option<HeaderValue>],
    response: &'a [Option<HeaderValue>],
) -> LogEntry<'a> {
    LogEntry {
        // 2026-02-24T14:23:15.456Z
        start: UNIX_EPOCH + Duration::from_millis(1_771_942_995_456),
        duration: Duration::from_millis(12),
        protocol: "HTTP/1.1",
        response_code: 200,
        response_flags: "-",
        response_code_details: "via_upstream",
        connection_termination_details: None,
        bytes_received: 0,
        bytes_sent: 178,
        upstream_host: Some("127.0.0.2:9080".parse().unwrap()),
        upstream_cluster: Some("outbound|9080||reviews.default.svc.cluster.local"),
        upstream_peer: None,
        downstream_local: "127.0.0.1:15001".parse().unwrap(),
        downstream_remote: "127.0.0.1:40000".parse().unwrap(),
        downstream_peer: Some("spiffe://cluster.local/ns/default/sa/bookinfo-productpage"),
        route_name: None,
        request_headers: request,
        response_headers: response,
        jwt: None,
    }
}

pub(super) fn render(format: &LogFormat, request: &HeaderMap, response: &HeaderMap) -> String {
    let head = RequestHead {
        method: "GET",
        path: "/reviews/0",
        authority: Some("reviews:9080"),
        scheme: "http",
    };
    let request = format.capture_request(&head, request);
    let response = format.capture_response(response);
    let mut out = String::new();
    format.render(&entry(&request, &response), &mut out);
    out
}

#[test]
fn renders_istio_style_fields() {
    let format = LogFormat::parse(
        "[%START_TIME%] \"%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%\" \
         %RESPONSE_CODE% %RESPONSE_FLAGS% %BYTES_SENT% %DURATION% \"%UPSTREAM_HOST%\" \
         %UPSTREAM_CLUSTER_RAW% %ROUTE_NAME% %DOWNSTREAM_PEER_URI_SAN%\n",
    )
    .unwrap();
    let line = render(&format, &HeaderMap::new(), &HeaderMap::new());
    assert_eq!(
        line,
        "[2026-02-24T14:23:15.456Z] \"GET /reviews/0 HTTP/1.1\" 200 - 178 12 \"127.0.0.2:9080\" \
         outbound|9080||reviews.default.svc.cluster.local - \
         spiffe://cluster.local/ns/default/sa/bookinfo-productpage\n"
    );
}

#[test]
fn header_fallbacks_and_max_length() {
    let format = LogFormat::parse("%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %REQ(USER-AGENT):4% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)%").unwrap();
    let mut request = HeaderMap::new();
    request.insert("user-agent", HeaderValue::from_static("curl/8.0"));
    request.insert(
        "x-envoy-original-path",
        HeaderValue::from_static("/original"),
    );
    let mut response = HeaderMap::new();
    response.insert(
        "x-envoy-upstream-service-time",
        HeaderValue::from_static("7"),
    );
    assert_eq!(render(&format, &request, &response), "/original curl 7");
    assert_eq!(
        render(&format, &HeaderMap::new(), &HeaderMap::new()),
        "/reviews/0 - -"
    );
}

#[test]
fn unknown_operators_render_as_dash_and_stray_percents_stay() {
    let format =
        LogFormat::parse("%NOT_AN_OPERATOR% 100% %lower% %UPSTREAM_LOCAL_ADDRESS%").unwrap();
    assert_eq!(
        render(&format, &HeaderMap::new(), &HeaderMap::new()),
        "- 100% %lower% -"
    );
}

#[test]
fn rejects_what_it_cannot_render() {
    assert_eq!(
        LogFormat::parse("%START_TIME(%s)%"),
        Err(FormatError::CustomStartTime)
    );
    assert!(matches!(
        LogFormat::parse("%REQ%"),
        Err(FormatError::MissingHeader(_))
    ));
}

#[test]
fn renders_the_request_principal_from_dynamic_metadata() {
    let format = LogFormat::parse(
        "%DYNAMIC_METADATA(istio_authn:request.auth.principal)% \
         %METADATA(DYNAMIC:envoy.filters.http.jwt_authn:payload:sub)%",
    )
    .unwrap();
    let jwt = crate::jwt::VerifiedJwt {
        principal: "issuer.example/alice".into(),
        metadata_key: "payload".into(),
        payload: serde_json::json!({"iss": "issuer.example", "sub": "alice"}),
    };
    let mut line = String::new();
    let authenticated = LogEntry {
        jwt: Some(&jwt),
        ..entry(&[], &[])
    };
    format.render(&authenticated, &mut line);
    assert_eq!(line, "issuer.example/alice alice");
    assert_eq!(render(&format, &HeaderMap::new(), &HeaderMap::new()), "- -");
    assert!(matches!(
        LogFormat::parse("%DYNAMIC_METADATA%"),
        Err(FormatError::MissingNamespace(_))
    ));
}

#[test]
fn shares_captured_headers_between_operators() {
    let format = LogFormat::parse("%REQ(:AUTHORITY)% %REQ(:authority)% %REQ(X-A?X-B)%").unwrap();
    assert_eq!(format.request_keys.len(), 3);
    assert_eq!(
        render(&format, &HeaderMap::new(), &HeaderMap::new()),
        "reviews:9080 reviews:9080 -"
    );
}

#[test]
fn dates_before_and_after_leap_days() {
    let day = |days: i64| civil_from_days(days);
    assert_eq!(day(0), (1970, 1, 1));
    assert_eq!(day(11_016), (2000, 2, 29));
    assert_eq!(day(11_017), (2000, 3, 1));
}
