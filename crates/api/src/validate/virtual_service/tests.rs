//! Delegate VirtualServices: Istio's rules for roots and delegates.

use std::path::Path;

use crate::parse_yaml;

fn problems(spec: &str) -> Vec<(String, String)> {
    let text = format!(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: test}}\nspec:\n{spec}"
    );
    parse_yaml(Path::new("test.yaml"), &text)
        .errors
        .into_iter()
        .map(|e| (e.field, e.message))
        .collect()
}

fn expect(spec: &str, expected: &[(&str, &str)]) {
    let expected: Vec<(String, String)> = expected
        .iter()
        .map(|(f, m)| (f.to_string(), m.to_string()))
        .collect();
    assert_eq!(problems(spec), expected, "{spec}");
}

#[test]
fn roots_and_delegates_are_accepted() {
    expect(
        "  hosts: [reviews]\n  http:\n  - match: [{uri: {prefix: /a}}]\n    delegate: {name: a, namespace: team-a}\n",
        &[],
    );
    expect(
        "  http:\n  - route: [{destination: {host: reviews}}]\n",
        &[],
    );
}

#[test]
fn delegates_are_http_only_and_never_delegate_again() {
    expect(
        "  gateways: [mesh]\n  http:\n  - delegate: {name: other}\n  tcp:\n  - route: [{destination: {host: db}}]\n",
        &[
            (
                "spec.gateways",
                "delegate virtual service must have no gateways specified",
            ),
            (
                "spec.tcp",
                "delegate virtual service must have no tcp route specified",
            ),
            (
                "spec.http[0].delegate",
                "delegate virtual service cannot have delegate",
            ),
        ],
    );
}

#[test]
fn a_delegate_reference_needs_a_name_and_a_valid_namespace() {
    expect(
        "  hosts: [reviews]\n  http:\n  - delegate: {name: '', namespace: Not_A_Label}\n",
        &[
            ("spec.http[0].delegate.name", "delegate.name is required"),
            (
                "spec.http[0].delegate.namespace",
                "namespace \"Not_A_Label\" is not a valid DNS-1123 label",
            ),
        ],
    );
}
