use std::collections::BTreeMap;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;

use super::*;

fn policy(setting: &str, failover: bool) -> LocalityLb {
    let setting: Option<LocalityLbSetting> =
        (!setting.is_empty()).then(|| serde_json::from_str(setting).expect("a locality setting"));
    LocalityLb {
        enabled: setting.as_ref().is_none_or(|s| s.enabled != Some(false)),
        setting,
        failover,
    }
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Priorities of endpoints in `localities` for a proxy in region1/zone1.
fn priorities(policy: &LocalityLb, localities: &[&str]) -> Vec<u32> {
    let proxy = Locality::parse("region1/zone1");
    let none = BTreeMap::new();
    localities
        .iter()
        .map(|l| policy.priority(&proxy, &none, &Locality::parse(l), &none))
        .collect()
}

const TASK_LOCALITIES: [&str; 5] = [
    "region1/zone1",
    "region1/zone1/rack9",
    "region1/zone2",
    "region2/zone3",
    "region3/zone4",
];

#[test]
fn istios_failover_task_priorities() {
    let task = policy(
        r#"{"failover": [{"from": "region1", "to": "region2"}]}"#,
        true,
    );
    assert_eq!(priorities(&task, &TASK_LOCALITIES), [0, 1, 2, 3, 4]);
    // Without failover rules every other region is equally far.
    let default = policy("", true);
    assert_eq!(priorities(&default, &TASK_LOCALITIES), [0, 1, 2, 4, 4]);
}

#[test]
fn failover_needs_outlier_detection_and_can_be_disabled() {
    assert_eq!(
        priorities(&policy("", false), &TASK_LOCALITIES),
        [0, 0, 0, 0, 0]
    );
    let disabled = policy(r#"{"enabled": false}"#, true);
    assert_eq!(priorities(&disabled, &TASK_LOCALITIES), [0, 0, 0, 0, 0]);
    let mut cluster = Cluster::default();
    policy(r#"{"failover": [{"from": "a", "to": "b"}]}"#, false).apply(&mut cluster);
    assert_eq!(
        cluster.common_lb_config, None,
        "no failover without outliers"
    );
}

#[test]
fn failover_priority_orders_by_leading_matching_labels() {
    let rule = policy(
        r#"{"failoverPriority": ["topology.kubernetes.io/region", "env", "tier=gold"]}"#,
        true,
    );
    let proxy = Locality::parse("region1/zone1");
    let proxy_labels = labels(&[("env", "prod"), ("tier", "silver")]);
    let priority = |locality: &str, endpoint: &[(&str, &str)]| {
        rule.priority(
            &proxy,
            &proxy_labels,
            &Locality::parse(locality),
            &labels(endpoint),
        )
    };
    assert_eq!(
        priority("region1/z9", &[("env", "prod"), ("tier", "gold")]),
        0
    );
    assert_eq!(
        priority("region1/z9", &[("env", "prod"), ("tier", "silver")]),
        1
    );
    assert_eq!(
        priority("region1/z9", &[("env", "dev"), ("tier", "gold")]),
        2
    );
    assert_eq!(
        priority("region2/z1", &[("env", "prod"), ("tier", "gold")]),
        3
    );
    let mut cluster = Cluster::default();
    rule.apply(&mut cluster);
    assert!(matches!(
        cluster.common_lb_config.unwrap().locality_config_specifier,
        Some(LocalityConfigSpecifier::LocalityWeightedLbConfig(_))
    ));
}

#[test]
fn distribute_splits_each_weight_over_the_localities_it_matches() {
    let rule = policy(
        r#"{"distribute": [
            {"from": "region9/*", "to": {"region1/*": 100}},
            {"from": "region1/zone1/*", "to": {"region1/zone1/*": 80, "region1/zone2/*": 20}}
        ]}"#,
        true,
    );
    let endpoints: BTreeMap<String, u32> = [
        ("region1/zone1/a".to_string(), 1),
        ("region1/zone1/b".to_string(), 3),
        ("region1/zone2".to_string(), 2),
        ("region2/zone3".to_string(), 5),
    ]
    .into();
    let weights = rule
        .distributed_weights(&Locality::parse("region1/zone1/a"), &endpoints)
        .expect("the second rule applies");
    let expected: BTreeMap<String, u32> = [
        ("region1/zone1/a".to_string(), 20),
        ("region1/zone1/b".to_string(), 60),
        ("region1/zone2".to_string(), 20),
    ]
    .into();
    assert_eq!(weights, expected, "region2 gets no traffic");
    assert_eq!(
        rule.distributed_weights(&Locality::parse("region5/zone1"), &endpoints),
        None
    );
    assert!(priorities(&rule, &TASK_LOCALITIES).iter().all(|p| *p == 0));
}
