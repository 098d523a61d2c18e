//! Each VirtualService action, translated for Bookinfo's productpage
//! sidecar and read back as the JSON Envoy would print.

use std::path::Path;
use std::sync::Arc;

use serde_json::{Value, json};
use trellis_config::Snapshot;
use trellis_xds::NodeInfo;
use trellis_xds::json::message_to_json;
use trellis_xds::node::{Interception, ProxyKind};

fn snapshot(virtual_service: &str) -> Snapshot {
    let platform =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../samples/bookinfo/platform/bookinfo.yaml");
    let mut resources = Vec::new();
    for (path, text) in [
        (
            platform.clone(),
            std::fs::read_to_string(&platform).unwrap(),
        ),
        (
            Path::new("vs.yaml").to_path_buf(),
            virtual_service.to_string(),
        ),
    ] {
        let outcome = trellis_api::parse_yaml(&path, &text);
        assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
        resources.extend(outcome.resources.into_iter().map(Arc::new));
    }
    Snapshot::new(1, resources)
}

fn productpage() -> NodeInfo {
    NodeInfo {
        kind: ProxyKind::Sidecar,
        ip: "127.10.0.5".parse().unwrap(),
        pod_name: "productpage-v1-0".into(),
        namespace: "default".into(),
        service_account: "bookinfo-productpage".into(),
        workload_name: "productpage-v1".into(),
        labels: [("app".to_string(), "productpage".to_string())].into(),
        interception: Interception::None,
        app_ports: [(9080, 20000)].into(),
        outbound_port: 15001,
        locality: String::new(),
    }
}

/// The ratings virtual host's routes for a VirtualService on `ratings`
/// whose single HTTP rule is `rule` (YAML, indented as a list item).
fn ratings_routes(rule: &str) -> Vec<Value> {
    let yaml = format!(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: ratings}}\n\
         spec:\n  hosts: [ratings]\n  http:\n{rule}"
    );
    let resources = crate::translate(&snapshot(&yaml), &productpage());
    let vhost = resources.routes[0]
        .virtual_hosts
        .iter()
        .find(|v| v.name == "ratings.default.svc.cluster.local:9080")
        .expect("ratings virtual host");
    assert!(vhost.include_request_attempt_count);
    vhost
        .routes
        .iter()
        .map(|r| message_to_json(r).unwrap())
        .collect()
}

const RATINGS: &str = "outbound|9080||ratings.default.svc.cluster.local";

#[test]
fn redirects_and_direct_responses() {
    let table = [
        (
            "  - redirect: {uri: /v1/bookRatings, authority: newratings.default.svc.cluster.local}\n",
            json!({"pathRedirect": "/v1/bookRatings", "hostRedirect": "newratings.default.svc.cluster.local"}),
        ),
        (
            "  - redirect: {uri: /x, scheme: https, port: 8443, redirectCode: 307}\n",
            json!({"pathRedirect": "/x", "schemeRedirect": "https", "portRedirect": 8443, "responseCode": "TEMPORARY_REDIRECT"}),
        ),
        (
            "  - redirect: {authority: other, derivePort: FROM_REQUEST_PORT, redirectCode: 302}\n",
            json!({"hostRedirect": "other", "portRedirect": 9080, "responseCode": "FOUND"}),
        ),
    ];
    for (rule, redirect) in table {
        let routes = ratings_routes(rule);
        assert_eq!(routes[0]["redirect"], redirect, "{rule}");
        assert!(routes[0].get("route").is_none());
    }
    let routes = ratings_routes("  - directResponse: {status: 503, body: {string: unavailable}}\n");
    assert_eq!(
        routes[0]["directResponse"],
        json!({"status": 503, "body": {"inlineString": "unavailable"}})
    );
    let routes = ratings_routes("  - directResponse: {status: 200, body: {bytes: aGVsbG8=}}\n");
    assert_eq!(
        routes[0]["directResponse"]["body"]["inlineBytes"],
        "aGVsbG8="
    );
}

#[test]
fn rewrites() {
    let routes = ratings_routes(
        "  - match: [{uri: {prefix: /ratings}}]\n    rewrite: {uri: /v1/ratings, authority: ratings.internal}\n    route: [{destination: {host: ratings}}]\n",
    );
    let action = &routes[0]["route"];
    assert_eq!(action["prefixRewrite"], "/v1/ratings");
    assert_eq!(action["hostRewriteLiteral"], "ratings.internal");
    let routes = ratings_routes(
        "  - rewrite: {uriRegexRewrite: {match: \"^/service/([^/]+)(/.*)$\", rewrite: \"\\\\2/instance/\\\\1\"}}\n    route: [{destination: {host: ratings}}]\n",
    );
    assert_eq!(
        routes[0]["route"]["regexRewrite"],
        json!({"pattern": {"regex": "^/service/([^/]+)(/.*)$"}, "substitution": "\\2/instance/\\1"})
    );
}

#[test]
fn header_operations_per_route_and_per_destination() {
    let routes = ratings_routes(
        "  - headers:\n      request: {set: {x-a: \"1\"}, add: {x-b: \"2\"}, remove: [x-c]}\n      response: {remove: [server]}\n    route:\n    - destination: {host: ratings}\n      headers: {request: {set: {x-d: \"4\"}}, response: {add: {x-e: \"5\"}}}\n",
    );
    let route = &routes[0];
    assert_eq!(
        route["requestHeadersToAdd"],
        json!([
            {"header": {"key": "x-a", "value": "1"}, "appendAction": "OVERWRITE_IF_EXISTS_OR_ADD"},
            {"header": {"key": "x-b", "value": "2"}},
            {"header": {"key": "x-d", "value": "4"}, "appendAction": "OVERWRITE_IF_EXISTS_OR_ADD"},
        ])
    );
    assert_eq!(route["requestHeadersToRemove"], json!(["x-c"]));
    assert_eq!(route["responseHeadersToRemove"], json!(["server"]));
    assert_eq!(route["responseHeadersToAdd"][0]["header"]["key"], "x-e");

    let routes = ratings_routes(
        "  - headers: {request: {set: {host: ratings.example}}}\n    route:\n    - destination: {host: ratings}\n      weight: 60\n      headers: {request: {add: {x-split: a}}}\n    - destination: {host: reviews}\n      weight: 40\n      headers: {response: {set: {x-split: b}}}\n",
    );
    let action = &routes[0]["route"];
    assert_eq!(
        action["hostRewriteLiteral"], "ratings.example",
        "authority set rewrites the host"
    );
    assert!(routes[0].get("requestHeadersToAdd").is_none());
    let clusters = &action["weightedClusters"]["clusters"];
    assert_eq!(
        clusters[0]["requestHeadersToAdd"][0]["header"]["value"],
        "a"
    );
    assert_eq!(
        clusters[1]["responseHeadersToAdd"][0]["header"]["value"],
        "b"
    );
}

#[test]
fn retries_timeouts_and_mirrors() {
    let routes = ratings_routes(
        "  - timeout: 10s\n    retries: {attempts: 3, perTryTimeout: 2s, retryOn: \"gateway-error,connect-failure,refused-stream\"}\n    mirror: {host: reviews}\n    mirrorPercentage: {value: 12.5}\n    route: [{destination: {host: ratings}}]\n",
    );
    let action = &routes[0]["route"];
    assert_eq!(action["timeout"], "10s");
    assert_eq!(action["retryPolicy"]["numRetries"], 3);
    assert_eq!(action["retryPolicy"]["perTryTimeout"], "2s");
    assert_eq!(
        action["retryPolicy"]["retryOn"],
        "gateway-error,connect-failure,refused-stream"
    );
    assert_eq!(
        action["requestMirrorPolicies"],
        json!([{
            "cluster": "outbound|9080||reviews.default.svc.cluster.local",
            "runtimeFraction": {"defaultValue": {"numerator": 125000, "denominator": "MILLION"}},
        }])
    );
    let routes = ratings_routes(
        "  - retries: {attempts: 0}\n    mirrors:\n    - destination: {host: reviews}\n    - destination: {host: details}\n      percentage: {value: 50}\n    route: [{destination: {host: ratings}}]\n",
    );
    let action = &routes[0]["route"];
    assert!(
        action.get("retryPolicy").is_none(),
        "attempts: 0 disables retries"
    );
    let mirrors = action["requestMirrorPolicies"].as_array().unwrap();
    assert_eq!(mirrors.len(), 2);
    assert_eq!(
        mirrors[0]["runtimeFraction"]["defaultValue"]["numerator"],
        1_000_000
    );
    assert_eq!(
        mirrors[1]["runtimeFraction"]["defaultValue"]["numerator"],
        500_000
    );
    assert_eq!(action["cluster"], RATINGS);
}

#[test]
fn faults_go_to_the_fault_filters_per_route_config() {
    let routes = ratings_routes(
        "  - fault:\n      delay: {fixedDelay: 7s, percentage: {value: 100}}\n      abort: {httpStatus: 500, percentage: {value: 0.1}}\n    route: [{destination: {host: ratings}}]\n",
    );
    let fault = &routes[0]["typedPerFilterConfig"]["envoy.filters.http.fault"];
    assert_eq!(
        fault["@type"],
        "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault"
    );
    assert_eq!(fault["delay"]["fixedDelay"], "7s");
    assert_eq!(fault["delay"]["percentage"]["numerator"], 1_000_000);
    assert_eq!(fault["abort"]["httpStatus"], 500);
    assert_eq!(fault["abort"]["percentage"]["numerator"], 1_000);
    let routes = ratings_routes(
        "  - fault: {abort: {grpcStatus: UNAVAILABLE}}\n    route: [{destination: {host: ratings}}]\n",
    );
    let abort = &routes[0]["typedPerFilterConfig"]["envoy.filters.http.fault"]["abort"];
    assert_eq!(abort["grpcStatus"], 14);
    assert!(
        abort.get("percentage").is_none(),
        "unset: no request is aborted"
    );
}

#[test]
fn cors_policy_goes_to_the_cors_filters_per_route_config() {
    let routes = ratings_routes(
        "  - corsPolicy:\n      allowOrigins: [{exact: 'https://a.example'}, {prefix: 'https://b.'}, {regex: 'https://.*\\.c\\.example'}]\n      allowMethods: [GET, POST]\n      allowHeaders: [x-a, x-b]\n      exposeHeaders: [x-c]\n      maxAge: 24h\n      allowCredentials: true\n      unmatchedPreflights: IGNORE\n    route: [{destination: {host: ratings}}]\n",
    );
    let cors = &routes[0]["typedPerFilterConfig"]["envoy.filters.http.cors"];
    assert_eq!(
        cors["@type"],
        "type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy"
    );
    assert_eq!(
        cors["allowOriginStringMatch"],
        json!([
            {"exact": "https://a.example"},
            {"prefix": "https://b."},
            {"safeRegex": {"regex": "https://.*\\.c\\.example"}}
        ])
    );
    assert_eq!(cors["allowMethods"], "GET,POST");
    assert_eq!(cors["allowHeaders"], "x-a,x-b");
    assert_eq!(cors["exposeHeaders"], "x-c");
    assert_eq!(cors["maxAge"], "86400");
    assert_eq!(cors["allowCredentials"], true);
    assert_eq!(cors["forwardNotMatchingPreflights"], false);
    // FORWARD (and unset) is Envoy's default: nothing emitted. The
    // deprecated exact-only `allowOrigin` is read when allowOrigins is empty.
    let routes = ratings_routes(
        "  - corsPolicy: {allowOrigin: ['https://old.example'], unmatchedPreflights: FORWARD}\n    route: [{destination: {host: ratings}}]\n",
    );
    let cors = &routes[0]["typedPerFilterConfig"]["envoy.filters.http.cors"];
    assert_eq!(
        cors["allowOriginStringMatch"],
        json!([{"exact": "https://old.example"}])
    );
    assert!(cors.get("forwardNotMatchingPreflights").is_none());
    assert!(cors.get("allowCredentials").is_none());
}
