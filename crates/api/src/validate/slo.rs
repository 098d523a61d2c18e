//! ServiceLevelObjective: one service, exactly one objective with a target
//! that leaves an error budget, and a window long enough to burn through.

use std::time::Duration;

use super::{Violations, is_dns1123_subdomain};
use crate::istio::parse_duration;
use crate::slo::{ServiceLevelObjective, parse_window};

/// The dashboard's long burn-rate window: a shorter compliance window
/// could not be burned through at a measurable rate.
const MIN_WINDOW: Duration = Duration::from_secs(3600);
const MAX_WINDOW: Duration = Duration::from_secs(366 * 24 * 3600);

pub(super) fn validate_slo(violations: &mut Violations, slo: &ServiceLevelObjective) {
    if slo.service.is_empty() {
        violations.push("spec.service", "service is required");
    } else if !is_dns1123_subdomain(&slo.service) {
        violations.push(
            "spec.service",
            format!(
                "service {:?} is not a service name or host name",
                slo.service
            ),
        );
    }
    match (&slo.availability, &slo.latency) {
        (Some(availability), None) => {
            target(violations, "spec.availability.target", availability.target);
        }
        (None, Some(latency)) => {
            threshold(violations, &latency.threshold);
            target(violations, "spec.latency.target", latency.target);
        }
        _ => violations.push("spec", "exactly one of availability or latency must be set"),
    }
    if let Some(window) = &slo.window {
        match parse_window(window) {
            Err(error) => violations.push("spec.window", error.to_string()),
            Ok(window) if !(MIN_WINDOW..=MAX_WINDOW).contains(&window) => {
                violations.push("spec.window", "window must be between 1h and 366d");
            }
            Ok(_) => {}
        }
    }
}

/// 100% leaves no error budget to measure, so it is refused.
fn target(violations: &mut Violations, field: &str, target: Option<f64>) {
    match target {
        None => violations.push(field, "target is required"),
        Some(target) if !(target > 0.0 && target < 100.0) => violations.push(
            field,
            format!("target {target} must be greater than 0 and less than 100 (percent)"),
        ),
        Some(_) => {}
    }
}

fn threshold(violations: &mut Violations, threshold: &str) {
    let field = "spec.latency.threshold";
    if threshold.is_empty() {
        violations.push(field, "threshold is required");
        return;
    }
    match parse_duration(threshold) {
        Err(error) => violations.push(field, error.to_string()),
        Ok(duration) if duration.is_zero() => {
            violations.push(field, "threshold must be greater than 0");
        }
        Ok(_) => {}
    }
}
