//! DestinationRule checks, after Istio's `ValidateDestinationRule`.

mod locality;

use std::collections::BTreeSet;

use super::{Violations, is_dns1123_label};
use crate::istio::{
    ClientTlsSettings, ConnectionPoolSettings, ConsistentHashLb, DestinationRule, H2UpgradePolicy,
    LoadBalancerSettings, OutlierDetection, TlsMode, TrafficPolicy,
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
            match cookie.ttl.as_deref() {
                None => {
                    violations.push(format!("{cookie_field}.ttl"), "ttl required for HttpCookie")
                }
                ttl => violations.duration(&format!("{cookie_field}.ttl"), ttl, true),
            }
        }
        validate_hash_algorithm(violations, &format!("{field}.consistentHash"), hash);
    }
    if let Some(setting) = &lb.locality_lb_setting {
        locality::validate(violations, &format!("{field}.localityLbSetting"), setting);
    }
    let warmup = lb.warmup_duration_secs.as_deref();
    violations.duration(&format!("{field}.warmupDurationSecs"), warmup, false);
    if let Some(warmup) = &lb.warmup {
        let duration = warmup.duration.as_deref();
        violations.duration(&format!("{field}.warmup.duration"), duration, false);
    }
}

/// Ring size and Maglev table, as Istio's webhook checks them.
fn validate_hash_algorithm(violations: &mut Violations, field: &str, hash: &ConsistentHashLb) {
    let deprecated_ring = hash.minimum_ring_size.is_some_and(|size| size != 0);
    if deprecated_ring && (hash.ring_hash.is_some() || hash.maglev.is_some()) {
        violations.push(
            field,
            "only one of MinimumRingSize or Maglev/Ringhash can be specified",
        );
    }
    if let Some(maglev) = &hash.maglev {
        match maglev.table_size.unwrap_or(0) {
            0 => violations.push(
                format!("{field}.maglev.tableSize"),
                "tableSize must be set for maglev",
            ),
            size if !is_prime(size) => violations.push(
                format!("{field}.maglev.tableSize"),
                "tableSize must be a prime number for maglev",
            ),
            _ => {}
        }
    }
}

fn is_prime(n: u64) -> bool {
    n >= 2
        && (2..)
            .take_while(|d| d * d <= n)
            .all(|d| !n.is_multiple_of(d))
}

/// Counts Istio's API types as int32 and rejects below zero.
fn non_negative(violations: &mut Violations, field: &str, counts: &[(&str, Option<i32>, &str)]) {
    for (name, value, what) in counts {
        if value.is_some_and(|v| v < 0) {
            violations.push(
                format!("{field}.{name}"),
                format!("{what} must be non-negative"),
            );
        }
    }
}

pub(super) fn validate_connection_pool(
    violations: &mut Violations,
    field: &str,
    pool: &ConnectionPoolSettings,
) {
    if pool.tcp.is_none() && pool.http.is_none() {
        violations.push(field, "connection pool must have at least one field");
    }
    if let Some(tcp) = &pool.tcp {
        let max = [("maxConnections", tcp.max_connections, "max connections")];
        non_negative(violations, &format!("{field}.tcp"), &max);
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
        let http_field = format!("{field}.http");
        let counts = [
            (
                "http1MaxPendingRequests",
                http.http1_max_pending_requests,
                "http1 max pending requests",
            ),
            (
                "http2MaxRequests",
                http.http2_max_requests,
                "http2 max requests",
            ),
            (
                "maxRequestsPerConnection",
                http.max_requests_per_connection,
                "max requests per connection",
            ),
            ("maxRetries", http.max_retries, "max retries"),
            (
                "maxConcurrentStreams",
                http.max_concurrent_streams,
                "max concurrent streams",
            ),
        ];
        non_negative(violations, &http_field, &counts);
        let idle = http.idle_timeout.as_deref();
        violations.duration(&format!("{http_field}.idleTimeout"), idle, false);
        if http.h2_upgrade_policy == Some(H2UpgradePolicy::Upgrade)
            && http.use_client_protocol == Some(true)
        {
            violations.push(
                format!("{http_field}.useClientProtocol"),
                "use client protocol must not be true when H2UpgradePolicy is UPGRADE",
            );
        }
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
    let local_origin = outlier.consecutive_local_origin_failures.unwrap_or(0);
    if !outlier.split_external_local_origin_errors && local_origin > 0 {
        violations.push(
            format!("{field}.consecutiveLocalOriginFailures"),
            "outlier detection consecutive local origin failures is specified, but split external local origin errors is set to false",
        );
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn violated_fields(yaml: &str) -> Vec<String> {
        let rule: DestinationRule = serde_saphyr::from_str(yaml).expect("a DestinationRule spec");
        let mut violations = Violations::default();
        validate(&mut violations, &rule);
        violations.0.into_iter().map(|v| v.field).collect()
    }

    #[test]
    fn a_sound_traffic_policy_passes() {
        let yaml = "host: reviews\ntrafficPolicy:\n  connectionPool:\n    tcp: {maxConnections: 1}\n    http: {http1MaxPendingRequests: 1, maxRequestsPerConnection: 1}\n  outlierDetection: {consecutive5xxErrors: 1, interval: 1s, baseEjectionTime: 3m, maxEjectionPercent: 100}\n  loadBalancer:\n    consistentHash: {httpCookie: {name: user, ttl: 0s}, maglev: {tableSize: 65537}}\n";
        assert_eq!(violated_fields(yaml), Vec::<String>::new());
    }

    #[test]
    fn impossible_values_are_refused_as_istios_webhook_does() {
        let yaml = "host: reviews\ntrafficPolicy:\n  connectionPool:\n    tcp: {maxConnections: -1}\n    http: {maxRetries: -2, h2UpgradePolicy: UPGRADE, useClientProtocol: true}\n  outlierDetection: {consecutiveLocalOriginFailures: 3}\n  loadBalancer:\n    consistentHash: {httpCookie: {name: user}, maglev: {tableSize: 1000}}\nsubsets:\n- name: v1\n  trafficPolicy:\n    connectionPool: {}\n";
        assert_eq!(
            violated_fields(yaml),
            [
                "spec.trafficPolicy.loadBalancer.consistentHash.httpCookie.ttl",
                "spec.trafficPolicy.loadBalancer.consistentHash.maglev.tableSize",
                "spec.trafficPolicy.connectionPool.tcp.maxConnections",
                "spec.trafficPolicy.connectionPool.http.maxRetries",
                "spec.trafficPolicy.connectionPool.http.useClientProtocol",
                "spec.trafficPolicy.outlierDetection.consecutiveLocalOriginFailures",
                "spec.subsets[0].trafficPolicy.connectionPool",
            ]
        );
    }

    #[test]
    fn maglev_tables_must_be_prime() {
        assert!(is_prime(65537) && is_prime(2) && is_prime(251));
        assert!(!is_prime(0) && !is_prime(1) && !is_prime(65536) && !is_prime(1001));
    }
}
