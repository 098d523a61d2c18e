//! `loadBalancer.localityLbSetting`, as Istio's webhook checks it:
//! `distribute` excludes `failover` and `failoverPriority`; each
//! `distribute` entry's weights sum to 100; `failover` names regions, never
//! the same one on both sides; localities are `region/zone/subzone` with
//! `*` allowed only as a whole last segment.

use super::Violations;
use crate::istio::LocalityLbSetting;

pub(super) fn validate(violations: &mut Violations, field: &str, setting: &LocalityLbSetting) {
    if !setting.distribute.is_empty()
        && (!setting.failover.is_empty() || !setting.failover_priority.is_empty())
    {
        violations.push(
            field,
            "can not simultaneously set 'distribute' and 'failover' or 'failoverPriority'",
        );
    }
    for (index, rule) in setting.distribute.iter().enumerate() {
        let rule_field = format!("{field}.distribute[{index}]");
        check_locality(violations, &format!("{rule_field}.from"), &rule.from);
        for (to, weight) in &rule.to {
            check_locality(violations, &format!("{rule_field}.to"), to);
            if *weight == 0 {
                violations.push(format!("{rule_field}.to"), "weight must be positive");
            }
        }
        let total: u64 = rule.to.values().map(|w| u64::from(*w)).sum();
        if total != 100 {
            violations.push(
                format!("{rule_field}.to"),
                format!("total weight {total} != 100"),
            );
        }
    }
    for (index, rule) in setting.failover.iter().enumerate() {
        let rule_field = format!("{field}.failover[{index}]");
        if rule.from == rule.to {
            violations.push(
                rule_field.clone(),
                "locality lb failover settings must specify different regions",
            );
        }
        for (name, region) in [("from", &rule.from), ("to", &rule.to)] {
            if region.is_empty() || region.contains('/') || region.contains('*') {
                violations.push(
                    format!("{rule_field}.{name}"),
                    "locality lb failover only specifies a region",
                );
            }
        }
    }
    for (index, label) in setting.failover_priority.iter().enumerate() {
        let key = label.split_once('=').map_or(label.as_str(), |(key, _)| key);
        if key.trim().is_empty() {
            violations.push(
                format!("{field}.failoverPriority[{index}]"),
                "failoverPriority labels must not be empty",
            );
        }
    }
}

/// `region`, `region/zone` or `region/zone/subzone`, each segment either a
/// name or, as the last one, `*`.
fn check_locality(violations: &mut Violations, field: &str, locality: &str) {
    let segments: Vec<&str> = locality.split('/').collect();
    let wildcard_inside = segments
        .iter()
        .rev()
        .skip(1)
        .any(|segment| segment.contains('*'));
    let bad_segment = segments
        .iter()
        .any(|segment| segment.is_empty() || (segment.contains('*') && *segment != "*"));
    if segments.len() > 3 || wildcard_inside || bad_segment {
        violations.push(
            field,
            format!(
                "locality {locality:?} is not region/zone/subzone with '*' only as the last segment"
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn violations(json: &str) -> Vec<String> {
        let setting: LocalityLbSetting = serde_saphyr::from_str(json).expect("a locality setting");
        let mut violations = Violations::default();
        validate(&mut violations, "lb", &setting);
        violations.0.into_iter().map(|v| v.field).collect()
    }

    #[test]
    fn sound_settings_pass() {
        let distribute = r#"{"distribute": [{"from": "us-west/zone1/*",
            "to": {"us-west/zone1/*": 80, "us-west/zone2/*": 20}}]}"#;
        assert_eq!(violations(distribute), Vec::<String>::new());
        let failover = r#"{"failover": [{"from": "us-east", "to": "eu-west"}],
            "failoverPriority": ["topology.istio.io/network", "env=prod"]}"#;
        assert_eq!(violations(failover), Vec::<String>::new());
    }

    #[test]
    fn istios_webhook_refusals() {
        let both = r#"{"distribute": [{"from": "a/*", "to": {"a/*": 100}}],
            "failover": [{"from": "a", "to": "b"}]}"#;
        assert_eq!(violations(both), ["lb"]);
        let weights = r#"{"distribute": [{"from": "a/*/c", "to": {"a/*": 60, "b": 0}}]}"#;
        assert_eq!(
            violations(weights),
            [
                "lb.distribute[0].from",
                "lb.distribute[0].to",
                "lb.distribute[0].to"
            ]
        );
        let failover = r#"{"failover": [{"from": "a", "to": "a"}, {"from": "a/z", "to": "b"}],
            "failoverPriority": ["=x"]}"#;
        assert_eq!(
            violations(failover),
            [
                "lb.failover[0]",
                "lb.failover[1].from",
                "lb.failoverPriority[0]"
            ]
        );
    }
}
