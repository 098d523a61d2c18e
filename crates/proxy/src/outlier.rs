//! Envoy's outlier detection (passive health checking), consecutive-error
//! detectors only: per endpoint, consecutive 5xx responses, consecutive
//! gateway errors (502/503/504) and, when external and local-origin errors
//! are split, consecutive local-origin failures (connect failures, resets,
//! timeouts; unsplit, those count as gateway errors). An endpoint reaching
//! a threshold is ejected at once, unless that would eject more than
//! `max_ejection_percent` of the cluster; it stays out for
//! `base_ejection_time` times its number of ejections (at most
//! `max_ejection_time`) and returns on the next `interval` tick after that.
//! Each tick an endpoint spends back in service lowers its ejection count
//! by one. Ticks are evaluated when the state is read, not by a timer.
//!
//! Success-rate and failure-percentage detection are not implemented:
//! configs that enforce them are rejected.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use envoy_types::pb::envoy::config::cluster::v3 as xds;
use envoy_types::pb::google::protobuf::UInt32Value;

use crate::retry::Outcome;
use crate::unsupported::{Unsupported, reject_if};

/// Envoy's defaults.
const DEFAULT_CONSECUTIVE: u32 = 5;
const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);
const DEFAULT_BASE_EJECTION: Duration = Duration::from_secs(30);
const DEFAULT_MAX_EJECTION: Duration = Duration::from_secs(300);
const DEFAULT_MAX_EJECTION_PERCENT: u32 = 10;

/// One consecutive-error detector: its threshold and the percentage of
/// detections actually enforced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Detector {
    threshold: u32,
    enforcing: u32,
}

impl Detector {
    fn compile(
        threshold: Option<&UInt32Value>,
        enforcing: Option<&UInt32Value>,
        enforcing_default: u32,
    ) -> Detector {
        Detector {
            threshold: threshold.map_or(DEFAULT_CONSECUTIVE, |v| v.value),
            enforcing: enforcing.map_or(enforcing_default, |v| v.value).min(100),
        }
    }

    /// Whether `count` consecutive errors trip the detector this time.
    fn trips(self, count: u32) -> bool {
        self.enforcing > 0
            && self.threshold > 0
            && count >= self.threshold
            && (self.enforcing >= 100 || rand::random_range(0..100) < self.enforcing)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct OutlierConfig {
    consecutive_5xx: Detector,
    consecutive_gateway: Detector,
    /// `Some` when local-origin errors are split from external ones.
    consecutive_local_origin: Option<Detector>,
    interval: Duration,
    base_ejection_time: Duration,
    max_ejection_time: Duration,
    max_ejection_percent: u32,
    always_eject_one_host: bool,
}

fn duration(
    value: Option<&envoy_types::pb::google::protobuf::Duration>,
    default: Duration,
) -> Duration {
    value
        .map(|d| Duration::new(d.seconds.max(0) as u64, d.nanos.max(0) as u32))
        .filter(|d| !d.is_zero())
        .unwrap_or(default)
}

fn enforced(value: Option<&UInt32Value>, default: u32) -> bool {
    value.map_or(default, |v| v.value) > 0
}

impl OutlierConfig {
    pub fn compile(outlier: &xds::OutlierDetection) -> Result<OutlierConfig, Unsupported> {
        reject_if(
            enforced(outlier.enforcing_success_rate.as_ref(), 100),
            "outlier_detection success rate ejection (set enforcing_success_rate to 0)",
        )?;
        reject_if(
            outlier.split_external_local_origin_errors
                && enforced(outlier.enforcing_local_origin_success_rate.as_ref(), 100),
            "outlier_detection local origin success rate ejection",
        )?;
        reject_if(
            enforced(outlier.enforcing_failure_percentage.as_ref(), 0)
                || enforced(
                    outlier.enforcing_failure_percentage_local_origin.as_ref(),
                    0,
                ),
            "outlier_detection failure percentage ejection",
        )?;
        reject_if(
            outlier
                .max_ejection_time_jitter
                .as_ref()
                .is_some_and(|d| d.seconds != 0 || d.nanos != 0),
            "outlier_detection.max_ejection_time_jitter",
        )?;
        reject_if(!outlier.monitors.is_empty(), "outlier_detection.monitors")?;
        reject_if(
            outlier
                .detect_degraded_hosts
                .as_ref()
                .is_some_and(|v| v.value),
            "outlier_detection.detect_degraded_hosts",
        )?;
        let base_ejection_time =
            duration(outlier.base_ejection_time.as_ref(), DEFAULT_BASE_EJECTION);
        Ok(OutlierConfig {
            consecutive_5xx: Detector::compile(
                outlier.consecutive_5xx.as_ref(),
                outlier.enforcing_consecutive_5xx.as_ref(),
                100,
            ),
            consecutive_gateway: Detector::compile(
                outlier.consecutive_gateway_failure.as_ref(),
                outlier.enforcing_consecutive_gateway_failure.as_ref(),
                0,
            ),
            consecutive_local_origin: outlier.split_external_local_origin_errors.then(|| {
                Detector::compile(
                    outlier.consecutive_local_origin_failure.as_ref(),
                    outlier.enforcing_consecutive_local_origin_failure.as_ref(),
                    100,
                )
            }),
            interval: duration(outlier.interval.as_ref(), DEFAULT_INTERVAL),
            base_ejection_time,
            // Envoy never ejects for less than the base time.
            max_ejection_time: duration(outlier.max_ejection_time.as_ref(), DEFAULT_MAX_EJECTION)
                .max(base_ejection_time),
            max_ejection_percent: outlier
                .max_ejection_percent
                .as_ref()
                .map_or(DEFAULT_MAX_EJECTION_PERCENT, |v| v.value.min(100)),
            always_eject_one_host: outlier
                .always_eject_one_host
                .as_ref()
                .is_some_and(|v| v.value),
        })
    }
}

#[derive(Debug)]
struct HostState {
    consecutive_5xx: u32,
    consecutive_gateway: u32,
    consecutive_local_origin: u32,
    /// Ejections not yet forgiven: the multiplier of the ejection time.
    ejections: u32,
    ejected_at: Option<Instant>,
    /// When the endpoint was last (re)admitted; ticks since then forgive
    /// one ejection each.
    in_service_since: Instant,
}

impl HostState {
    fn new(now: Instant) -> HostState {
        HostState {
            consecutive_5xx: 0,
            consecutive_gateway: 0,
            consecutive_local_origin: 0,
            ejections: 0,
            ejected_at: None,
            in_service_since: now,
        }
    }
}

/// The outlier state of one cluster's endpoints.
#[derive(Debug)]
pub struct OutlierDetector {
    config: OutlierConfig,
    /// The interval ticks count from here.
    started: Instant,
    hosts: Mutex<HashMap<SocketAddr, HostState>>,
    /// Lets selection skip the lock while nothing is ejected.
    ejected: AtomicUsize,
}

/// How an attempt ended, as outlier detection classifies it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Classified {
    Success,
    Error5xx { gateway: bool },
    LocalOrigin,
}

fn classify(outcome: Outcome) -> Classified {
    match outcome {
        Outcome::Response { status, .. } if status >= 500 => Classified::Error5xx {
            gateway: matches!(status, 502..=504),
        },
        Outcome::Response { .. } => Classified::Success,
        Outcome::ConnectFailure
        | Outcome::RefusedStream
        | Outcome::Reset
        | Outcome::PerTryTimeout => Classified::LocalOrigin,
    }
}

impl OutlierDetector {
    pub fn new(config: OutlierConfig) -> OutlierDetector {
        OutlierDetector {
            config,
            started: Instant::now(),
            hosts: Mutex::default(),
            ejected: AtomicUsize::new(0),
        }
    }

    /// Keeps the state of `endpoints` only (called when endpoints change).
    pub fn retain(&self, endpoints: &[SocketAddr]) {
        let mut hosts = self.lock();
        hosts.retain(|address, _| endpoints.contains(address));
        let ejected = hosts.values().filter(|h| h.ejected_at.is_some()).count();
        self.ejected.store(ejected, Ordering::Release);
    }

    /// Records how an attempt to `endpoint` ended, out of `cluster_size`
    /// endpoints; ejects it when a detector trips.
    pub fn record(&self, endpoint: SocketAddr, outcome: Outcome, cluster_size: usize) {
        self.record_at(endpoint, outcome, cluster_size, Instant::now());
    }

    fn record_at(&self, endpoint: SocketAddr, outcome: Outcome, cluster_size: usize, now: Instant) {
        let mut hosts = self.lock();
        self.refresh(&mut hosts, now);
        let host = hosts.entry(endpoint).or_insert_with(|| HostState::new(now));
        if host.ejected_at.is_some() {
            return; // a late answer from an endpoint already out
        }
        if !self.counts_and_trips(host, classify(outcome)) {
            return;
        }
        let ejected = self.ejected.load(Ordering::Acquire);
        // At most max_ejection_percent of the endpoints out, exactly.
        let within_limit =
            100 * (ejected + 1) <= self.config.max_ejection_percent as usize * cluster_size;
        let allowed = within_limit || (self.config.always_eject_one_host && ejected == 0);
        if allowed {
            let forgiven = self.ticks_between(host.in_service_since, now);
            host.ejections = host.ejections.saturating_sub(forgiven) + 1;
            host.ejected_at = Some(now);
            (
                host.consecutive_5xx,
                host.consecutive_gateway,
                host.consecutive_local_origin,
            ) = (0, 0, 0);
            self.ejected.fetch_add(1, Ordering::AcqRel);
            tracing::info!(%endpoint, ejections = host.ejections, "outlier detection: endpoint ejected");
        }
    }

    /// Updates the counters; true when a detector trips.
    fn counts_and_trips(&self, host: &mut HostState, result: Classified) -> bool {
        let config = &self.config;
        match (result, config.consecutive_local_origin) {
            (Classified::Success, _) => {
                (
                    host.consecutive_5xx,
                    host.consecutive_gateway,
                    host.consecutive_local_origin,
                ) = (0, 0, 0);
                false
            }
            (Classified::LocalOrigin, Some(detector)) => {
                host.consecutive_local_origin += 1;
                detector.trips(host.consecutive_local_origin)
            }
            (Classified::LocalOrigin, None) => self.count_5xx(host, true),
            (Classified::Error5xx { gateway }, split) => {
                if split.is_some() {
                    // The upstream answered: the connection works.
                    host.consecutive_local_origin = 0;
                }
                self.count_5xx(host, gateway)
            }
        }
    }

    fn count_5xx(&self, host: &mut HostState, gateway: bool) -> bool {
        host.consecutive_5xx += 1;
        if gateway {
            host.consecutive_gateway += 1;
        } else {
            host.consecutive_gateway = 0;
        }
        self.config.consecutive_5xx.trips(host.consecutive_5xx)
            || (gateway
                && self
                    .config
                    .consecutive_gateway
                    .trips(host.consecutive_gateway))
    }

    /// The endpoints ejected now.
    pub fn ejected(&self) -> Vec<SocketAddr> {
        self.ejected_at(Instant::now())
    }

    fn ejected_at(&self, now: Instant) -> Vec<SocketAddr> {
        if self.ejected.load(Ordering::Acquire) == 0 {
            return Vec::new();
        }
        let mut hosts = self.lock();
        self.refresh(&mut hosts, now);
        hosts
            .iter()
            .filter(|(_, h)| h.ejected_at.is_some())
            .map(|(address, _)| *address)
            .collect()
    }

    /// Returns endpoints whose ejection ended by the last tick.
    fn refresh(&self, hosts: &mut HashMap<SocketAddr, HostState>, now: Instant) {
        for host in hosts.values_mut() {
            let Some(ejected_at) = host.ejected_at else {
                continue;
            };
            let ejection = self
                .config
                .base_ejection_time
                .saturating_mul(host.ejections)
                .min(self.config.max_ejection_time);
            let back = self.first_tick_at_or_after(ejected_at + ejection);
            if back <= now {
                host.ejected_at = None;
                host.in_service_since = back;
                self.ejected.fetch_sub(1, Ordering::AcqRel);
            }
        }
    }

    fn first_tick_at_or_after(&self, at: Instant) -> Instant {
        let interval = self.config.interval.as_nanos().max(1);
        let since = at.saturating_duration_since(self.started).as_nanos();
        let ticks = since.div_ceil(interval);
        self.started + Duration::from_nanos(u64::try_from(ticks * interval).unwrap_or(u64::MAX))
    }

    fn ticks_between(&self, from: Instant, to: Instant) -> u32 {
        let interval = self.config.interval.as_nanos().max(1);
        let ticks = to.saturating_duration_since(from).as_nanos() / interval;
        u32::try_from(ticks).unwrap_or(u32::MAX)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SocketAddr, HostState>> {
        // A panic while holding the lock leaves counters, never broken state.
        self.hosts
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests;
