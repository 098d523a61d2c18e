//! The MutatingWebhookConfiguration that routes a revision's pods to the
//! webhook. Its namespaceSelector/objectSelector pairs are Istio's, and
//! together they select exactly the pods `selection::should_inject` picks
//! (tested below), which is how namespace labels reach the decision.

use serde_json::{Value, json};

use crate::config::{CONTROL_PLANE_NAMESPACE, Revision};
use crate::names::{NAMESPACE_INJECTION_LABEL, POD_INJECT, REVISION_LABEL};

/// The istiod Service port in front of the webhook's 15017.
const SERVICE_PORT: u16 = 443;

/// The configuration for `revision`. `caBundle` is left out: the control
/// plane patches in the CA that signed its serving certificate.
pub fn webhook_configuration(revision: &Revision) -> Value {
    let name = if revision.is_default() {
        "istio-sidecar-injector".to_owned()
    } else {
        format!("istio-sidecar-injector-{}", revision.name())
    };
    let webhooks: Vec<Value> = selectors(revision)
        .into_iter()
        .map(|(webhook, namespace_selector, object_selector)| {
            json!({
                "name": webhook,
                "admissionReviewVersions": ["v1"],
                "clientConfig": {"service": {
                    "name": revision.control_plane_service(),
                    "namespace": CONTROL_PLANE_NAMESPACE,
                    "path": "/inject",
                    "port": SERVICE_PORT,
                }},
                "failurePolicy": "Fail",
                "reinvocationPolicy": "Never",
                "sideEffects": "None",
                "timeoutSeconds": 10,
                "rules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["pods"]}],
                "namespaceSelector": {"matchExpressions": namespace_selector},
                "objectSelector": {"matchExpressions": object_selector},
            })
        })
        .collect();
    json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": name, "labels": {"app": "sidecar-injector", REVISION_LABEL: revision.name()}},
        "webhooks": webhooks,
    })
}

/// (webhook name, namespace expressions, object expressions). Every
/// revision answers `istio.io/rev=REV` on the namespace, or on the pod in a
/// namespace with neither injection label; the default revision also
/// answers `istio-injection=enabled` and a bare pod opt-in.
fn selectors(revision: &Revision) -> Vec<(&'static str, Vec<Value>, Vec<Value>)> {
    let expression = |key: &str, operator: &str, values: &[&str]| {
        if values.is_empty() {
            json!({"key": key, "operator": operator})
        } else {
            json!({"key": key, "operator": operator, "values": values})
        }
    };
    let rev = revision.name();
    let not_opted_out = expression(POD_INJECT, "NotIn", &["false"]);
    let no_injection_label = expression(NAMESPACE_INJECTION_LABEL, "DoesNotExist", &[]);
    let no_namespace_revision = expression(REVISION_LABEL, "DoesNotExist", &[]);
    let mut webhooks = vec![
        (
            "rev.namespace.sidecar-injector.istio.io",
            vec![
                expression(REVISION_LABEL, "In", &[rev]),
                no_injection_label.clone(),
            ],
            vec![not_opted_out.clone()],
        ),
        (
            "rev.object.sidecar-injector.istio.io",
            vec![no_namespace_revision.clone(), no_injection_label.clone()],
            vec![
                not_opted_out.clone(),
                expression(REVISION_LABEL, "In", &[rev]),
            ],
        ),
    ];
    if revision.is_default() {
        webhooks.push((
            "namespace.sidecar-injector.istio.io",
            vec![expression(NAMESPACE_INJECTION_LABEL, "In", &["enabled"])],
            vec![not_opted_out],
        ));
        webhooks.push((
            "object.sidecar-injector.istio.io",
            vec![no_injection_label, no_namespace_revision],
            vec![
                expression(POD_INJECT, "In", &["true"]),
                expression(REVISION_LABEL, "DoesNotExist", &[]),
            ],
        ));
    }
    webhooks
}

#[cfg(test)]
mod tests {
    use serde_json::Map;

    use super::*;
    use crate::selection::tests::{labels, precedence_table};
    use crate::selection::{Decision, SkipReason, pod_opt_out};

    /// Kubernetes label-selector semantics for matchExpressions.
    fn matches(selector: &Value, labels: &Map<String, Value>) -> bool {
        selector["matchExpressions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|expression| {
                let value = labels.get(expression["key"].as_str().unwrap());
                let listed =
                    |value: &Value| expression["values"].as_array().unwrap().contains(value);
                match expression["operator"].as_str().unwrap() {
                    "In" => value.is_some_and(listed),
                    "NotIn" => !value.is_some_and(listed),
                    "Exists" => value.is_some(),
                    "DoesNotExist" => value.is_none(),
                    other => panic!("unknown operator {other}"),
                }
            })
    }

    /// What the API server and then the handler decide together.
    fn cluster_injects(
        revision: &Revision,
        namespace: &Map<String, Value>,
        pod: &Map<String, Value>,
        annotations: &Map<String, Value>,
    ) -> bool {
        let configuration = webhook_configuration(revision);
        let called = configuration["webhooks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|webhook| {
                matches(&webhook["namespaceSelector"], namespace)
                    && matches(&webhook["objectSelector"], pod)
            });
        called && pod_opt_out(pod, annotations).is_none()
    }

    #[test]
    fn selectors_and_handler_together_follow_the_precedence_table() {
        for (namespace, pod, annotations, for_default, for_canary) in precedence_table() {
            let (namespace_labels, pod_labels, pod_annotations) =
                (labels(namespace), labels(pod), labels(annotations));
            for (revision, expected) in [
                (Revision::default(), for_default),
                (Revision::new("canary"), for_canary),
            ] {
                assert_eq!(
                    cluster_injects(&revision, &namespace_labels, &pod_labels, &pod_annotations),
                    expected == Decision::Inject,
                    "{} for namespace {namespace:?}, pod {pod:?}, annotations {annotations:?}",
                    revision.name(),
                );
            }
        }
        // The handler's own check: an already injected pod is left alone.
        let injected = labels(&[("sidecar.istio.io/status", "{}")]);
        assert_eq!(
            pod_opt_out(&Map::new(), &injected),
            Some(SkipReason::AlreadyInjected)
        );
    }

    #[test]
    fn each_revision_points_at_its_own_control_plane() {
        let canary = webhook_configuration(&Revision::new("canary"));
        assert_eq!(canary["metadata"]["name"], "istio-sidecar-injector-canary");
        assert_eq!(canary["webhooks"].as_array().unwrap().len(), 2);
        assert_eq!(
            canary["webhooks"][0]["clientConfig"]["service"]["name"],
            "istiod-canary"
        );
        let default = webhook_configuration(&Revision::default());
        assert_eq!(default["webhooks"].as_array().unwrap().len(), 4);
    }
}
