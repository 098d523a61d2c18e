//! `ServiceLevelObjective` (trellis.io/v1alpha1), Trellis's own kind: an
//! availability or latency objective for one service, which the dashboard
//! measures against the requests the service's sidecars report.
//!
//! ```yaml
//! apiVersion: trellis.io/v1alpha1
//! kind: ServiceLevelObjective
//! metadata: {name: reviews-availability, namespace: default}
//! spec:
//!   service: reviews                        # or reviews.default.svc.cluster.local
//!   availability: {target: 99.5}            # percent of requests not answered 5xx
//!   # latency: {threshold: 200ms, target: 99}  # percent faster than threshold
//!   window: 30d                             # the compliance window (default 30d)
//! ```
//!
//! The group is `trellis.io`, the domain of Trellis's annotations
//! (`trellis.io/demo-latency`), as Kubernetes keeps an owner's groups and
//! annotations under one domain.

use std::time::Duration;

use serde::Deserialize;

use crate::istio::{InvalidDuration, parse_duration};

/// The API versions under which Trellis serves ServiceLevelObjective.
pub const SLO_API_VERSIONS: [&str; 1] = ["trellis.io/v1alpha1"];

/// The compliance window when `window` is not written (Google's SRE
/// workbook, and most SLO tools, default to 30 days).
pub const DEFAULT_SLO_WINDOW: Duration = Duration::from_secs(30 * 24 * 3600);

const DAY: Duration = Duration::from_secs(24 * 3600);

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ServiceLevelObjective {
    /// A Service of the resource's namespace by name, or any service's
    /// host name (`reviews.default.svc.cluster.local`, a ServiceEntry host).
    pub service: String,
    pub availability: Option<AvailabilityObjective>,
    pub latency: Option<LatencyObjective>,
    /// `30d`, `7d`, `720h`, ...
    pub window: Option<String>,
}

/// The share of requests, in percent, not answered with a 5xx.
#[derive(Debug, Clone, Copy, PartialEq, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct AvailabilityObjective {
    pub target: Option<f64>,
}

/// The share of requests, in percent, answered within `threshold`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct LatencyObjective {
    /// A duration (`200ms`).
    pub threshold: String,
    pub target: Option<f64>,
}

/// What one objective counts as a good request, once validated.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Objective {
    /// Not answered 5xx.
    Availability { target: f64 },
    /// Answered within `threshold`.
    Latency { threshold: Duration, target: f64 },
}

impl Objective {
    /// The target, in percent.
    pub fn target(&self) -> f64 {
        match *self {
            Objective::Availability { target } | Objective::Latency { target, .. } => target,
        }
    }
}

impl ServiceLevelObjective {
    /// The objective, or `None` when the spec is not valid (validation
    /// says why).
    pub fn objective(&self) -> Option<Objective> {
        match (&self.availability, &self.latency) {
            (Some(availability), None) => Some(Objective::Availability {
                target: availability.target?,
            }),
            (None, Some(latency)) => Some(Objective::Latency {
                threshold: parse_duration(&latency.threshold).ok()?,
                target: latency.target?,
            }),
            _ => None,
        }
    }

    /// The compliance window; the default when not written or not valid.
    pub fn window(&self) -> Duration {
        self.window
            .as_deref()
            .and_then(|text| parse_window(text).ok())
            .unwrap_or(DEFAULT_SLO_WINDOW)
    }
}

/// A compliance window: whole days (`30d`) or a duration (`720h`, `90m`).
pub fn parse_window(text: &str) -> Result<Duration, InvalidDuration> {
    let Some(days) = text.strip_suffix('d') else {
        return parse_duration(text);
    };
    let invalid = |reason| InvalidDuration {
        input: text.to_string(),
        reason,
    };
    let days: u32 = days
        .parse()
        .map_err(|_| invalid("days must be a whole number (30d)"))?;
    Ok(DAY * days)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_are_days_or_durations() {
        assert_eq!(parse_window("30d"), Ok(DAY * 30));
        assert_eq!(parse_window("36h"), Ok(Duration::from_secs(36 * 3600)));
        assert!(parse_window("1.5d").is_err());
        assert!(parse_window("d").is_err());
        assert!(parse_window("soon").is_err());
        let unset = ServiceLevelObjective::default();
        assert_eq!(unset.window(), DEFAULT_SLO_WINDOW);
    }
}
