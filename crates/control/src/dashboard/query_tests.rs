use std::collections::BTreeSet;

use super::super::store::{ProxyScrape, StoreMetrics, tests::counters, tests::edge};
use super::*;

fn bucketed(requests: f64, server_errors: f64, buckets: &[(f64, f64)]) -> Counters {
    Counters {
        requests,
        server_errors,
        buckets: buckets.to_vec(),
        ..Counters::default()
    }
}

/// A store of rounds 5 s apart, each given as (proxy, edge, cumulative counters).
fn store_of(rounds: Vec<Vec<(&str, EdgeLabels, Counters)>>) -> Store {
    let mut store = Store::new(
        Duration::from_secs(600),
        Duration::from_secs(5),
        100,
        StoreMetrics::default(),
    );
    let proxies: BTreeSet<String> = ["a".to_string(), "b".to_string()].into();
    for (index, round) in rounds.into_iter().enumerate() {
        let mut scrapes: Vec<(String, ProxyScrape)> = Vec::new();
        for (proxy, labels, value) in round {
            match scrapes.iter_mut().find(|(p, _)| p == proxy) {
                Some((_, scrape)) => {
                    scrape.insert(labels, value);
                }
                None => scrapes.push((proxy.to_string(), [(labels, value)].into())),
            }
        }
        store.record(index as u64 * 5_000, scrapes, &proxies);
    }
    store
}

#[test]
fn quantiles_interpolate_within_buckets() {
    let buckets = [
        (10.0, 50.0),
        (100.0, 90.0),
        (1000.0, 100.0),
        (f64::INFINITY, 100.0),
    ];
    assert_eq!(quantile(0.5, &buckets), Some(10.0));
    assert_eq!(quantile(0.7, &buckets), Some(55.0));
    assert_eq!(quantile(0.99, &buckets), Some(910.0));
    assert_eq!(quantile(0.25, &buckets), Some(5.0));
    // Beyond the last finite bound: that bound.
    let slow = [(10.0, 1.0), (f64::INFINITY, 10.0)];
    assert_eq!(quantile(0.99, &slow), Some(10.0));
    assert_eq!(quantile(0.99, &[(10.0, 0.0), (f64::INFINITY, 0.0)]), None);
    assert_eq!(quantile(0.99, &[]), None);
}

#[test]
fn graph_has_rates_errors_latency_and_mtls_per_edge() {
    let secure = edge("productpage-v1", "v1", "mutual_tls");
    let plain = edge("productpage-v1", "v2", "none");
    let store = store_of(vec![
        vec![(
            "a",
            secure.clone(),
            bucketed(0.0, 0.0, &[(10.0, 0.0), (f64::INFINITY, 0.0)]),
        )],
        vec![
            (
                "a",
                secure.clone(),
                bucketed(50.0, 5.0, &[(10.0, 40.0), (f64::INFINITY, 50.0)]),
            ),
            // b's series starts at zero: watched from here on.
            ("b", plain.clone(), counters(0.0, 0.0)),
        ],
        vec![
            (
                "a",
                secure,
                bucketed(100.0, 10.0, &[(10.0, 100.0), (f64::INFINITY, 100.0)]),
            ),
            ("b", plain, counters(25.0, 0.0)),
        ],
    ]);
    let graph = graph(&store, Duration::from_secs(60));
    assert_eq!(graph.window_seconds, 10.0);
    assert_eq!(graph.proxies, 2);
    let ids: Vec<&str> = graph.nodes.iter().map(|n| n.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "service/default/reviews",
            "workload/default/productpage-v1",
            "workload/default/reviews-v1",
            "workload/default/reviews-v2"
        ]
    );
    let edge = |target: &str| graph.edges.iter().find(|e| e.target == target).unwrap();
    let to_service = edge("service/default/reviews");
    assert_eq!(to_service.source, "workload/default/productpage-v1");
    assert_eq!(to_service.signals.requests_per_second, 12.5);
    assert_eq!(to_service.signals.error_rate, 0.08);
    assert_eq!(to_service.security, "mixed");
    let v1 = edge("workload/default/reviews-v1");
    assert_eq!(
        (v1.signals.requests_per_second, v1.signals.error_rate),
        (10.0, 0.1)
    );
    assert_eq!(v1.security, "mutual_tls");
    assert_eq!(v1.signals.p99_ms, Some(9.9));
    let v2 = edge("workload/default/reviews-v2");
    assert_eq!(v2.security, "none");
    assert_eq!(graph.nodes[3].version.as_deref(), Some("v2"));
}

#[test]
fn graph_window_covers_only_recent_rounds() {
    let labels = edge("productpage-v1", "v1", "mutual_tls");
    let rounds = [0.0, 100.0, 100.0, 100.0, 110.0]
        .into_iter()
        .map(|requests| vec![("a", labels.clone(), counters(requests, 0.0))])
        .collect();
    let store = store_of(rounds);
    let recent = graph(&store, Duration::from_secs(5));
    assert_eq!(recent.edges[0].signals.requests_per_second, 2.0);
    let all = graph(&store, Duration::from_secs(600));
    assert_eq!(all.edges[0].signals.requests_per_second, 110.0 / 20.0);
    // Idle in the window: no edge at all.
    let store = store_of(vec![vec![("a", labels.clone(), counters(5.0, 0.0))]; 3]);
    assert!(graph(&store, Duration::from_secs(60)).edges.is_empty());
}

#[test]
fn service_view_splits_by_version_over_time() {
    let v1 = edge("productpage-v1", "v1", "mutual_tls");
    let v3 = edge("productpage-v1", "v3", "mutual_tls");
    let store = store_of(vec![
        vec![
            ("a", v1.clone(), counters(0.0, 0.0)),
            ("b", v3.clone(), counters(0.0, 0.0)),
        ],
        vec![
            ("a", v1.clone(), counters(45.0, 0.0)),
            ("b", v3.clone(), counters(5.0, 1.0)),
        ],
        vec![
            ("a", v1, counters(90.0, 0.0)),
            ("b", v3, counters(10.0, 2.0)),
        ],
    ]);
    let view = service(
        &store,
        "reviews",
        "default",
        Duration::from_secs(60),
        &EdgeFilter::default(),
    );
    assert_eq!(view.current.requests_per_second, 10.0);
    assert_eq!(view.current.error_rate, 0.02);
    assert_eq!(view.current.p99_ms, Some(9.9));
    let rates: Vec<f64> = view
        .timeline
        .iter()
        .map(|t| t.signals.requests_per_second)
        .collect();
    assert_eq!(rates, [10.0, 10.0]);
    let versions: Vec<(&str, f64)> = view
        .versions
        .iter()
        .map(|v| (v.version.as_str(), v.share))
        .collect();
    assert_eq!(versions, [("v1", 0.9), ("v3", 0.1)]);
    assert_eq!(view.versions[1].timeline[1].requests_per_second, 1.0);
    let other = service(
        &store,
        "ratings",
        "default",
        Duration::from_secs(60),
        &EdgeFilter::default(),
    );
    assert!(other.versions.is_empty());
    assert_eq!(other.current.requests_per_second, 0.0);
}

#[test]
fn an_edge_narrows_the_service_view_to_its_caller_or_its_server() {
    let from_productpage = edge("productpage-v1", "v1", "mutual_tls");
    let from_other = edge("other-v1", "v3", "mutual_tls");
    let store = store_of(vec![
        vec![
            ("a", from_productpage.clone(), counters(0.0, 0.0)),
            ("b", from_other.clone(), counters(0.0, 0.0)),
        ],
        vec![
            ("a", from_productpage, counters(40.0, 4.0)),
            ("b", from_other, counters(10.0, 0.0)),
        ],
    ]);
    let window = Duration::from_secs(60);
    let caller = EdgeFilter {
        source: Some("workload/default/productpage-v1".into()),
        destination: None,
    };
    let view = service(&store, "reviews", "default", window, &caller);
    assert_eq!(view.current.requests_per_second, 8.0);
    assert_eq!(view.current.error_rate, 0.1);
    let server = EdgeFilter {
        source: None,
        destination: Some("workload/default/reviews-v3".into()),
    };
    let view = service(&store, "reviews", "default", window, &server);
    assert_eq!(view.current.requests_per_second, 2.0);
    let versions: Vec<&str> = view.versions.iter().map(|v| v.version.as_str()).collect();
    assert_eq!(versions, ["v3"]);
}

#[test]
fn idle_versions_are_not_listed() {
    let v1 = edge("productpage-v1", "v1", "mutual_tls");
    let v2 = edge("productpage-v1", "v2", "mutual_tls");
    let store = store_of(vec![
        vec![
            ("a", v1.clone(), counters(0.0, 0.0)),
            ("b", v2.clone(), counters(3.0, 0.0)),
        ],
        vec![
            ("a", v1, counters(10.0, 0.0)),
            ("b", v2, counters(3.0, 0.0)),
        ],
    ]);
    let view = service(
        &store,
        "reviews",
        "default",
        Duration::from_secs(60),
        &EdgeFilter::default(),
    );
    let versions: Vec<(&str, f64)> = view
        .versions
        .iter()
        .map(|v| (v.version.as_str(), v.share))
        .collect();
    assert_eq!(versions, [("v1", 1.0)]);
}
