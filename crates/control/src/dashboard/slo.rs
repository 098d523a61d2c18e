//! Service level objectives (ServiceLevelObjective resources) measured
//! from the store: the SLI and the error budget left over the history the
//! dashboard keeps, and burn rates over a short and a long window, flagged
//! as Google's SRE workbook alerts on them (multiwindow: both windows must
//! burn, so that a spike that is over, or a slow leak, does not page).
//!
//! Decisions:
//! - The store keeps at most its retention (default 1h), much less than a
//!   compliance window (default 30d): the SLI and the budget are over that
//!   history, as if the window went on as it did, and the report says how
//!   much history that was.
//! - A latency threshold between two histogram bounds is interpolated
//!   linearly inside its bucket (as `histogram_quantile` is); above the
//!   last finite bound, requests past it count as too slow.
//! - Windows not fully covered by history are measured over what there is.

use std::time::Duration;

use serde::Serialize;
use trellis_api::Resource;
use trellis_api::slo::{Objective, ServiceLevelObjective};
use trellis_config::Snapshot;

use super::query::service_totals;
use super::store::{Counters, Store};

pub const SHORT_WINDOW: Duration = Duration::from_secs(300);
pub const LONG_WINDOW: Duration = Duration::from_secs(3600);
/// A 30-day budget gone in 2 days (2% of it per hour).
pub const FAST_BURN: f64 = 14.4;
/// A 30-day budget gone in 5 days.
pub const SLOW_BURN: f64 = 6.0;

/// Requests over one window, and how many missed the objective.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Measured {
    /// How long the window really covered.
    pub seconds: f64,
    pub requests: f64,
    pub bad: f64,
}

impl Measured {
    pub fn of(counters: &Counters, seconds: f64, objective: &Objective) -> Measured {
        let (requests, good) = match *objective {
            Objective::Availability { .. } => (
                counters.requests,
                counters.requests - counters.server_errors,
            ),
            Objective::Latency { threshold, .. } => {
                let observed = counters.buckets.last().map_or(0.0, |b| b.1);
                let threshold_ms = threshold.as_secs_f64() * 1000.0;
                (observed, within(&counters.buckets, threshold_ms).0)
            }
        };
        Measured {
            seconds,
            requests,
            bad: (requests - good).clamp(0.0, requests.max(0.0)),
        }
    }

    /// The share of good requests (0 to 1); `None` without requests.
    pub fn sli(&self) -> Option<f64> {
        (self.requests > 0.0).then(|| 1.0 - self.bad / self.requests)
    }

    /// How fast the budget goes: 1 spends exactly the budget over the
    /// compliance window; `None` without requests.
    pub fn burn_rate(&self, target_percent: f64) -> Option<f64> {
        let allowed = 1.0 - target_percent / 100.0;
        (self.requests > 0.0 && allowed > 0.0).then(|| self.bad / self.requests / allowed)
    }
}

/// Requests answered within `threshold_ms`, from cumulative buckets, and
/// whether the threshold fell on a bucket bound (else it is interpolated).
pub fn within(buckets: &[(f64, f64)], threshold_ms: f64) -> (f64, bool) {
    let mut lower = (0.0, 0.0);
    for &(bound, count) in buckets {
        if bound >= threshold_ms {
            if bound.is_infinite() {
                return (lower.1, false);
            }
            if bound == threshold_ms {
                return (count, true);
            }
            let fraction = (threshold_ms - lower.0) / (bound - lower.0);
            return (lower.1 + (count - lower.1) * fraction, false);
        }
        lower = (bound, count);
    }
    (lower.1, true)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// The service is not in the registry.
    UnknownService,
    /// No requests in the history kept.
    NoData,
    FastBurn,
    SlowBurn,
    /// Not burning fast now, but the history spent the whole budget.
    Exhausted,
    Ok,
}

pub fn status(history: &Measured, short: &Measured, long: &Measured, target: f64) -> Status {
    let Some(history_burn) = history.burn_rate(target) else {
        return Status::NoData;
    };
    let both_above = |threshold: f64| {
        [short, long]
            .iter()
            .all(|m| m.burn_rate(target).is_some_and(|burn| burn > threshold))
    };
    if both_above(FAST_BURN) {
        Status::FastBurn
    } else if both_above(SLOW_BURN) {
        Status::SlowBurn
    } else if history_burn >= 1.0 {
        Status::Exhausted
    } else {
        Status::Ok
    }
}

#[derive(Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SloReport {
    /// How much history the dashboard keeps (`--dashboard-retention`).
    pub retention_seconds: f64,
    pub fast_burn: f64,
    pub slow_burn: f64,
    pub slos: Vec<SloView>,
}

#[derive(Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SloView {
    pub name: String,
    pub namespace: String,
    /// As written in the resource.
    pub service: String,
    /// The service it resolved to (`reviews.default.svc.cluster.local`).
    pub service_host: Option<String>,
    /// `availability` or `latency`.
    pub objective: &'static str,
    /// Percent.
    pub target: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threshold_ms: Option<f64>,
    /// The latency threshold is not a bucket bound: interpolated.
    pub estimated: bool,
    pub window_seconds: f64,
    /// Over the history kept (at most the window).
    pub history: Measured,
    pub sli: Option<f64>,
    /// 1 is the whole budget left, 0 none, below 0 overspent.
    pub budget_remaining: Option<f64>,
    pub short: BurnWindow,
    pub long: BurnWindow,
    pub status: Status,
}

#[derive(Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BurnWindow {
    #[serde(flatten)]
    pub measured: Measured,
    pub burn_rate: Option<f64>,
}

/// Every SLO of `snapshot`, measured from `store`.
pub fn report(store: &Store, snapshot: Option<&Snapshot>, retention: Duration) -> SloReport {
    let slos = snapshot.map_or_else(Vec::new, |snapshot| {
        snapshot
            .service_level_objectives()
            .filter_map(|slo| view(store, snapshot, slo))
            .collect()
    });
    SloReport {
        retention_seconds: retention.as_secs_f64(),
        fast_burn: FAST_BURN,
        slow_burn: SLOW_BURN,
        slos,
    }
}

/// `None` for an SLO without a valid objective (the loader refuses those).
fn view(
    store: &Store,
    snapshot: &Snapshot,
    slo: &Resource<ServiceLevelObjective>,
) -> Option<SloView> {
    let objective = slo.spec.objective()?;
    let target = objective.target();
    let window = slo.spec.window();
    let service = snapshot
        .registry
        .service_by_host(&slo.spec.service, slo.namespace());
    let totals = |span: Duration| match service {
        Some(service) => service_totals(store, &service.name, &service.namespace, span),
        None => (0.0, Counters::default()),
    };
    let (seconds, history_counters) = totals(window);
    let history = Measured::of(&history_counters, seconds, &objective);
    let burn_window = |span: Duration| {
        let (seconds, counters) = totals(span.min(window));
        let measured = Measured::of(&counters, seconds, &objective);
        BurnWindow {
            measured,
            burn_rate: measured.burn_rate(target),
        }
    };
    let (short, long) = (burn_window(SHORT_WINDOW), burn_window(LONG_WINDOW));
    let status = match service {
        None => Status::UnknownService,
        Some(_) => status(&history, &short.measured, &long.measured, target),
    };
    let (threshold_ms, estimated) = match objective {
        Objective::Latency { threshold, .. } => {
            let ms = threshold.as_secs_f64() * 1000.0;
            let on_bound =
                history_counters.buckets.is_empty() || within(&history_counters.buckets, ms).1;
            (Some(ms), !on_bound)
        }
        Objective::Availability { .. } => (None, false),
    };
    Some(SloView {
        name: slo.name().to_string(),
        namespace: slo.namespace().to_string(),
        service: slo.spec.service.clone(),
        service_host: service.map(|s| s.hostname.clone()),
        objective: match objective {
            Objective::Availability { .. } => "availability",
            Objective::Latency { .. } => "latency",
        },
        target,
        threshold_ms,
        estimated,
        window_seconds: window.as_secs_f64(),
        sli: history.sli(),
        budget_remaining: history.burn_rate(target).map(|burn| 1.0 - burn),
        history,
        short,
        long,
        status,
    })
}

#[cfg(test)]
#[path = "slo_tests.rs"]
mod tests;
