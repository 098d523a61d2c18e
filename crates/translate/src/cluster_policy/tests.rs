use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::cluster::v3::cluster::{LbConfig, LbPolicy};
use trellis_api::DestinationRule;
use trellis_config::Protocol;

use super::ClusterPolicy;

fn rule(json: &str) -> DestinationRule {
    serde_json::from_str(json).expect("a valid DestinationRule spec")
}

const LAYERED: &str = r#"{
  "host": "reviews",
  "trafficPolicy": {
    "connectionPool": {"tcp": {"maxConnections": 10}},
    "loadBalancer": {"simple": "RANDOM"},
    "portLevelSettings": [
      {"port": {"number": 9090}, "outlierDetection": {"consecutive5xxErrors": 3}}
    ]
  },
  "subsets": [
    {"name": "v1", "labels": {"version": "v1"}, "trafficPolicy": {
      "loadBalancer": {"simple": "LEAST_REQUEST"},
      "portLevelSettings": [
        {"port": {"number": 9091}, "connectionPool": {"http": {"maxRetries": 2}}}
      ]
    }},
    {"name": "v2", "labels": {"version": "v2"}}
  ]
}"#;

#[test]
fn subset_policies_override_each_sub_policy_and_ports_replace_everything() {
    let rule = rule(LAYERED);
    let top = rule.traffic_policy.as_ref().unwrap();
    let whole = ClusterPolicy::merged(Some(&rule), "", 9080);
    assert_eq!(whole.connection_pool, top.connection_pool.as_ref());
    assert_eq!(whole.load_balancer, top.load_balancer.as_ref());
    assert_eq!(whole.outlier_detection, None);

    let top_port = ClusterPolicy::merged(Some(&rule), "", 9090);
    assert_eq!(
        top_port.connection_pool, None,
        "port settings do not inherit"
    );
    assert!(top_port.outlier_detection.is_some());

    let v1 = ClusterPolicy::merged(Some(&rule), "v1", 9080);
    let v1_policy = rule.subsets[0].traffic_policy.as_ref().unwrap();
    assert_eq!(v1.load_balancer, v1_policy.load_balancer.as_ref());
    assert_eq!(
        v1.connection_pool,
        top.connection_pool.as_ref(),
        "inherited"
    );

    let v1_port = ClusterPolicy::merged(Some(&rule), "v1", 9091);
    assert_eq!(v1_port.load_balancer, None);
    assert!(v1_port.connection_pool.unwrap().http.is_some());

    let v2 = ClusterPolicy::merged(Some(&rule), "v2", 9080);
    assert_eq!(v2, whole, "a subset without a policy takes the rule's");
}

fn applied(policy: &str) -> Cluster {
    let rule = rule(&format!(r#"{{"host": "a", "trafficPolicy": {policy}}}"#));
    let mut cluster = Cluster::default();
    ClusterPolicy::merged(Some(&rule), "", 9080).apply(&mut cluster, Protocol::Http);
    cluster
}

#[test]
fn unset_thresholds_take_istios_unlimited_defaults() {
    let cluster = applied(
        r#"{"connectionPool": {"tcp": {"maxConnections": 1},
            "http": {"http1MaxPendingRequests": 0, "maxRetries": 4}}}"#,
    );
    let thresholds = &cluster.circuit_breakers.unwrap().thresholds[0];
    assert_eq!(thresholds.max_connections.unwrap().value, 1);
    assert_eq!(
        thresholds.max_pending_requests.unwrap().value,
        u32::MAX,
        "0 is unset"
    );
    assert_eq!(thresholds.max_requests.unwrap().value, u32::MAX);
    assert_eq!(thresholds.max_retries.unwrap().value, 4);
    assert!(cluster.typed_extension_protocol_options.is_empty());
}

#[test]
fn outlier_detectors_are_enforced_only_when_their_threshold_is_positive() {
    let cluster = applied(
        r#"{"outlierDetection": {"consecutive5xxErrors": 0,
            "consecutiveGatewayErrors": 2, "minHealthPercent": 40}}"#,
    );
    let outlier = cluster.outlier_detection.unwrap();
    assert_eq!(outlier.enforcing_consecutive_5xx.unwrap().value, 0);
    assert_eq!(outlier.consecutive_gateway_failure.unwrap().value, 2);
    assert_eq!(
        outlier.enforcing_consecutive_gateway_failure.unwrap().value,
        100
    );
    assert_eq!(outlier.enforcing_success_rate.unwrap().value, 0);
    let panic = cluster.common_lb_config.unwrap().healthy_panic_threshold;
    assert_eq!(panic.unwrap().value, 40.0);
}

#[test]
fn consistent_hash_defaults_to_a_ring_of_envoys_default_size() {
    let cluster = applied(r#"{"loadBalancer": {"consistentHash": {"httpHeaderName": "x-user"}}}"#);
    assert_eq!(cluster.lb_policy, LbPolicy::RingHash as i32);
    let Some(LbConfig::RingHashLbConfig(ring)) = cluster.lb_config else {
        panic!("a ring hash config");
    };
    assert_eq!(ring.minimum_ring_size.unwrap().value, 1024);
    let maglev = applied(
        r#"{"loadBalancer": {"consistentHash": {"httpHeaderName": "x-user",
            "maglev": {"tableSize": 65537}}}}"#,
    );
    assert_eq!(maglev.lb_policy, LbPolicy::Maglev as i32);
}

#[test]
fn an_unset_simple_balancer_is_least_request_as_in_istio() {
    for policy in [
        r#"{"loadBalancer": {}}"#,
        r#"{"loadBalancer": {"simple": "UNSPECIFIED"}}"#,
        r#"{"loadBalancer": {"simple": "LEAST_CONN"}}"#,
    ] {
        assert_eq!(
            applied(policy).lb_policy,
            LbPolicy::LeastRequest as i32,
            "{policy}"
        );
    }
    let round_robin = applied(r#"{"loadBalancer": {"simple": "ROUND_ROBIN"}}"#);
    assert_eq!(round_robin.lb_policy, LbPolicy::RoundRobin as i32);
}

#[test]
fn http2_ports_speak_http2_and_http_ports_only_when_the_rule_says_upgrade() {
    let rule = |policy: &str| rule(&format!(r#"{{"host": "a", "trafficPolicy": {policy}}}"#));
    let upgrade = rule(r#"{"connectionPool": {"http": {"h2UpgradePolicy": "UPGRADE"}}}"#);
    let policy = ClusterPolicy::merged(Some(&upgrade), "", 9080);
    assert!(policy.upgrades_to_http2(Protocol::Http));
    assert!(!policy.upgrades_to_http2(Protocol::Tcp));
    assert!(!policy.upgrades_to_http2(Protocol::Unknown));
    // DEFAULT is the mesh's choice, Istio's DO_NOT_UPGRADE.
    let default = rule(r#"{"connectionPool": {"http": {"h2UpgradePolicy": "DEFAULT"}}}"#);
    let policy = ClusterPolicy::merged(Some(&default), "", 9080);
    assert!(!policy.upgrades_to_http2(Protocol::Http));
    let no_rule = ClusterPolicy::merged(None, "", 9080);
    assert!(no_rule.upgrades_to_http2(Protocol::Grpc));
    assert!(no_rule.upgrades_to_http2(Protocol::Http2));
    assert!(!no_rule.upgrades_to_http2(Protocol::Http));
    assert!(applied("{}").typed_extension_protocol_options.is_empty());
}
