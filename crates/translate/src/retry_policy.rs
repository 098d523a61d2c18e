//! Istio's retry policy for a route: the rule's `retries`, or Istio's
//! default when it has none (2 retries on connect-failure, refused-stream,
//! unavailable, cancelled and 503); `attempts: 0` turns retries off.

use envoy_types::pb::envoy::config::route::v3::{
    RetryPolicy,
    retry_policy::{RetryBackOff, RetryHostPredicate, retry_host_predicate},
};
use envoy_types::pb::envoy::extensions::retry::host::previous_hosts::v3::PreviousHostsPredicate;
use envoy_types::util::pack_any;
use trellis_api::HttpRetry;

use crate::build::{duration, uint32};

const DEFAULT_RETRY_ON: &str =
    "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes";
const DEFAULT_RETRIES: u32 = 2;
const DEFAULT_RETRIABLE_STATUS: u32 = 503;
const RETRIABLE_STATUS_CODES: &str = "retriable-status-codes";
/// Istio's attempts to find an endpoint not tried before, per retry.
const HOST_SELECTION_ATTEMPTS: i64 = 5;

pub fn retry_policy(retries: Option<&HttpRetry>) -> Option<RetryPolicy> {
    let Some(retries) = retries else {
        return Some(base_policy(DEFAULT_RETRIES, true));
    };
    if retries.attempts <= 0 {
        return None;
    }
    let ignore_previous_hosts = retries.retry_ignore_previous_hosts.unwrap_or(true);
    let mut policy = base_policy(retries.attempts as u32, ignore_previous_hosts);
    if let Some(retry_on) = retries.retry_on.as_deref().filter(|r| !r.trim().is_empty()) {
        (policy.retry_on, policy.retriable_status_codes) = parse_retry_on(retry_on);
    }
    policy.per_try_timeout = retries
        .per_try_timeout
        .as_deref()
        .and_then(|t| trellis_api::parse_duration(t).ok())
        .filter(|t| !t.is_zero())
        .map(duration);
    policy.retry_back_off = retries
        .backoff
        .as_deref()
        .and_then(|t| trellis_api::parse_duration(t).ok())
        .filter(|t| !t.is_zero())
        .map(|base| RetryBackOff {
            base_interval: Some(duration(base)),
            ..Default::default()
        });
    // retryRemoteLocalities only matters with locality-aware load
    // balancing, which clusters do not have yet.
    Some(policy)
}

fn base_policy(retries: u32, ignore_previous_hosts: bool) -> RetryPolicy {
    let retry_host_predicate = if ignore_previous_hosts {
        vec![RetryHostPredicate {
            name: "envoy.retry_host_predicates.previous_hosts".into(),
            config_type: Some(retry_host_predicate::ConfigType::TypedConfig(pack_any(
                PreviousHostsPredicate::default(),
            ))),
        }]
    } else {
        Vec::new()
    };
    RetryPolicy {
        retry_on: DEFAULT_RETRY_ON.into(),
        num_retries: Some(uint32(retries)),
        retriable_status_codes: vec![DEFAULT_RETRIABLE_STATUS],
        retry_host_predicate,
        host_selection_retry_max_attempts: HOST_SELECTION_ATTEMPTS,
        ..Default::default()
    }
}

/// Istio's `retryOn`: Envoy condition names, and HTTP status codes, which
/// become `retriable_status_codes` under `retriable-status-codes`.
fn parse_retry_on(retry_on: &str) -> (String, Vec<u32>) {
    let mut conditions: Vec<&str> = Vec::new();
    let mut codes = Vec::new();
    for token in retry_on.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        match token.parse::<u32>() {
            Ok(code) => codes.push(code),
            Err(_) if !conditions.contains(&token) => conditions.push(token),
            Err(_) => {}
        }
    }
    if !codes.is_empty() && !conditions.contains(&RETRIABLE_STATUS_CODES) {
        conditions.push(RETRIABLE_STATUS_CODES);
    }
    (conditions.join(","), codes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn retry(attempts: i32, retry_on: Option<&str>) -> HttpRetry {
        HttpRetry {
            attempts,
            retry_on: retry_on.map(str::to_string),
            ..Default::default()
        }
    }

    #[test]
    fn without_retries_istio_default_applies() {
        let policy = retry_policy(None).unwrap();
        assert_eq!(policy.retry_on, DEFAULT_RETRY_ON);
        assert_eq!(policy.num_retries, Some(uint32(2)));
        assert_eq!(policy.retriable_status_codes, [503]);
        assert_eq!(
            policy.retry_host_predicate[0].name,
            "envoy.retry_host_predicates.previous_hosts"
        );
        assert_eq!(policy.host_selection_retry_max_attempts, 5);
    }

    #[test]
    fn zero_attempts_disable_retries() {
        assert_eq!(retry_policy(Some(&retry(0, Some("5xx")))), None);
    }

    #[test]
    fn status_codes_in_retry_on_become_retriable_status_codes() {
        let table = [
            ("5xx", "5xx", vec![]),
            (
                "gateway-error,503",
                "gateway-error,retriable-status-codes",
                vec![503],
            ),
            ("502, 504", "retriable-status-codes", vec![502, 504]),
            (
                "retriable-status-codes,409,reset,reset",
                "retriable-status-codes,reset",
                vec![409],
            ),
            (
                "cancelled,deadline-exceeded",
                "cancelled,deadline-exceeded",
                vec![],
            ),
        ];
        for (retry_on, conditions, codes) in table {
            let policy = retry_policy(Some(&retry(3, Some(retry_on)))).unwrap();
            assert_eq!(policy.retry_on, conditions, "{retry_on}");
            assert_eq!(policy.retriable_status_codes, codes, "{retry_on}");
            assert_eq!(policy.num_retries, Some(uint32(3)));
        }
    }

    #[test]
    fn per_try_timeout_backoff_and_previous_hosts() {
        let retries = HttpRetry {
            attempts: 4,
            per_try_timeout: Some("250ms".into()),
            backoff: Some("50ms".into()),
            retry_ignore_previous_hosts: Some(false),
            ..Default::default()
        };
        let policy = retry_policy(Some(&retries)).unwrap();
        assert_eq!(
            policy.retry_on, DEFAULT_RETRY_ON,
            "retryOn defaults as Istio's"
        );
        assert_eq!(
            policy.per_try_timeout,
            Some(duration(std::time::Duration::from_millis(250)))
        );
        let backoff = policy.retry_back_off.unwrap();
        assert_eq!(
            backoff.base_interval,
            Some(duration(std::time::Duration::from_millis(50)))
        );
        assert!(policy.retry_host_predicate.is_empty());
    }
}
