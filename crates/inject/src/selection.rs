//! Which pods a revision injects, with Istio's precedence rules.
//!
//! In a cluster the API server applies most of this before the webhook is
//! called: the namespaceSelector/objectSelector pairs of the generated
//! MutatingWebhookConfiguration (see `webhook_config`) encode exactly the
//! namespace and revision rows of [`should_inject`], because the webhook
//! request carries the pod but not its namespace's labels. The handler
//! itself then applies only the pod-level rules ([`pod_opt_out`]).

use serde_json::{Map, Value};

use crate::config::{DEFAULT_REVISION, Revision};
use crate::names::{NAMESPACE_INJECTION_LABEL, POD_INJECT, REVISION_LABEL, STATUS_ANNOTATION};

/// Why a pod is left alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkipReason {
    /// `sidecar.istio.io/inject: "false"` as a pod label or annotation.
    PodOptOut,
    /// The namespace label `istio-injection` is set to something other
    /// than `enabled` (normally `disabled`).
    NamespaceDisabled,
    /// The pod is selected, but for another revision (named here).
    OtherRevision(String),
    /// Neither the namespace nor the pod asks for injection.
    NotSelected,
    /// The pod already carries `sidecar.istio.io/status`.
    AlreadyInjected,
    /// Pods on the host network share the node's network namespace;
    /// capturing their traffic would capture the node's.
    HostNetwork,
}

/// The outcome of selection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Inject,
    Skip(SkipReason),
}

/// Labels of the pod's namespace and the pod's own labels and annotations.
#[derive(Debug, Clone, Copy)]
pub struct Selectors<'a> {
    pub namespace_labels: &'a Map<String, Value>,
    pub pod_labels: &'a Map<String, Value>,
    pub pod_annotations: &'a Map<String, Value>,
}

/// Whether `revision` injects this pod, in Istio's order:
/// 1. the pod opts out (`sidecar.istio.io/inject=false`): never;
/// 2. namespace `istio-injection`: `enabled` selects the default revision,
///    any other value disables injection; it wins over `istio.io/rev`;
/// 3. namespace `istio.io/rev=R` selects revision R;
/// 4. with neither namespace label, pod label `istio.io/rev=R` selects R,
///    and pod label `sidecar.istio.io/inject=true` the default revision;
/// 5. otherwise the pod is not injected.
pub fn should_inject(selectors: Selectors<'_>, revision: &Revision) -> Decision {
    if let Some(reason) = pod_opt_out(selectors.pod_labels, selectors.pod_annotations) {
        return Decision::Skip(reason);
    }
    let namespace = selectors.namespace_labels;
    let pod = selectors.pod_labels;
    let selected = match text(namespace, NAMESPACE_INJECTION_LABEL) {
        Some("enabled") => DEFAULT_REVISION,
        Some(_) => return Decision::Skip(SkipReason::NamespaceDisabled),
        None => match (text(namespace, REVISION_LABEL), text(pod, REVISION_LABEL)) {
            (Some(namespace_revision), _) => namespace_revision,
            (None, Some(pod_revision)) => pod_revision,
            (None, None) if text(pod, POD_INJECT) == Some("true") => DEFAULT_REVISION,
            (None, None) => return Decision::Skip(SkipReason::NotSelected),
        },
    };
    if selected == revision.name() {
        Decision::Inject
    } else {
        Decision::Skip(SkipReason::OtherRevision(selected.to_owned()))
    }
}

/// The rules that only the pod decides, which the webhook handler applies
/// (the namespace rules are the webhook configuration's selectors): an
/// explicit opt-out, or a sidecar that is already there.
pub fn pod_opt_out(
    labels: &Map<String, Value>,
    annotations: &Map<String, Value>,
) -> Option<SkipReason> {
    // The annotation form is deprecated in Istio but still honoured.
    if text(labels, POD_INJECT) == Some("false") || text(annotations, POD_INJECT) == Some("false") {
        return Some(SkipReason::PodOptOut);
    }
    annotations
        .contains_key(STATUS_ANNOTATION)
        .then_some(SkipReason::AlreadyInjected)
}

pub(crate) fn text<'a>(map: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    map.get(key).and_then(Value::as_str)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn labels(pairs: &[(&str, &str)]) -> Map<String, Value> {
        pairs
            .iter()
            .map(|(key, value)| ((*key).to_owned(), Value::from(*value)))
            .collect()
    }

    /// (namespace labels, pod labels, pod annotations, decision for the
    /// default revision, decision for revision "canary").
    pub(crate) type Row = (
        &'static [(&'static str, &'static str)],
        &'static [(&'static str, &'static str)],
        &'static [(&'static str, &'static str)],
        Decision,
        Decision,
    );

    pub(crate) fn precedence_table() -> Vec<Row> {
        use Decision::{Inject, Skip};
        use SkipReason::*;
        let default = || OtherRevision("default".into());
        let canary = || OtherRevision("canary".into());
        let ns_enabled: &[(&str, &str)] = &[("istio-injection", "enabled")];
        let ns_canary: &[(&str, &str)] = &[("istio.io/rev", "canary")];
        vec![
            (&[], &[], &[], Skip(NotSelected), Skip(NotSelected)),
            (ns_enabled, &[], &[], Inject, Skip(default())),
            (
                ns_enabled,
                &[("sidecar.istio.io/inject", "false")],
                &[],
                Skip(PodOptOut),
                Skip(PodOptOut),
            ),
            (
                ns_enabled,
                &[],
                &[("sidecar.istio.io/inject", "false")],
                Skip(PodOptOut),
                Skip(PodOptOut),
            ),
            // istio-injection wins over any istio.io/rev, namespace or pod.
            (
                &[("istio-injection", "enabled"), ("istio.io/rev", "canary")],
                &[],
                &[],
                Inject,
                Skip(default()),
            ),
            (
                ns_enabled,
                &[("istio.io/rev", "canary")],
                &[],
                Inject,
                Skip(default()),
            ),
            (
                &[("istio-injection", "disabled")],
                &[("sidecar.istio.io/inject", "true")],
                &[],
                Skip(NamespaceDisabled),
                Skip(NamespaceDisabled),
            ),
            (
                &[("istio-injection", "disabled"), ("istio.io/rev", "canary")],
                &[],
                &[],
                Skip(NamespaceDisabled),
                Skip(NamespaceDisabled),
            ),
            (
                &[("istio-injection", "yes")],
                &[],
                &[],
                Skip(NamespaceDisabled),
                Skip(NamespaceDisabled),
            ),
            (ns_canary, &[], &[], Skip(canary()), Inject),
            (
                ns_canary,
                &[("sidecar.istio.io/inject", "false")],
                &[],
                Skip(PodOptOut),
                Skip(PodOptOut),
            ),
            // The namespace's revision wins over the pod's.
            (
                ns_canary,
                &[("istio.io/rev", "default")],
                &[],
                Skip(canary()),
                Inject,
            ),
            (
                &[("istio.io/rev", "default")],
                &[],
                &[],
                Inject,
                Skip(default()),
            ),
            (
                &[],
                &[("istio.io/rev", "canary")],
                &[],
                Skip(canary()),
                Inject,
            ),
            (
                &[],
                &[("sidecar.istio.io/inject", "true")],
                &[],
                Inject,
                Skip(default()),
            ),
            (
                &[],
                &[
                    ("sidecar.istio.io/inject", "true"),
                    ("istio.io/rev", "canary"),
                ],
                &[],
                Skip(canary()),
                Inject,
            ),
            // Opting in is a label only: the API server's objectSelector cannot see annotations.
            (
                &[],
                &[],
                &[("sidecar.istio.io/inject", "true")],
                Skip(NotSelected),
                Skip(NotSelected),
            ),
            (
                &[],
                &[
                    ("istio.io/rev", "canary"),
                    ("sidecar.istio.io/inject", "false"),
                ],
                &[],
                Skip(PodOptOut),
                Skip(PodOptOut),
            ),
        ]
    }

    #[test]
    fn precedence_follows_istio() {
        for (namespace, pod, annotations, for_default, for_canary) in precedence_table() {
            let (namespace_labels, pod_labels, pod_annotations) =
                (labels(namespace), labels(pod), labels(annotations));
            let selectors = Selectors {
                namespace_labels: &namespace_labels,
                pod_labels: &pod_labels,
                pod_annotations: &pod_annotations,
            };
            let row = format!("namespace {namespace:?}, pod {pod:?}, annotations {annotations:?}");
            assert_eq!(
                should_inject(selectors, &Revision::default()),
                for_default,
                "{row}"
            );
            assert_eq!(
                should_inject(selectors, &Revision::new("canary")),
                for_canary,
                "{row}"
            );
        }
    }

    #[test]
    fn an_injected_pod_is_not_injected_again() {
        let status = labels(&[(STATUS_ANNOTATION, "{}")]);
        assert_eq!(
            pod_opt_out(&Map::new(), &status),
            Some(SkipReason::AlreadyInjected)
        );
        assert_eq!(pod_opt_out(&Map::new(), &Map::new()), None);
    }
}
