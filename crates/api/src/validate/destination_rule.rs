//! DestinationRule checks, after Istio's `ValidateDestinationRule`.

use std::collections::BTreeSet;

use super::{Violations, is_dns1123_label};
use crate::istio::{
    ClientTlsSettings, ConnectionPoolSettings, DestinationRule, LoadBalancerSettings,
    OutlierDetection, TlsMode, TrafficPolicy,
};

pub(super) fn validate(violations: &mut Violations, rule: &DestinationRule) {
    if rule.host.is_empty() {
        violations.push(
            "spec.host",
            "host must be set: empty domain name not allowed",
        );
    }
    if let Some(policy) = &rule.traffic_policy {
        validate_traffic_policy(violations, "spec.trafficPolicy", policy);
    }
    let mut names = BTreeSet::new();
    for (index, subset) in rule.subsets.iter().enumerate() {
        let field = format!("spec.subsets[{index}]");
        if subset.name.is_empty() {
            violations.push(format!("{field}.name"), "subset name cannot be empty");
        } else if !is_dns1123_label(&subset.name) {
            violations.push(
                format!("{field}.name"),
                format!("subset name is invalid: {}", subset.name),
            );
        } else if !names.insert(subset.name.as_str()) {
            violations.push(
                format!("{field}.name"),
                format!("duplicate subset names: {}", subset.name),
            );
        }
        if let Some(policy) = &subset.traffic_policy {
            validate_traffic_policy(violations, &format!("{field}.trafficPolicy"), policy);
        }
    }
}

fn validate_traffic_policy(violations: &mut Violations, field: &str, policy: &TrafficPolicy) {
    validate_port_policy(
        violations,
        field,
        policy.load_balancer.as_ref(),
        policy.connection_pool.as_ref(),
        policy.outlier_detection.as_ref(),
        policy.tls.as_ref(),
    );
    for (index, port_policy) in policy.port_level_settings.iter().enumerate() {
        let port_field = format!("{field}.portLevelSettings[{index}]");
        match port_policy.port {
            None => violations.push(format!("{port_field}.port"), "port must be set"),
            Some(port) => violations.port(&format!("{port_field}.port.number"), Some(port.number)),
        }
        validate_port_policy(
            violations,
            &port_field,
            port_policy.load_balancer.as_ref(),
            port_policy.connection_pool.as_ref(),
            port_policy.outlier_detection.as_ref(),
            port_policy.tls.as_ref(),
        );
    }
}

/// The settings a traffic policy and a port-level policy have in common.
fn validate_port_policy(
    violations: &mut Violations,
    field: &str,
    load_balancer: Option<&LoadBalancerSettings>,
    connection_pool: Option<&ConnectionPoolSettings>,
    outlier_detection: Option<&OutlierDetection>,
    tls: Option<&ClientTlsSettings>,
) {
    if let Some(load_balancer) = load_balancer {
        validate_load_balancer(violations, &format!("{field}.loadBalancer"), load_balancer);
    }
    if let Some(pool) = connection_pool {
        validate_connection_pool(violations, &format!("{field}.connectionPool"), pool);
    }
    if let Some(outlier) = outlier_detection {
        validate_outlier_detection(violations, &format!("{field}.outlierDetection"), outlier);
    }
    if let Some(tls) = tls {
        validate_tls(violations, &format!("{field}.tls"), tls);
    }
}

fn validate_load_balancer(violations: &mut Violations, field: &str, lb: &LoadBalancerSettings) {
    if lb.simple.is_some() && lb.consistent_hash.is_some() {
        violations.push(field, "only one of simple or consistentHash may be set");
    }
    if let Some(hash) = &lb.consistent_hash {
        let keys = [
            hash.http_header_name.is_some(),
            hash.http_cookie.is_some(),
            hash.use_source_ip.is_some(),
            hash.http_query_parameter_name.is_some(),
        ];
        if keys.iter().filter(|set| **set).count() > 1 {
            violations.push(
                format!("{field}.consistentHash"),
                "only one of httpHeaderName, httpCookie, useSourceIp or httpQueryParameterName may be set",
            );
        }
        if hash.ring_hash.is_some() && hash.maglev.is_some() {
            violations.push(
                format!("{field}.consistentHash"),
                "only one of ringHash or maglev may be set",
            );
        }
        if let Some(cookie) = &hash.http_cookie {
            let cookie_field = format!("{field}.consistentHash.httpCookie");
            if cookie.name.is_empty() {
                violations.push(
                    format!("{cookie_field}.name"),
                    "name required for HttpCookie",
                );
            }
            violations.duration(&format!("{cookie_field}.ttl"), cookie.ttl.as_deref(), true);
        }
    }
    let warmup = lb.warmup_duration_secs.as_deref();
    violations.duration(&format!("{field}.warmupDurationSecs"), warmup, false);
    if let Some(warmup) = &lb.warmup {
        let duration = warmup.duration.as_deref();
        violations.duration(&format!("{field}.warmup.duration"), duration, false);
    }
}

pub(super) fn validate_connection_pool(
    violations: &mut Violations,
    field: &str,
    pool: &ConnectionPoolSettings,
) {
    if let Some(tcp) = &pool.tcp {
        let tcp_field = format!("{field}.tcp");
        let durations = [
            ("connectTimeout", &tcp.connect_timeout),
            ("maxConnectionDuration", &tcp.max_connection_duration),
            ("idleTimeout", &tcp.idle_timeout),
        ];
        for (name, value) in durations {
            violations.duration(&format!("{tcp_field}.{name}"), value.as_deref(), false);
        }
        if let Some(keepalive) = &tcp.tcp_keepalive {
            let keepalive_field = format!("{tcp_field}.tcpKeepalive");
            violations.duration(
                &format!("{keepalive_field}.time"),
                keepalive.time.as_deref(),
                false,
            );
            let interval = keepalive.interval.as_deref();
            violations.duration(&format!("{keepalive_field}.interval"), interval, false);
        }
    }
    if let Some(http) = &pool.http {
        let idle = http.idle_timeout.as_deref();
        violations.duration(&format!("{field}.http.idleTimeout"), idle, false);
    }
}

fn validate_outlier_detection(
    violations: &mut Violations,
    field: &str,
    outlier: &OutlierDetection,
) {
    violations.duration(
        &format!("{field}.interval"),
        outlier.interval.as_deref(),
        false,
    );
    let base = outlier.base_ejection_time.as_deref();
    violations.duration(&format!("{field}.baseEjectionTime"), base, false);
    let percents = [
        ("maxEjectionPercent", outlier.max_ejection_percent),
        ("minHealthPercent", outlier.min_health_percent),
    ];
    for (name, value) in percents {
        if let Some(value) = value.filter(|v| !(0..=100).contains(v)) {
            violations.push(
                format!("{field}.{name}"),
                format!("percentage {value} is not in range 0..100"),
            );
        }
    }
}

fn validate_tls(violations: &mut Violations, field: &str, tls: &ClientTlsSettings) {
    let uses_credential = tls
        .credential_name
        .as_deref()
        .is_some_and(|name| !name.is_empty());
    if tls.mode == TlsMode::Mutual && !uses_credential {
        if tls.client_certificate.is_none() {
            violations.push(
                format!("{field}.clientCertificate"),
                "client certificate required for mutual tls",
            );
        }
        if tls.private_key.is_none() {
            violations.push(
                format!("{field}.privateKey"),
                "private key required for mutual tls",
            );
        }
    }
}
