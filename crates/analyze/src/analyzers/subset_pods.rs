//! IST0173: a DestinationRule subset whose labels, together with the
//! Service's selector, select no pod; requests routed to it fail with
//! 503 UH. Pods are the manifests' Pods, or else their Deployments' pod
//! templates (see [`Model::new`]).

use crate::host;
use crate::message::{DESTINATION_RULE_SUBSET_NOT_SELECT_PODS, Message};
use crate::model::Model;

pub(crate) fn analyze(model: &Model<'_>, messages: &mut Vec<Message>) {
    for dr in &model.destination_rules {
        let fqdn = host::resolve(&dr.spec.host, dr.namespace());
        let services = model
            .hosts_for(&fqdn, dr.namespace())
            .filter(|found| found.name == fqdn)
            .filter_map(|found| found.service)
            .filter(|service| !service.spec.selector.is_empty());
        let services: Vec<_> = services.collect();
        if services.is_empty() {
            continue;
        }
        for subset in &dr.spec.subsets {
            let selects_pods = services.iter().any(|service| {
                let mut selector = service.spec.selector.clone();
                selector.extend(subset.labels.clone());
                model
                    .workloads_selected(service.namespace(), &selector)
                    .next()
                    .is_some()
            });
            if !selects_pods {
                let text = format!(
                    "The Subset {} defined in the DestinationRule does not select any pods. Which may lead to 503 UH (NoHealthyUpstream).",
                    subset.name
                );
                messages.push(Message::new(
                    &DESTINATION_RULE_SUBSET_NOT_SELECT_PODS,
                    dr,
                    text,
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{messages, service_with_pods};
    use super::*;

    fn rule(host: &str, labels: &str) -> String {
        format!(
            "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: reviews}}
spec:
  host: {host}
  subsets:
  - {{name: v1, labels: {{version: v1}}}}
  - {{name: other, labels: {labels}}}
---
"
        )
    }

    #[test]
    fn subsets_must_select_pods() {
        let unselected = vec![
            "Warning [IST0173] (DestinationRule default/reviews) The Subset other defined in the DestinationRule does not select any pods. Which may lead to 503 UH (NoHealthyUpstream).".to_string(),
        ];
        let platform = service_with_pods("reviews");
        let pod = "apiVersion: v1
kind: Pod
metadata: {name: reviews-v4, labels: {app: reviews, version: v4}}
spec:
  containers: [{name: app}]
---
";
        let cases: [(String, Vec<String>); 6] = [
            (format!("{platform}{}", rule("reviews", "{}")), vec![]),
            (format!("{platform}{}", rule("reviews.default.svc.cluster.local", "{app: reviews}")), vec![]),
            (format!("{platform}{}", rule("reviews", "{version: v4}")), unselected.clone()),
            (format!("{platform}{}", rule("reviews", "{version: v1, track: canary}")), unselected.clone()),
            // Pods written out replace the Deployment templates.
            (format!("{platform}{pod}{}", rule("reviews", "{version: v4}")), vec![
                "Warning [IST0173] (DestinationRule default/reviews) The Subset v1 defined in the DestinationRule does not select any pods. Which may lead to 503 UH (NoHealthyUpstream).".to_string(),
            ]),
            // Hosts that are no Kubernetes Service are IST0174's concern.
            (rule("reviews", "{version: v4}"), vec![]),
        ];
        for (yaml, expected) in cases {
            assert_eq!(messages(analyze, &yaml), expected, "{yaml}");
        }
    }
}
