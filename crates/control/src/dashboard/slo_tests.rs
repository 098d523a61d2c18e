use std::collections::BTreeSet;
use std::sync::Arc;

use super::super::store::tests::edge;
use super::super::store::{ProxyScrape, StoreMetrics};
use super::*;

const AVAILABILITY: Objective = Objective::Availability { target: 99.5 };

/// A store of one reviews series, one round a minute: round 0 is the
/// baseline, then each minute's (requests, 5xx) are added.
fn store_of_minutes(minutes: &[(f64, f64)]) -> Store {
    let mut store = Store::new(
        Duration::from_secs(2 * 3600),
        Duration::from_secs(60),
        10,
        StoreMetrics::default(),
    );
    let proxies: BTreeSet<String> = ["a".to_string()].into();
    let mut total = Counters::default();
    let rounds = std::iter::once((0.0, 0.0)).chain(minutes.iter().copied());
    for (index, (requests, errors)) in rounds.enumerate() {
        total.requests += requests;
        total.server_errors += errors;
        let scrape: ProxyScrape =
            [(edge("productpage-v1", "v1", "mutual_tls"), total.clone())].into();
        store.record(index as u64 * 60_000, vec![("a".into(), scrape)], &proxies);
    }
    store
}

fn snapshot(yaml: &str) -> Snapshot {
    let outcome = trellis_api::parse_yaml(std::path::Path::new("test.yaml"), yaml);
    assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
    Snapshot::new(1, outcome.resources.into_iter().map(Arc::new).collect())
}

const REVIEWS: &str = "apiVersion: v1\nkind: Service\nmetadata: {name: reviews, namespace: default}\nspec:\n  selector: {app: reviews}\n  ports: [{name: http, port: 9080}]\n";

fn slo(name: &str, spec: &str) -> String {
    format!(
        "---\napiVersion: trellis.io/v1alpha1\nkind: ServiceLevelObjective\nmetadata: {{name: {name}, namespace: default}}\nspec:\n{spec}"
    )
}

fn measured(requests: f64, bad: f64) -> Measured {
    Measured {
        seconds: 60.0,
        requests,
        bad,
    }
}

#[test]
fn latency_counts_requests_within_the_threshold_from_buckets() {
    let buckets = [(100.0, 60.0), (250.0, 90.0), (f64::INFINITY, 100.0)];
    assert_eq!(within(&buckets, 100.0), (60.0, true));
    assert_eq!(within(&buckets, 250.0), (90.0, true));
    // Halfway through the 100-250 bucket: half of its 30.
    assert_eq!(within(&buckets, 175.0), (75.0, false));
    assert_eq!(within(&buckets, 50.0), (30.0, false));
    // Past the last finite bound, the +Inf bucket's requests are too slow.
    assert_eq!(within(&buckets, 400.0), (90.0, false));
    assert_eq!(within(&[], 100.0), (0.0, true));

    let counters = Counters {
        requests: 100.0,
        server_errors: 50.0,
        buckets: buckets.to_vec(),
        ..Counters::default()
    };
    let latency = Objective::Latency {
        threshold: Duration::from_millis(250),
        target: 99.0,
    };
    assert_eq!(
        Measured::of(&counters, 10.0, &latency),
        Measured {
            seconds: 10.0,
            requests: 100.0,
            bad: 10.0
        }
    );
    // Availability counts 5xx, whatever their latency.
    assert_eq!(Measured::of(&counters, 10.0, &AVAILABILITY).bad, 50.0);
}

#[test]
fn budget_and_burn_rates() {
    // 99.5%: 5 bad requests in 1000 are the whole budget.
    let on_budget = measured(1000.0, 5.0);
    assert_eq!(on_budget.sli(), Some(0.995));
    assert!((on_budget.burn_rate(99.5).unwrap() - 1.0).abs() < 1e-9);
    let light = measured(1000.0, 1.0);
    assert!((light.burn_rate(99.5).unwrap() - 0.2).abs() < 1e-9);
    // Every request failing: 200 times too fast, the budget 199 times over.
    let all_errors = measured(50.0, 50.0);
    assert_eq!(all_errors.sli(), Some(0.0));
    assert!((all_errors.burn_rate(99.5).unwrap() - 200.0).abs() < 1e-9);
    // No traffic measures nothing: neither good nor bad.
    let idle = measured(0.0, 0.0);
    assert_eq!((idle.sli(), idle.burn_rate(99.5)), (None, None));
}

#[test]
fn both_windows_must_burn_to_flag() {
    let burning = measured(100.0, 10.0); // 20x at 99.5%
    let slow = measured(100.0, 4.0); // 8x
    let calm = measured(100.0, 0.0);
    let idle = measured(0.0, 0.0);
    assert_eq!(status(&calm, &burning, &burning, 99.5), Status::FastBurn);
    assert_eq!(status(&calm, &burning, &slow, 99.5), Status::SlowBurn);
    assert_eq!(status(&calm, &slow, &slow, 99.5), Status::SlowBurn);
    // A spike that is over, or one too short to matter: no alert.
    assert_eq!(status(&calm, &calm, &burning, 99.5), Status::Ok);
    assert_eq!(status(&calm, &idle, &burning, 99.5), Status::Ok);
    // The history spent it all, but the burn has stopped.
    assert_eq!(status(&burning, &calm, &calm, 99.5), Status::Exhausted);
    assert_eq!(status(&idle, &idle, &idle, 99.5), Status::NoData);
}

#[test]
fn a_recent_outage_burns_fast_in_both_windows() {
    // 55 clean minutes, then 5 minutes of every request failing.
    let mut minutes = vec![(100.0, 0.0); 55];
    minutes.extend([(100.0, 100.0); 5]);
    let store = store_of_minutes(&minutes);
    let config = snapshot(&format!(
        "{REVIEWS}{}",
        slo(
            "reviews",
            "  service: reviews\n  availability: {target: 99.5}\n"
        )
    ));
    let report = report(&store, Some(&config), Duration::from_secs(7200));
    let view = &report.slos[0];
    assert_eq!(
        view.service_host.as_deref(),
        Some("reviews.default.svc.cluster.local")
    );
    assert_eq!(view.short.measured.seconds, 300.0);
    assert_eq!(view.short.measured.requests, 500.0);
    assert!((view.short.burn_rate.unwrap() - 200.0).abs() < 1e-9);
    // 500 bad of 6000 in the hour: 0.0833 / 0.005.
    assert!((view.long.burn_rate.unwrap() - 500.0 / 6000.0 / 0.005).abs() < 1e-9);
    assert_eq!(view.status, Status::FastBurn);
    assert!(view.budget_remaining.unwrap() < 0.0, "{view:?}");
}

#[test]
fn history_shorter_than_the_windows_is_measured_as_far_as_it_goes() {
    let store = store_of_minutes(&[(200.0, 1.0), (200.0, 0.0)]);
    let config = snapshot(&format!(
        "{REVIEWS}{}",
        slo(
            "reviews",
            "  service: reviews\n  availability: {target: 99}\n  window: 7d\n"
        )
    ));
    let view = &report(&store, Some(&config), Duration::from_secs(3600)).slos[0];
    assert_eq!(view.window_seconds, 7.0 * 24.0 * 3600.0);
    for window in [&view.history, &view.short.measured, &view.long.measured] {
        assert_eq!(
            (window.seconds, window.requests, window.bad),
            (120.0, 400.0, 1.0)
        );
    }
    assert_eq!(view.sli, Some(1.0 - 1.0 / 400.0));
    // 0.25% bad of a 1% budget: three quarters left.
    assert!((view.budget_remaining.unwrap() - 0.75).abs() < 1e-9);
    assert_eq!(view.status, Status::Ok);
}

#[test]
fn slos_without_traffic_or_service_say_so() {
    let config = snapshot(&format!(
        "{REVIEWS}{}{}",
        slo(
            "reviews-latency",
            "  service: reviews.default.svc.cluster.local\n  latency: {threshold: 200ms, target: 99}\n"
        ),
        slo(
            "gone",
            "  service: ratings\n  availability: {target: 99.9}\n"
        ),
    ));
    let empty = Store::new(
        Duration::from_secs(3600),
        Duration::from_secs(5),
        10,
        StoreMetrics::default(),
    );
    let report = report(&empty, Some(&config), Duration::from_secs(3600));
    let names: Vec<(&str, Status)> = report
        .slos
        .iter()
        .map(|s| (s.name.as_str(), s.status))
        .collect();
    assert_eq!(
        names,
        [
            ("gone", Status::UnknownService),
            ("reviews-latency", Status::NoData)
        ]
    );
    let latency = &report.slos[1];
    assert_eq!(
        (latency.objective, latency.threshold_ms),
        ("latency", Some(200.0))
    );
    assert_eq!((latency.sli, latency.budget_remaining), (None, None));
    assert!(!latency.estimated, "nothing measured, nothing estimated");
    // Before any config is loaded there is nothing to measure.
    assert!(
        super::report(&empty, None, Duration::from_secs(3600))
            .slos
            .is_empty()
    );
}
