use std::collections::BTreeSet;

use super::*;

pub(crate) fn edge(source: &str, version: &str, security: &str) -> EdgeLabels {
    EdgeLabels {
        source_workload: source.into(),
        source_namespace: "default".into(),
        destination_workload: format!("reviews-{version}"),
        destination_namespace: "default".into(),
        destination_version: version.into(),
        service_name: "reviews".into(),
        service_namespace: "default".into(),
        security_policy: security.into(),
    }
}

pub(crate) fn counters(requests: f64, server_errors: f64) -> Counters {
    Counters {
        requests,
        server_errors,
        buckets: vec![(10.0, requests), (f64::INFINITY, requests)],
        ..Counters::default()
    }
}

fn live(proxies: &[&str]) -> BTreeSet<String> {
    proxies.iter().map(|p| p.to_string()).collect()
}

fn one(proxy: &str, labels: EdgeLabels, value: Counters) -> Vec<(String, ProxyScrape)> {
    vec![(proxy.to_string(), [(labels, value)].into())]
}

fn store(max_series: usize) -> Store {
    let interval = Duration::from_secs(5);
    Store::new(
        Duration::from_secs(60),
        interval,
        max_series,
        StoreMetrics::default(),
    )
}

fn total_requests(store: &Store, after_round: u64) -> f64 {
    store
        .increases(after_round)
        .map(|(_, _, c)| c.requests)
        .sum()
}

#[test]
fn counts_increases_and_survives_counter_resets() {
    let mut store = store(10);
    let labels = edge("productpage-v1", "v1", "mutual_tls");
    for (at, requests) in [(0, 100.0), (5_000, 130.0), (10_000, 4.0), (15_000, 10.0)] {
        store.record(
            at,
            one("a", labels.clone(), counters(requests, 0.0)),
            &live(&["a"]),
        );
    }
    // 30 before the restart, then 4 counted by the new process, then 6.
    assert_eq!(total_requests(&store, 0), 40.0);
    assert_eq!(total_requests(&store, 2), 6.0);
}

#[test]
fn a_series_born_while_watched_counts_from_zero_but_not_at_first_sight() {
    let mut store = store(10);
    let old = edge("productpage-v1", "v1", "mutual_tls");
    let new = edge("productpage-v1", "v3", "mutual_tls");
    // History from before the control plane watched is not a rate.
    store.record(
        0,
        one("a", old.clone(), counters(500.0, 0.0)),
        &live(&["a"]),
    );
    let both: ProxyScrape = [(old, counters(500.0, 0.0)), (new, counters(7.0, 0.0))].into();
    store.record(5_000, vec![("a".into(), both)], &live(&["a"]));
    assert_eq!(total_requests(&store, 0), 7.0);
}

#[test]
fn drops_vanished_proxies_and_old_rounds() {
    let mut store = store(10);
    let labels = edge("productpage-v1", "v1", "mutual_tls");
    store.record(
        0,
        one("a", labels.clone(), counters(1.0, 0.0)),
        &live(&["a", "b"]),
    );
    store.record(
        0,
        one("b", labels.clone(), counters(1.0, 0.0)),
        &live(&["a", "b"]),
    );
    assert_eq!(store.series_count(), 2);
    store.record(5_000, Vec::new(), &live(&["a"]));
    assert_eq!(store.series_count(), 1, "b disconnected");
    // 60 s at 5 s: 12 rounds are kept, and with them a's only point goes.
    for round in 2..14 {
        store.record(round * 5_000, Vec::new(), &live(&["a"]));
    }
    assert_eq!(store.rounds().len(), 12);
    assert_eq!(store.series_count(), 0);
}

#[test]
fn refuses_series_beyond_the_cap_and_counts_them() {
    let metrics = StoreMetrics::default();
    let mut store = Store::new(
        Duration::from_secs(60),
        Duration::from_secs(5),
        1,
        metrics.clone(),
    );
    let first = edge("productpage-v1", "v1", "mutual_tls");
    let second = edge("productpage-v1", "v2", "mutual_tls");
    let scrape: ProxyScrape = [(first, counters(1.0, 0.0)), (second, counters(1.0, 0.0))].into();
    store.record(0, vec![("a".into(), scrape)], &live(&["a"]));
    assert_eq!(store.series_count(), 1);
    assert_eq!(metrics.dropped.get(), 1);
    assert_eq!(metrics.series.get(), 1);
}

#[test]
fn buckets_with_other_bounds_are_a_reset() {
    let before = counters(10.0, 1.0);
    let mut after = counters(12.0, 1.0);
    assert_eq!(after.since(&before).requests, 2.0);
    after.buckets[0].0 = 25.0;
    assert_eq!(after.since(&before), after);
}
