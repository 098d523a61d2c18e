//! Route retry policies (`RouteAction.retry_policy`): which outcomes are
//! retried (Envoy's `retry_on` conditions), how many times, how long each
//! attempt may take, and the jittered exponential backoff between them.
//!
//! Retries never amplify an outage: besides the per-request limit, each
//! cluster has a retry budget, Envoy's `retry_budget` with its defaults —
//! at most 20% of the cluster's active requests may be retries, but at
//! least 3 retries may always run concurrently. (Envoy's plain default is
//! 3 concurrent retries; Istio lifts that to unlimited, which lets a
//! failing service triple its load. The budget scales with traffic and
//! still bounds the amplification.) A retry the budget refuses ends the
//! request with the last response and response flag UO.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use envoy_types::pb::envoy::config::route::v3 as xds;
use envoy_types::pb::envoy::config::route::v3::retry_policy::retry_host_predicate::ConfigType;
use envoy_types::pb::envoy::extensions::retry::host::previous_hosts::v3::PreviousHostsPredicate;
use prost::Name;

use crate::unsupported::{Unsupported, reject_if};

const PREVIOUS_HOSTS: &str = "envoy.retry_host_predicates.previous_hosts";
/// Envoy's default base backoff; the maximum defaults to 10 times the base.
const DEFAULT_BASE_BACKOFF: Duration = Duration::from_millis(25);
const BUDGET_PERCENT: usize = 20;
const MIN_RETRY_CONCURRENCY: usize = 3;

/// How one attempt ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Response {
        status: u16,
        /// `grpc-status` of a trailers-only gRPC response.
        grpc_status: Option<u32>,
        rate_limited: bool,
    },
    ConnectFailure,
    RefusedStream,
    /// Disconnect or reset after connecting.
    Reset,
    PerTryTimeout,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Condition {
    FiveXx,
    GatewayError,
    Reset,
    ConnectFailure,
    Retriable4xx,
    RefusedStream,
    RetriableStatusCodes,
    EnvoyRateLimited,
    Grpc(u32),
}

#[derive(Debug)]
pub struct RetryPolicy {
    pub num_retries: u32,
    conditions: Vec<Condition>,
    retriable_status_codes: Vec<u16>,
    pub per_try_timeout: Option<Duration>,
    base_backoff: Duration,
    max_backoff: Duration,
    /// Attempts to find an endpoint not tried before (previous_hosts).
    pub host_selection_attempts: u32,
}

impl RetryPolicy {
    pub fn compile(policy: &xds::RetryPolicy) -> Result<RetryPolicy, Unsupported> {
        reject_if(
            policy.retry_priority.is_some(),
            "retry_policy.retry_priority",
        )?;
        reject_if(
            !policy.retry_options_predicates.is_empty(),
            "retry_policy.retry_options_predicates",
        )?;
        reject_if(
            policy.rate_limited_retry_back_off.is_some(),
            "retry_policy.rate_limited_retry_back_off",
        )?;
        reject_if(
            !policy.retriable_headers.is_empty(),
            "retry_policy.retriable_headers",
        )?;
        reject_if(
            !policy.retriable_request_headers.is_empty(),
            "retry_policy.retriable_request_headers",
        )?;
        reject_if(
            policy.per_try_idle_timeout.is_some(),
            "retry_policy.per_try_idle_timeout",
        )?;
        let avoid_previous_hosts = previous_hosts(policy)?;
        let conditions = policy
            .retry_on
            .split(',')
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(condition)
            .collect::<Result<Vec<_>, _>>()?;
        let retriable_status_codes = policy
            .retriable_status_codes
            .iter()
            .map(|code| u16::try_from(*code).map_err(|_| Unsupported("retriable_status_codes")))
            .collect::<Result<_, _>>()?;
        let (base_backoff, max_backoff) = backoff(policy.retry_back_off.as_ref())?;
        Ok(RetryPolicy {
            num_retries: policy.num_retries.as_ref().map_or(1, |n| n.value),
            conditions,
            retriable_status_codes,
            per_try_timeout: policy
                .per_try_timeout
                .as_ref()
                .map(duration)
                .filter(|d| !d.is_zero()),
            base_backoff,
            max_backoff,
            host_selection_attempts: if avoid_previous_hosts {
                u32::try_from(policy.host_selection_retry_max_attempts.max(1)).unwrap_or(1)
            } else {
                1
            },
        })
    }

    pub fn should_retry(&self, outcome: Outcome) -> bool {
        self.conditions.iter().any(|c| self.matches(*c, outcome))
    }

    fn matches(&self, condition: Condition, outcome: Outcome) -> bool {
        use Condition as C;
        match outcome {
            Outcome::Response {
                status,
                grpc_status,
                rate_limited,
            } => match condition {
                C::FiveXx => status >= 500,
                C::GatewayError => matches!(status, 502..=504),
                C::Retriable4xx => status == 409,
                C::RetriableStatusCodes => self.retriable_status_codes.contains(&status),
                C::EnvoyRateLimited => rate_limited,
                C::Grpc(code) => grpc_status == Some(code),
                C::Reset | C::ConnectFailure | C::RefusedStream => false,
            },
            // Envoy counts a per-try timeout as a gateway error (504).
            Outcome::PerTryTimeout => matches!(condition, C::FiveXx | C::GatewayError | C::Reset),
            Outcome::ConnectFailure => matches!(
                condition,
                C::FiveXx | C::GatewayError | C::Reset | C::ConnectFailure
            ),
            Outcome::RefusedStream => matches!(
                condition,
                C::FiveXx | C::GatewayError | C::Reset | C::RefusedStream
            ),
            Outcome::Reset => matches!(condition, C::FiveXx | C::GatewayError | C::Reset),
        }
    }

    /// Envoy's fully jittered exponential backoff before retry number
    /// `retry` (1-based): uniform in [0, base * 2^(retry-1)], capped.
    pub fn backoff(&self, retry: u32) -> Duration {
        let ceiling = self
            .base_backoff
            .saturating_mul(1u32 << (retry.saturating_sub(1)).min(16))
            .min(self.max_backoff);
        let millis = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(rand::random_range(0..=millis))
    }
}

fn condition(name: &str) -> Result<Condition, Unsupported> {
    Ok(match name {
        "5xx" => Condition::FiveXx,
        "gateway-error" => Condition::GatewayError,
        "reset" => Condition::Reset,
        "connect-failure" => Condition::ConnectFailure,
        "retriable-4xx" => Condition::Retriable4xx,
        "refused-stream" => Condition::RefusedStream,
        "retriable-status-codes" => Condition::RetriableStatusCodes,
        "envoy-ratelimited" => Condition::EnvoyRateLimited,
        "cancelled" => Condition::Grpc(1),
        "deadline-exceeded" => Condition::Grpc(4),
        "resource-exhausted" => Condition::Grpc(8),
        "internal" => Condition::Grpc(13),
        "unavailable" => Condition::Grpc(14),
        _ => return Err(Unsupported("retry_on condition")),
    })
}

fn previous_hosts(policy: &xds::RetryPolicy) -> Result<bool, Unsupported> {
    for predicate in &policy.retry_host_predicate {
        let typed = match &predicate.config_type {
            Some(ConfigType::TypedConfig(any)) => {
                any.type_url == PreviousHostsPredicate::type_url()
            }
            None => true,
        };
        reject_if(
            predicate.name != PREVIOUS_HOSTS || !typed,
            "retry host predicate other than previous_hosts",
        )?;
    }
    Ok(!policy.retry_host_predicate.is_empty())
}

fn backoff(
    backoff: Option<&xds::retry_policy::RetryBackOff>,
) -> Result<(Duration, Duration), Unsupported> {
    let base = backoff
        .and_then(|b| b.base_interval.as_ref())
        .map(duration)
        .filter(|d| !d.is_zero())
        .unwrap_or(DEFAULT_BASE_BACKOFF);
    let max = backoff
        .and_then(|b| b.max_interval.as_ref())
        .map(duration)
        .unwrap_or(base * 10);
    reject_if(
        max < base,
        "retry_back_off.max_interval below base_interval",
    )?;
    Ok((base, max))
}

fn duration(d: &envoy_types::pb::google::protobuf::Duration) -> Duration {
    Duration::new(d.seconds.max(0) as u64, d.nanos.max(0) as u32)
}

/// A cluster's retry budget (see the module docs).
#[derive(Debug, Default)]
pub struct RetryBudget {
    active_requests: AtomicUsize,
    active_retries: AtomicUsize,
}

/// Held while a request (or a retry) is in flight; releases on drop.
#[must_use]
pub struct InFlight<'a>(&'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl RetryBudget {
    pub fn request(&self) -> InFlight<'_> {
        self.active_requests.fetch_add(1, Ordering::Relaxed);
        InFlight(&self.active_requests)
    }

    /// A retry slot, or `None` when the budget is spent.
    pub fn retry(&self) -> Option<InFlight<'_>> {
        let active = self.active_requests.load(Ordering::Relaxed);
        let allowed = (active * BUDGET_PERCENT / 100).max(MIN_RETRY_CONCURRENCY);
        self.active_retries
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |retries| {
                (retries < allowed).then_some(retries + 1)
            })
            .ok()
            .map(|_| InFlight(&self.active_retries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::google::protobuf::UInt32Value;

    fn policy(retry_on: &str, codes: Vec<u32>) -> RetryPolicy {
        RetryPolicy::compile(&xds::RetryPolicy {
            retry_on: retry_on.into(),
            num_retries: Some(UInt32Value { value: 2 }),
            retriable_status_codes: codes,
            ..Default::default()
        })
        .unwrap()
    }

    fn status(status: u16) -> Outcome {
        Outcome::Response {
            status,
            grpc_status: None,
            rate_limited: false,
        }
    }

    fn grpc(code: u32) -> Outcome {
        Outcome::Response {
            status: 200,
            grpc_status: Some(code),
            rate_limited: false,
        }
    }

    #[test]
    fn each_condition_retries_what_envoy_documents() {
        use Outcome::*;
        let table: Vec<(&str, Vec<Outcome>, Vec<Outcome>)> = vec![
            (
                "5xx",
                vec![
                    status(500),
                    status(503),
                    ConnectFailure,
                    Reset,
                    PerTryTimeout,
                    RefusedStream,
                ],
                vec![status(404), status(200)],
            ),
            (
                "gateway-error",
                vec![status(502), status(504), ConnectFailure, PerTryTimeout],
                vec![status(500), status(409)],
            ),
            (
                "reset",
                vec![Reset, ConnectFailure, PerTryTimeout],
                vec![status(503)],
            ),
            (
                "connect-failure",
                vec![ConnectFailure],
                vec![Reset, status(503), PerTryTimeout],
            ),
            (
                "retriable-4xx",
                vec![status(409)],
                vec![status(404), status(500)],
            ),
            (
                "refused-stream",
                vec![RefusedStream],
                vec![Reset, status(503)],
            ),
            (
                "retriable-status-codes",
                vec![status(503), status(418)],
                vec![status(500)],
            ),
            ("cancelled", vec![grpc(1)], vec![grpc(14), status(503)]),
            ("deadline-exceeded", vec![grpc(4)], vec![grpc(1)]),
            ("internal", vec![grpc(13)], vec![grpc(14)]),
            ("resource-exhausted", vec![grpc(8)], vec![grpc(13)]),
            ("unavailable", vec![grpc(14)], vec![grpc(4), status(503)]),
        ];
        for (retry_on, retried, not_retried) in table {
            let policy = policy(retry_on, vec![503, 418]);
            for outcome in retried {
                assert!(
                    policy.should_retry(outcome),
                    "{retry_on} must retry {outcome:?}"
                );
            }
            for outcome in not_retried {
                assert!(
                    !policy.should_retry(outcome),
                    "{retry_on} must not retry {outcome:?}"
                );
            }
        }
    }

    #[test]
    fn unknown_conditions_and_predicates_are_refused() {
        let unknown = xds::RetryPolicy {
            retry_on: "5xx,retriable-headers".into(),
            ..Default::default()
        };
        assert_eq!(
            RetryPolicy::compile(&unknown).unwrap_err(),
            Unsupported("retry_on condition")
        );
        let canary = xds::RetryPolicy {
            retry_on: "5xx".into(),
            retry_host_predicate: vec![xds::retry_policy::RetryHostPredicate {
                name: "envoy.retry_host_predicates.omit_canary_hosts".into(),
                config_type: None,
            }],
            ..Default::default()
        };
        assert!(RetryPolicy::compile(&canary).is_err());
    }

    #[test]
    fn backoff_is_jittered_exponential_and_capped_at_ten_times_the_base() {
        let policy = policy("5xx", vec![]);
        for _ in 0..200 {
            assert!(policy.backoff(1) <= Duration::from_millis(25));
            assert!(policy.backoff(2) <= Duration::from_millis(50));
            assert!(policy.backoff(20) <= Duration::from_millis(250));
        }
        let spread: std::collections::HashSet<_> = (0..200).map(|_| policy.backoff(3)).collect();
        assert!(spread.len() > 10, "backoff is jittered");
    }

    #[test]
    fn budget_allows_three_retries_or_a_fifth_of_active_requests() {
        let budget = RetryBudget::default();
        let requests: Vec<_> = (0..10).map(|_| budget.request()).collect();
        let mut retries: Vec<_> = (0..3)
            .map(|_| budget.retry().expect("minimum concurrency"))
            .collect();
        assert!(
            budget.retry().is_none(),
            "10 requests allow 3 concurrent retries"
        );
        retries.pop();
        retries.push(budget.retry().expect("a finished retry frees its slot"));
        let more: Vec<_> = (0..40).map(|_| budget.request()).collect();
        let extra: Vec<_> = std::iter::from_fn(|| budget.retry()).take(100).collect();
        assert_eq!(extra.len(), 10 - 3, "50 active requests allow 10 retries");
        drop((requests, more, retries));
    }
}
