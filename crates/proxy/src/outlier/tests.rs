use envoy_types::pb::google::protobuf::Duration as XdsDuration;

use super::*;

fn seconds(seconds: i64) -> Option<XdsDuration> {
    Some(XdsDuration { seconds, nanos: 0 })
}

fn value(value: u32) -> Option<UInt32Value> {
    Some(UInt32Value { value })
}

/// Istio's translation of `consecutive5xxErrors: 2, interval: 10s,
/// baseEjectionTime: 30s, maxEjectionPercent: 50`.
fn detector() -> OutlierDetector {
    let config = OutlierConfig::compile(&xds::OutlierDetection {
        consecutive_5xx: value(2),
        enforcing_consecutive_5xx: value(100),
        enforcing_success_rate: value(0),
        interval: seconds(10),
        base_ejection_time: seconds(30),
        max_ejection_percent: value(50),
        ..Default::default()
    })
    .unwrap();
    OutlierDetector::new(config)
}

fn status(status: u16) -> Outcome {
    Outcome::Response {
        status,
        grpc_status: None,
        rate_limited: false,
    }
}

fn address(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

#[test]
fn consecutive_5xx_eject_until_the_tick_after_the_ejection_time() {
    let detector = detector();
    let start = detector.started;
    let bad = address(1);
    detector.record_at(bad, status(500), 4, start);
    assert!(
        detector.ejected_at(start).is_empty(),
        "one error is not enough"
    );
    detector.record_at(bad, status(503), 4, start + Duration::from_secs(1));
    assert_eq!(detector.ejected_at(start + Duration::from_secs(2)), [bad]);
    // Ejected at 1s for 30s: back at the first tick from 31s, which is 40s.
    assert_eq!(detector.ejected_at(start + Duration::from_secs(39)), [bad]);
    assert!(
        detector
            .ejected_at(start + Duration::from_secs(40))
            .is_empty()
    );
}

#[test]
fn a_success_resets_the_count() {
    let detector = detector();
    let now = detector.started;
    for outcome in [status(500), status(200), status(500), status(404)] {
        detector.record_at(address(1), outcome, 4, now);
    }
    assert!(detector.ejected_at(now).is_empty());
}

#[test]
fn repeated_ejections_last_longer_and_ticks_in_service_forgive_them() {
    let detector = detector();
    let start = detector.started;
    let bad = address(1);
    let fail_twice = |at: Instant| {
        detector.record_at(bad, status(500), 2, at);
        detector.record_at(bad, status(500), 2, at);
    };
    fail_twice(start);
    assert!(
        detector
            .ejected_at(start + Duration::from_secs(30))
            .is_empty()
    );
    fail_twice(start + Duration::from_secs(30)); // second ejection: 60s
    assert_eq!(detector.ejected_at(start + Duration::from_secs(89)), [bad]);
    assert!(
        detector
            .ejected_at(start + Duration::from_secs(90))
            .is_empty()
    );
    // Back at 90s; 200s later 20 ticks have forgiven both ejections.
    fail_twice(start + Duration::from_secs(290));
    assert!(
        detector
            .ejected_at(start + Duration::from_secs(320))
            .is_empty()
    );
}

#[test]
fn never_more_than_max_ejection_percent() {
    let detector = detector();
    let now = detector.started;
    for port in 1..=4 {
        detector.record_at(address(port), status(500), 4, now);
        detector.record_at(address(port), status(500), 4, now);
    }
    assert_eq!(detector.ejected_at(now).len(), 2, "50% of 4 endpoints");
}

#[test]
fn local_origin_failures_count_apart_only_when_split() {
    let unsplit = detector();
    let now = unsplit.started;
    unsplit.record_at(address(1), Outcome::ConnectFailure, 2, now);
    unsplit.record_at(address(1), Outcome::Reset, 2, now);
    assert_eq!(unsplit.ejected_at(now).len(), 1, "counted as 5xx");

    let split = OutlierDetector::new(
        OutlierConfig::compile(&xds::OutlierDetection {
            consecutive_5xx: value(2),
            split_external_local_origin_errors: true,
            consecutive_local_origin_failure: value(3),
            enforcing_success_rate: value(0),
            enforcing_local_origin_success_rate: value(0),
            max_ejection_percent: value(100),
            ..Default::default()
        })
        .unwrap(),
    );
    let now = split.started;
    split.record_at(address(1), Outcome::ConnectFailure, 2, now);
    split.record_at(address(1), Outcome::ConnectFailure, 2, now);
    assert!(split.ejected_at(now).is_empty());
    split.record_at(address(1), Outcome::PerTryTimeout, 2, now);
    assert_eq!(split.ejected_at(now), [address(1)]);
}

#[test]
fn success_rate_ejection_is_refused() {
    let error = OutlierConfig::compile(&xds::OutlierDetection::default()).unwrap_err();
    assert!(error.0.contains("success rate"));
}
