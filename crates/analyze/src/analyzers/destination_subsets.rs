//! IST0101 for VirtualService destinations naming a subset that no visible
//! DestinationRule for that host defines.

use super::destinations;
use crate::host;
use crate::message::{Message, REFERENCED_RESOURCE_NOT_FOUND, quoted};
use crate::model::Model;

pub(crate) fn analyze(model: &Model<'_>, messages: &mut Vec<Message>) {
    for vs in &model.virtual_services {
        let namespace = vs.namespace();
        for (_, destination) in destinations(&vs.spec) {
            let Some(subset) = destination.subset.as_deref() else {
                continue;
            };
            let fqdn = host::resolve(&destination.host, namespace);
            let defined = model
                .destination_rules_for(&fqdn, namespace)
                .any(|dr| dr.spec.subsets.iter().any(|s| s.name == subset));
            if !defined {
                let reference = format!("{}+{subset}", destination.host);
                let text = format!(
                    "Referenced host+subset in destinationrule not found: {}",
                    quoted(&reference)
                );
                messages.push(Message::new(&REFERENCED_RESOURCE_NOT_FOUND, vs, text));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::messages;
    use super::*;

    const RULE: &str = "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: NS}
spec:
  host: HOST
  EXPORT
  subsets:
  - {name: v1, labels: {version: v1}}
---
";

    fn vs(subset: &str) -> String {
        format!(
            "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: reviews}}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {{host: reviews, subset: {subset}}}
"
        )
    }

    #[test]
    fn subsets_must_be_defined_by_a_visible_rule() {
        let missing = |s: &str| {
            vec![format!(
                "Error [IST0101] (VirtualService default/reviews) Referenced host+subset in destinationrule not found: \"reviews+{s}\""
            )]
        };
        let cases: [(&str, &str, &str, &str, Vec<String>); 6] = [
            ("default", "reviews", "", "v1", vec![]),
            (
                "default",
                "reviews.default.svc.cluster.local",
                "",
                "v1",
                vec![],
            ),
            (
                "other",
                "reviews.default.svc.cluster.local",
                "",
                "v1",
                vec![],
            ),
            ("default", "reviews", "", "v4", missing("v4")),
            ("other", "reviews", "", "v1", missing("v1")),
            (
                "other",
                "reviews.default.svc.cluster.local",
                "exportTo: ['.']",
                "v1",
                missing("v1"),
            ),
        ];
        for (namespace, host, export, subset, expected) in cases {
            let rule = RULE
                .replace("NS", namespace)
                .replace("HOST", host)
                .replace("EXPORT", export);
            let yaml = format!("{rule}{}", vs(subset));
            assert_eq!(
                messages(analyze, &yaml),
                expected,
                "{namespace} {host} {export} {subset}"
            );
        }
    }
}
