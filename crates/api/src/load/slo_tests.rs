//! ServiceLevelObjective: accepted specs, rejected ones with the field,
//! line and message, and unknown fields as warnings.

use std::path::Path;
use std::time::Duration;

use super::parse_yaml;
use crate::AnyResource;
use crate::slo::Objective;

fn document(spec: &str) -> String {
    format!(
        "apiVersion: trellis.io/v1alpha1\nkind: ServiceLevelObjective\nmetadata: {{name: reviews, namespace: default}}\nspec:\n{spec}"
    )
}

/// (field, line, message) of every error; spec lines start at line 5.
fn errors(spec: &str) -> Vec<(String, usize, String)> {
    let outcome = parse_yaml(Path::new("slo.yaml"), &document(spec));
    outcome
        .errors
        .into_iter()
        .map(|e| (e.field, e.line, e.message))
        .collect()
}

#[test]
fn reads_availability_and_latency_objectives() {
    let outcome = parse_yaml(
        Path::new("slo.yaml"),
        &document("  service: reviews\n  availability: {target: 99.5}\n  window: 7d\n"),
    );
    assert!(outcome.is_valid(), "{:?}", outcome.errors);
    assert!(outcome.warnings.is_empty(), "{:?}", outcome.warnings);
    let [AnyResource::ServiceLevelObjective(slo)] = outcome.resources.as_slice() else {
        panic!("{:?}", outcome.resources);
    };
    assert_eq!(
        slo.key().to_string(),
        "ServiceLevelObjective/default/reviews"
    );
    assert_eq!(
        slo.spec.objective(),
        Some(Objective::Availability { target: 99.5 })
    );
    assert_eq!(slo.spec.window(), Duration::from_secs(7 * 24 * 3600));

    let outcome = parse_yaml(
        Path::new("slo.yaml"),
        &document(
            "  service: reviews.default.svc.cluster.local\n  latency: {threshold: 200ms, target: 99}\n",
        ),
    );
    assert!(outcome.is_valid(), "{:?}", outcome.errors);
    let AnyResource::ServiceLevelObjective(slo) = &outcome.resources[0] else {
        panic!("{:?}", outcome.resources);
    };
    assert_eq!(
        slo.spec.objective(),
        Some(Objective::Latency {
            threshold: Duration::from_millis(200),
            target: 99.0
        })
    );
    assert_eq!(slo.spec.window(), Duration::from_secs(30 * 24 * 3600));
}

/// A spec and the (field, line, message) of each error it has.
type Case<'a> = (&'a str, &'a [(&'a str, usize, &'a str)]);

#[test]
fn refuses_bad_specs_naming_the_field_and_line() {
    let cases: [Case<'_>; 9] = [
        (
            "  availability: {target: 99}\n",
            &[("spec.service", 4, "service is required")],
        ),
        (
            "  service: Reviews_v1\n  availability: {target: 99}\n",
            &[(
                "spec.service",
                5,
                "service \"Reviews_v1\" is not a service name or host name",
            )],
        ),
        (
            "  service: reviews\n",
            &[(
                "spec",
                4,
                "exactly one of availability or latency must be set",
            )],
        ),
        (
            "  service: reviews\n  availability: {target: 99}\n  latency: {threshold: 1s, target: 99}\n",
            &[(
                "spec",
                4,
                "exactly one of availability or latency must be set",
            )],
        ),
        (
            "  service: reviews\n  availability: {}\n",
            &[("spec.availability.target", 6, "target is required")],
        ),
        (
            "  service: reviews\n  availability:\n    target: 100\n",
            &[(
                "spec.availability.target",
                7,
                "target 100 must be greater than 0 and less than 100 (percent)",
            )],
        ),
        (
            "  service: reviews\n  latency:\n    threshold: fast\n    target: 0\n",
            &[
                (
                    "spec.latency.threshold",
                    7,
                    "invalid duration \"fast\": unknown unit (use ns, us, ms, s, m or h)",
                ),
                (
                    "spec.latency.target",
                    8,
                    "target 0 must be greater than 0 and less than 100 (percent)",
                ),
            ],
        ),
        (
            "  service: reviews\n  latency: {target: 99}\n",
            &[("spec.latency.threshold", 6, "threshold is required")],
        ),
        (
            "  service: reviews\n  availability: {target: 99}\n  window: 10m\n",
            &[("spec.window", 7, "window must be between 1h and 366d")],
        ),
    ];
    for (spec, expected) in cases {
        let expected: Vec<(String, usize, String)> = expected
            .iter()
            .map(|(f, l, m)| (f.to_string(), *l, m.to_string()))
            .collect();
        assert_eq!(errors(spec), expected, "{spec}");
    }
}

#[test]
fn a_target_of_the_wrong_type_is_an_error_at_its_line() {
    let errors = errors("  service: reviews\n  availability:\n    target: high\n");
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(
        (errors[0].0.as_str(), errors[0].1),
        ("spec.availability.target", 7)
    );
}

#[test]
fn unknown_fields_warn_with_their_path() {
    let outcome = parse_yaml(
        Path::new("slo.yaml"),
        &document("  service: reviews\n  availability: {target: 99, goal: 98}\n  windows: 7d\n"),
    );
    assert!(outcome.is_valid(), "{:?}", outcome.errors);
    let warnings: Vec<(String, usize)> = outcome
        .warnings
        .into_iter()
        .map(|w| (w.field, w.line))
        .collect();
    assert_eq!(
        warnings,
        [
            ("spec.availability.goal".to_string(), 6),
            ("spec.windows".to_string(), 7)
        ]
    );
}
