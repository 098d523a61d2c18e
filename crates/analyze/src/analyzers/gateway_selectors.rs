//! IST0101 for a Gateway whose `selector` matches no workload: no gateway
//! proxy would serve its servers.
//!
//! Decisions: the ingress gateway Istio's default profile installs, which
//! `trellis up` also runs (`istio: ingressgateway`, `app:
//! istio-ingressgateway`), exists without being in the manifests; and
//! manifests without any workload (networking files alone) are not checked,
//! since they say nothing about what runs.

use std::collections::BTreeMap;

use crate::message::{Message, REFERENCED_RESOURCE_NOT_FOUND, quoted};
use crate::model::Model;

/// The labels of the default ingress gateway.
const DEFAULT_INGRESS_GATEWAY: [(&str, &str); 2] =
    [("istio", "ingressgateway"), ("app", "istio-ingressgateway")];

pub(crate) fn analyze(model: &Model<'_>, messages: &mut Vec<Message>) {
    if model.workloads.is_empty() {
        return;
    }
    for gateway in &model.gateways {
        let selector = &gateway.spec.selector;
        let default_gateway = selector
            .iter()
            .all(|(k, v)| DEFAULT_INGRESS_GATEWAY.contains(&(k.as_str(), v.as_str())));
        let selected = model.workloads.iter().any(|workload| {
            selector
                .iter()
                .all(|(k, v)| workload.labels.get(k) == Some(v))
        });
        if default_gateway || selected {
            continue;
        }
        let text = format!(
            "Referenced selector not found: {}",
            quoted(&selector_text(selector))
        );
        messages.push(Message::new(&REFERENCED_RESOURCE_NOT_FOUND, gateway, text));
    }
}

/// A label selector as Kubernetes prints it: `k=v,k2=v2`.
pub(crate) fn selector_text(selector: &BTreeMap<String, String>) -> String {
    let pairs: Vec<String> = selector.iter().map(|(k, v)| format!("{k}={v}")).collect();
    pairs.join(",")
}

#[cfg(test)]
mod tests {
    use super::super::testing::{messages, service_with_pods};
    use super::*;

    fn gateway(selector: &str) -> String {
        format!(
            "apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: edge}}
spec:
  selector: {selector}
  servers:
  - port: {{number: 80, name: http, protocol: HTTP}}
    hosts: ['*']
"
        )
    }

    #[test]
    fn a_selector_must_match_a_workload() {
        let workloads = service_with_pods("web");
        let cases: [(&str, &[&str]); 4] = [
            ("{app: web}", &[]),
            ("{istio: ingressgateway}", &[]),
            (
                "{istio: egressgateway}",
                &[
                    "Error [IST0101] (Gateway default/edge) Referenced selector not found: \"istio=egressgateway\"",
                ],
            ),
            (
                "{app: web, version: v2}",
                &[
                    "Error [IST0101] (Gateway default/edge) Referenced selector not found: \"app=web,version=v2\"",
                ],
            ),
        ];
        for (selector, expected) in cases {
            let yaml = format!("{workloads}{}", gateway(selector));
            assert_eq!(messages(analyze, &yaml), expected, "{selector}");
        }
    }

    #[test]
    fn manifests_without_workloads_are_not_checked() {
        assert!(messages(analyze, &gateway("{istio: egressgateway}")).is_empty());
    }
}
