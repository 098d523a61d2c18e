//! IST0101 for VirtualServices bound to a Gateway that does not exist.

use super::{MESH_GATEWAY, gateway_references};
use crate::message::{Message, REFERENCED_RESOURCE_NOT_FOUND, quoted};
use crate::model::Model;

pub(crate) fn analyze(model: &Model<'_>, messages: &mut Vec<Message>) {
    for vs in &model.virtual_services {
        for reference in gateway_references(&vs.spec) {
            if reference == MESH_GATEWAY || model.gateway(reference, vs.namespace()).is_some() {
                continue;
            }
            let text = format!("Referenced gateway not found: {}", quoted(reference));
            messages.push(Message::new(&REFERENCED_RESOURCE_NOT_FOUND, vs, text));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::messages;
    use super::*;

    const GATEWAY: &str = "apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: ingress, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ['*']
---
";

    fn vs(gateways: &str) -> String {
        format!(
            "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: web}}
spec:
  hosts: ['*']
  gateways: {gateways}
  http:
  - route:
    - destination: {{host: web}}
"
        )
    }

    #[test]
    fn gateways_must_exist_in_the_named_namespace() {
        let cases: [(&str, &[&str]); 5] = [
            ("[istio-system/ingress]", &[]),
            ("[mesh, istio-system/ingress]", &[]),
            ("[ingress.istio-system.svc.cluster.local]", &[]),
            (
                "[ingress]",
                &[
                    "Error [IST0101] (VirtualService default/web) Referenced gateway not found: \"ingress\"",
                ],
            ),
            (
                "[istio-system/bogus]",
                &[
                    "Error [IST0101] (VirtualService default/web) Referenced gateway not found: \"istio-system/bogus\"",
                ],
            ),
        ];
        for (gateways, expected) in cases {
            let yaml = format!("{GATEWAY}{}", vs(gateways));
            assert_eq!(messages(analyze, &yaml), expected, "{gateways}");
        }
    }

    #[test]
    fn gateways_named_in_matches_are_checked() {
        let yaml = vs("[mesh]").replace(
            "  - route:",
            "  - match: [{gateways: [missing]}]\n    route:",
        );
        assert_eq!(
            messages(analyze, &yaml),
            [
                "Error [IST0101] (VirtualService default/web) Referenced gateway not found: \"missing\""
            ]
        );
    }
}
