//! Route table compilation and matching, and the NACKs of what the proxy
//! does not implement.

use super::*;
use envoy_types::pb::envoy::config::route::v3::weighted_cluster::ClusterWeight;
use envoy_types::pb::envoy::config::route::v3::{RouteMatch, WeightedCluster};
use envoy_types::pb::google::protobuf::UInt32Value;

fn route(name: &str, matcher: RouteMatch, cluster: ClusterSpecifier) -> xds::Route {
    xds::Route {
        name: name.into(),
        r#match: Some(matcher),
        action: Some(Action::Route(xds::RouteAction {
            cluster_specifier: Some(cluster),
            ..Default::default()
        })),
        ..Default::default()
    }
}

fn table() -> RouteTable {
    let jason = RouteMatch {
        path_specifier: Some(PathSpecifier::Prefix("/".into())),
        headers: vec![xds::HeaderMatcher {
            name: "end-user".into(),
            header_match_specifier: Some(HeaderMatchSpecifier::StringMatch(StringMatcher {
                match_pattern: Some(MatchPattern::Exact("jason".into())),
                ..Default::default()
            })),
            ..Default::default()
        }],
        ..Default::default()
    };
    let split = WeightedCluster {
        clusters: [("v1", 90), ("v2", 10)]
            .map(|(name, weight)| ClusterWeight {
                name: name.into(),
                weight: Some(UInt32Value { value: weight }),
                ..Default::default()
            })
            .to_vec(),
        ..Default::default()
    };
    let any_path = RouteMatch {
        path_specifier: Some(PathSpecifier::Prefix("/".into())),
        ..Default::default()
    };
    let config = xds::RouteConfiguration {
        name: "http_proxy".into(),
        virtual_hosts: vec![
            xds::VirtualHost {
                name: "reviews".into(),
                domains: vec![
                    "reviews:9080".into(),
                    "reviews.default.svc.cluster.local:9080".into(),
                ],
                routes: vec![
                    route("jason", jason, ClusterSpecifier::Cluster("v2".into())),
                    route(
                        "split",
                        any_path.clone(),
                        ClusterSpecifier::WeightedClusters(split),
                    ),
                ],
                ..Default::default()
            },
            xds::VirtualHost {
                name: "wild".into(),
                domains: vec!["*.example.com".into(), "*".into()],
                routes: vec![route(
                    "any",
                    any_path,
                    ClusterSpecifier::Cluster("fallback".into()),
                )],
                ..Default::default()
            },
        ],
        ..Default::default()
    };
    RouteTable::compile(&config).unwrap()
}

fn find<'a>(table: &'a RouteTable, authority: &str, headers: &HeaderMap) -> &'a str {
    let view = RequestView {
        method: "GET",
        authority,
        scheme: "http",
        path: "/reviews/0?x=1",
        headers,
    };
    &table.find(&view).unwrap().name
}

#[test]
fn first_matching_route_wins_within_the_exact_host() {
    let table = table();
    let mut headers = HeaderMap::new();
    assert_eq!(find(&table, "reviews:9080", &headers), "split");
    headers.insert("end-user", "jason".parse().unwrap());
    assert_eq!(find(&table, "REVIEWS:9080", &headers), "jason");
    headers.insert("end-user", "json".parse().unwrap());
    assert_eq!(find(&table, "reviews:9080", &headers), "split");
    assert_eq!(find(&table, "ratings:9080", &headers), "any");
}

#[test]
fn weighted_pick_follows_weights() {
    let table = table();
    let view = RequestView {
        method: "GET",
        authority: "reviews:9080",
        scheme: "http",
        path: "/",
        headers: &HeaderMap::new(),
    };
    let RouteAction::Forward(forward) = &table.find(&view).unwrap().action else {
        panic!("forward")
    };
    assert_eq!(forward.total_weight, 100);
    let v1 = (0..forward.total_weight)
        .filter(|roll| forward.pick(*roll).name == "v1")
        .count();
    assert_eq!(v1, 90);
}

fn single_route(route: xds::Route, include_attempt_count: bool) -> Result<RouteTable, Unsupported> {
    RouteTable::compile(&xds::RouteConfiguration {
        virtual_hosts: vec![xds::VirtualHost {
            domains: vec!["*".into()],
            routes: vec![route],
            include_request_attempt_count: include_attempt_count,
            ..Default::default()
        }],
        ..Default::default()
    })
}

fn forward_route(path: PathSpecifier, action: xds::RouteAction) -> xds::Route {
    xds::Route {
        r#match: Some(RouteMatch {
            path_specifier: Some(path),
            ..Default::default()
        }),
        action: Some(Action::Route(xds::RouteAction {
            cluster_specifier: Some(ClusterSpecifier::Cluster("c".into())),
            ..action
        })),
        ..Default::default()
    }
}

fn only_route<'a>(table: &'a RouteTable, path: &str) -> &'a Route {
    let headers = HeaderMap::new();
    let view = RequestView {
        method: "GET",
        authority: "any",
        scheme: "http",
        path,
        headers: &headers,
    };
    table.find(&view).expect("the route matches")
}

#[test]
fn prefix_rewrite_replaces_the_prefix_the_route_matched() {
    let action = xds::RouteAction {
        prefix_rewrite: "/v2/".into(),
        ..Default::default()
    };
    for (path_match, request, rewritten) in [
        (
            PathSpecifier::Prefix("/v1/".into()),
            "/v1/items?q=1",
            "/v2/items?q=1",
        ),
        (
            PathSpecifier::Path("/exact".into()),
            "/exact?q=1",
            "/v2/?q=1",
        ),
        (
            PathSpecifier::SafeRegex(RegexMatcher {
                regex: "/users/[0-9]+".into(),
                ..Default::default()
            }),
            "/users/42",
            "/v2/",
        ),
    ] {
        let table = single_route(forward_route(path_match, action.clone()), true).unwrap();
        let route = only_route(&table, request);
        let RouteAction::Forward(forward) = &route.action else {
            panic!("forward")
        };
        let rewrite = forward.path_rewrite.as_ref().unwrap();
        assert_eq!(
            rewrite.apply(request, route.matched_len(request)),
            rewritten
        );
        assert!(route.include_attempt_count);
    }
}

#[test]
fn retries_mirrors_faults_and_headers_compile() {
    use envoy_types::pb::envoy::config::core::v3::{HeaderValue, HeaderValueOption};
    use envoy_types::pb::envoy::extensions::filters::http::fault::v3::HttpFault;
    let action = xds::RouteAction {
        retry_policy: Some(xds::RetryPolicy {
            retry_on: "5xx,unavailable".into(),
            ..Default::default()
        }),
        request_mirror_policies: vec![xds::route_action::RequestMirrorPolicy {
            cluster: "shadow".into(),
            ..Default::default()
        }],
        ..Default::default()
    };
    let mut route = forward_route(PathSpecifier::Prefix("/".into()), action);
    route.request_headers_to_add.push(HeaderValueOption {
        header: Some(HeaderValue {
            key: "x-a".into(),
            value: "1".into(),
            ..Default::default()
        }),
        ..Default::default()
    });
    route.typed_per_filter_config.insert(
        crate::fault::FAULT_FILTER.into(),
        envoy_types::util::pack_any(HttpFault::default()),
    );
    let table = single_route(route, false).unwrap();
    let route = only_route(&table, "/");
    let RouteAction::Forward(forward) = &route.action else {
        panic!("forward")
    };
    assert!(forward.retry.is_some());
    assert_eq!(forward.mirrors.len(), 1);
    assert!(route.fault.is_some());
    assert!(!route.request_headers.is_empty());
    assert!(!route.include_attempt_count);
}

#[test]
fn unsupported_fields_are_rejected_by_name() {
    let mut config = xds::RouteConfiguration::default();
    config.virtual_hosts.push(xds::VirtualHost {
        routes: vec![xds::Route {
            r#match: Some(RouteMatch {
                path_specifier: Some(PathSpecifier::Prefix("/".into())),
                ..Default::default()
            }),
            action: Some(Action::Route(xds::RouteAction {
                cluster_specifier: Some(ClusterSpecifier::Cluster("c".into())),
                hedge_policy: Some(Default::default()),
                ..Default::default()
            })),
            ..Default::default()
        }],
        ..Default::default()
    });
    assert_eq!(
        RouteTable::compile(&config).unwrap_err(),
        Unsupported("route.hedge_policy")
    );
}

#[test]
fn cors_and_fault_read_their_own_per_filter_configs() {
    use envoy_types::pb::envoy::extensions::filters::http::cors::v3::CorsPolicy as EnvoyCors;
    use envoy_types::pb::envoy::extensions::filters::http::fault::v3::HttpFault;
    use envoy_types::util::pack_any;

    let mut route = forward_route(
        PathSpecifier::Prefix("/".into()),
        xds::RouteAction::default(),
    );
    route.typed_per_filter_config = [
        (CORS_FILTER.to_string(), pack_any(EnvoyCors::default())),
        (
            crate::fault::FAULT_FILTER.to_string(),
            pack_any(HttpFault::default()),
        ),
    ]
    .into();
    let settings = HostSettings {
        include_attempt_count: false,
    };
    let compiled = Route::compile(&route, settings).unwrap();
    assert!(compiled.cors.is_some() && compiled.fault.is_some());

    route.typed_per_filter_config.insert(
        "envoy.filters.http.csrf".into(),
        pack_any(HttpFault::default()),
    );
    assert!(
        Route::compile(&route, settings).is_err(),
        "unknown filters NACK"
    );
}
