//! IST0132: a VirtualService host that none of the servers of a Gateway it
//! is bound to accepts, so the gateway never routes it.

use trellis_api::{Gateway, Resource};

use super::{MESH_GATEWAY, gateway_references};
use crate::host;
use crate::message::{Message, VIRTUAL_SERVICE_HOST_NOT_FOUND_IN_GATEWAY};
use crate::model::Model;

pub(crate) fn analyze(model: &Model<'_>, messages: &mut Vec<Message>) {
    for vs in &model.virtual_services {
        let namespace = vs.namespace();
        for reference in gateway_references(&vs.spec) {
            if reference == MESH_GATEWAY {
                continue;
            }
            let Some(gateway) = model.gateway(reference, namespace) else {
                continue;
            };
            let missing: Vec<&str> = vs
                .spec
                .hosts
                .iter()
                .filter(|vs_host| !accepts(gateway, vs_host, namespace))
                .map(String::as_str)
                .collect();
            if missing.is_empty() {
                continue;
            }
            let text = format!(
                "one or more host [{}] defined in VirtualService {}/{} not found in Gateway {}/{}.",
                missing.join(" "),
                namespace,
                vs.name(),
                gateway.namespace(),
                gateway.name()
            );
            messages.push(Message::new(
                &VIRTUAL_SERVICE_HOST_NOT_FOUND_IN_GATEWAY,
                vs,
                text,
            ));
        }
    }
}

/// Whether a server of `gateway` accepts `vs_host` from a VirtualService
/// in `vs_namespace` (`namespace/host` server hosts restrict where the
/// VirtualService may live).
fn accepts(gateway: &Resource<Gateway>, vs_host: &str, vs_namespace: &str) -> bool {
    let vs_host = host::resolve(vs_host, vs_namespace);
    gateway
        .spec
        .servers
        .iter()
        .flat_map(|s| &s.hosts)
        .any(|server_host| {
            let (scope, name) = server_host.split_once('/').unwrap_or(("*", server_host));
            let namespace_ok = match scope {
                "*" => true,
                "." => gateway.namespace() == vs_namespace,
                other => other == vs_namespace,
            };
            namespace_ok && host::overlaps(name, &vs_host)
        })
}

#[cfg(test)]
mod tests {
    use super::super::testing::messages;
    use super::*;

    fn yaml(server_hosts: &str, vs_hosts: &str) -> String {
        format!(
            "apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: gw, namespace: istio-system}}
spec:
  servers:
  - port: {{number: 80, name: http, protocol: HTTP}}
    hosts: {server_hosts}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: web}}
spec:
  hosts: {vs_hosts}
  gateways: [istio-system/gw]
  http:
  - route:
    - destination: {{host: web}}
"
        )
    }

    #[test]
    fn virtual_service_hosts_must_be_served_by_the_gateway() {
        let not_found = |hosts: &str| {
            vec![format!(
                "Warning [IST0132] (VirtualService default/web) one or more host [{hosts}] defined in VirtualService default/web not found in Gateway istio-system/gw."
            )]
        };
        let cases: [(&str, &str, Vec<String>); 8] = [
            ("['*']", "[a.example.com]", vec![]),
            ("['*.example.com']", "[a.example.com]", vec![]),
            ("[a.example.com]", "['*']", vec![]),
            ("['default/a.example.com']", "[a.example.com]", vec![]),
            ("['*/a.example.com']", "[a.example.com]", vec![]),
            ("[testing.com]", "[wrong.com]", not_found("wrong.com")),
            (
                "[a.example.com]",
                "[a.example.com, b.example.com, c.org]",
                not_found("b.example.com c.org"),
            ),
            (
                "['prod/a.example.com']",
                "[a.example.com]",
                not_found("a.example.com"),
            ),
        ];
        for (server_hosts, vs_hosts, expected) in cases {
            assert_eq!(
                messages(analyze, &yaml(server_hosts, vs_hosts)),
                expected,
                "{server_hosts} {vs_hosts}"
            );
        }
    }
}
