//! Telemetry: the rules Istio's webhook applies.

use std::collections::BTreeMap;

use super::Violations;
use super::security::targets;
use crate::istio::{
    AccessLogging, CustomTag, Metrics, ProviderRef, STANDARD_METRICS, TagOperation, Telemetry,
    Tracing,
};

pub(super) fn validate_telemetry(violations: &mut Violations, telemetry: &Telemetry) {
    targets(
        violations,
        telemetry.selector.as_ref(),
        telemetry.target_ref.as_ref(),
        &telemetry.target_refs,
    );
    for (index, tracing) in telemetry.tracing.iter().enumerate() {
        validate_tracing(violations, &format!("spec.tracing[{index}]"), tracing);
    }
    for (index, metrics) in telemetry.metrics.iter().enumerate() {
        validate_metrics(violations, &format!("spec.metrics[{index}]"), metrics);
    }
    for (index, logging) in telemetry.access_logging.iter().enumerate() {
        validate_access_logging(violations, &format!("spec.accessLogging[{index}]"), logging);
    }
}

fn providers(violations: &mut Violations, field: &str, providers: &[ProviderRef]) {
    for (index, provider) in providers.iter().enumerate() {
        if provider.name.is_empty() {
            violations.push(
                format!("{field}.providers[{index}].name"),
                "provider name must be set",
            );
        }
    }
}

fn validate_tracing(violations: &mut Violations, field: &str, tracing: &Tracing) {
    providers(violations, field, &tracing.providers);
    if let Some(percentage) = tracing.random_sampling_percentage
        && !(0.0..=100.0).contains(&percentage)
    {
        violations.push(
            format!("{field}.randomSamplingPercentage"),
            "randomSamplingPercentage must be in range [0.0, 100.0]",
        );
    }
    custom_tags(
        violations,
        &format!("{field}.customTags"),
        &tracing.custom_tags,
    );
}

fn custom_tags(violations: &mut Violations, field: &str, tags: &BTreeMap<String, CustomTag>) {
    for (name, tag) in tags {
        let field = crate::yaml::child_key(field, name);
        let set = [
            tag.literal.is_some(),
            tag.environment.is_some(),
            tag.header.is_some(),
        ];
        if set.iter().filter(|s| **s).count() != 1 {
            violations.push(
                &field,
                "exactly one of literal, environment or header must be set",
            );
        }
        if tag.environment.as_ref().is_some_and(|e| e.name.is_empty()) {
            violations.push(
                format!("{field}.environment.name"),
                "environment name must be set",
            );
        }
        if tag.header.as_ref().is_some_and(|h| h.name.is_empty()) {
            violations.push(format!("{field}.header.name"), "header name must be set");
        }
    }
}

fn validate_metrics(violations: &mut Violations, field: &str, metrics: &Metrics) {
    providers(violations, field, &metrics.providers);
    violations.duration(
        &format!("{field}.reportingInterval"),
        metrics.reporting_interval.as_deref(),
        false,
    );
    for (index, entry) in metrics.overrides.iter().enumerate() {
        let field = format!("{field}.overrides[{index}]");
        if let Some(selector) = &entry.match_ {
            if selector.metric.is_some() && selector.custom_metric.is_some() {
                violations.push(
                    format!("{field}.match"),
                    "only one of metric or customMetric may be set",
                );
            }
            if let Some(metric) = selector.metric.as_deref()
                && !STANDARD_METRICS.contains(&metric)
            {
                violations.push(
                    format!("{field}.match.metric"),
                    format!("unknown metric {metric:?}"),
                );
            }
        }
        for (tag, tag_override) in &entry.tag_overrides {
            let field = crate::yaml::child_key(&format!("{field}.tagOverrides"), tag);
            if tag.is_empty() {
                violations.push(&field, "tag name must be set");
            }
            let value = tag_override.value.as_deref().unwrap_or_default();
            match tag_override.operation.unwrap_or(TagOperation::Upsert) {
                TagOperation::Upsert if value.is_empty() => {
                    violations.push(
                        &field,
                        format!("must specify a value for tag {tag:?} to upsert"),
                    );
                }
                TagOperation::Remove if !value.is_empty() => {
                    violations.push(
                        &field,
                        format!("cannot specify a value for tag {tag:?} to remove"),
                    );
                }
                TagOperation::Upsert => cel_syntax(violations, &format!("{field}.value"), value),
                TagOperation::Remove => {}
            }
        }
    }
}

fn validate_access_logging(violations: &mut Violations, field: &str, logging: &AccessLogging) {
    providers(violations, field, &logging.providers);
    if logging
        .filter
        .as_ref()
        .is_some_and(|f| f.expression.trim().is_empty())
    {
        violations.push(
            format!("{field}.filter.expression"),
            "filter expression must be set",
        );
    } else if let Some(filter) = &logging.filter {
        cel_syntax(
            violations,
            &format!("{field}.filter.expression"),
            &filter.expression,
        );
    }
}

/// Tag values and log filters are CEL over Envoy's attributes: one that
/// does not parse would make every proxy reject its listeners.
fn cel_syntax(violations: &mut Violations, field: &str, expression: &str) {
    if let Err(error) = cel::Program::compile(expression) {
        let reason = error.to_string();
        // The first line names the problem; the rest draws the source.
        let first = reason.lines().next().unwrap_or("syntax error");
        violations.push(
            field,
            format!("invalid CEL expression {expression:?}: {first}"),
        );
    }
}
