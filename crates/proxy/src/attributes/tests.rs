use super::*;

fn request() -> RequestFacts {
    let mut headers = HeaderMap::new();
    headers.insert("x-user", "alice".parse().unwrap());
    headers.append("x-multi", "a".parse().unwrap());
    headers.append("x-multi", "b".parse().unwrap());
    RequestFacts {
        method: "GET".into(),
        path: "/api/items?page=2".into(),
        host: "reviews:9080".into(),
        scheme: "http",
        protocol: "HTTP/1.1",
        headers,
    }
}

#[test]
fn reads_the_request_the_response_and_the_connection() {
    let facts = request();
    let attributes = Attributes {
        request: Some(&facts),
        response_code: Some(503),
        response_flags: "UO",
        destination: Some("127.0.0.1:9080".parse().unwrap()),
        mtls: true,
        ..Default::default()
    };
    let value = |source: &str| {
        CelExpression::compile(source)
            .unwrap()
            .label_value(&attributes)
    };
    assert_eq!(value("request.host"), "reviews:9080");
    assert_eq!(value("request.url_path"), "/api/items");
    assert_eq!(value("request.headers['x-user']"), "alice");
    assert_eq!(value("request.headers['x-multi']"), "a,b");
    assert_eq!(value("string(destination.port)"), "9080");
    assert_eq!(value("destination.port"), "9080");
    assert_eq!(value("response.flags"), "UO");
    assert_eq!(value("connection.mtls"), "true");
    assert_eq!(value("'literal'"), "literal");
    // A missing header or attribute is `unknown`, not an empty label.
    assert_eq!(value("request.headers['x-absent']"), "unknown");
    assert_eq!(value("upstream.address"), "unknown");

    let filter = |source: &str| CelExpression::compile(source).unwrap().matches(&attributes);
    assert!(filter("response.code >= 400"));
    assert!(!filter("response.code < 400"));
    assert!(filter("request.url_path.startsWith('/api')"));
    // An error or a non-boolean never passes a filter.
    assert!(!filter("request.headers['x-absent'] == 'x'"));
    assert!(!filter("request.host"));
}

#[test]
fn names_only_the_roots_it_reads() {
    let roots = CelExpression::compile("response.code >= 400")
        .unwrap()
        .roots();
    assert_eq!(roots, Roots::default());
    let roots = CelExpression::compile("response.headers['x-a'] == 'b'")
        .unwrap()
        .roots();
    assert!(roots.response_headers && !roots.request);
    assert!(
        CelExpression::compile("request.headers['a'] == 'b'")
            .unwrap()
            .roots()
            .request
    );
    assert!(CelExpression::compile("response.code >=").is_err());
}
