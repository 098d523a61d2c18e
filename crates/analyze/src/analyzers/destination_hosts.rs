//! IST0101 for VirtualService destinations: a host that is neither a
//! Service nor a ServiceEntry host visible from the VirtualService's
//! namespace, or a port that host does not expose.

use super::{DestinationUse, destinations};
use crate::host;
use crate::message::{Message, REFERENCED_RESOURCE_NOT_FOUND, quoted};
use crate::model::Model;

pub(crate) fn analyze(model: &Model<'_>, messages: &mut Vec<Message>) {
    for vs in &model.virtual_services {
        let namespace = vs.namespace();
        for (usage, destination) in destinations(&vs.spec) {
            let prefix = match usage {
                DestinationUse::Route => "host",
                DestinationUse::Mirror => "mirror host",
            };
            let fqdn = host::resolve(&destination.host, namespace);
            let matches: Vec<_> = model.hosts_for(&fqdn, namespace).collect();
            let (reftype, refval) = if matches.is_empty() {
                (prefix.to_string(), destination.host.clone())
            } else if let Some(port) = destination.port.map(|p| p.number)
                && !matches.iter().any(|found| found.ports.contains(&port))
            {
                (
                    format!("{prefix}:port"),
                    format!("{}:{port}", destination.host),
                )
            } else {
                continue;
            };
            let text = format!("Referenced {reftype} not found: {}", quoted(&refval));
            messages.push(Message::new(&REFERENCED_RESOURCE_NOT_FOUND, vs, text));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{messages, service_with_pods};
    use super::*;

    const VS: &str = "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: vs}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: DEST}
";

    #[test]
    fn destinations_must_be_known_hosts() {
        let entry = "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ext, namespace: other}
spec:
  hosts: ['*.example.com']
  ports: [{number: 443, name: https, protocol: HTTPS}]
---
";
        let cases: [(&str, &[&str]); 8] = [
            ("reviews", &[]),
            ("reviews.default.svc.cluster.local", &[]),
            ("{host: reviews, port: {number: 9080}}", &[]),
            ("api.example.com", &[]),
            (
                "ratings",
                &[
                    "Error [IST0101] (VirtualService default/vs) Referenced host not found: \"ratings\"",
                ],
            ),
            (
                "reviews.default",
                &[
                    "Error [IST0101] (VirtualService default/vs) Referenced host not found: \"reviews.default\"",
                ],
            ),
            (
                "{host: reviews, port: {number: 80}}",
                &[
                    "Error [IST0101] (VirtualService default/vs) Referenced host:port not found: \"reviews:80\"",
                ],
            ),
            (
                "{host: api.example.com, port: {number: 80}}",
                &[
                    "Error [IST0101] (VirtualService default/vs) Referenced host:port not found: \"api.example.com:80\"",
                ],
            ),
        ];
        for (destination, expected) in cases {
            let vs = if destination.starts_with('{') {
                VS.replace("{host: DEST}", destination)
            } else {
                VS.replace("DEST", destination)
            };
            let yaml = format!("{}{entry}{vs}", service_with_pods("reviews"));
            assert_eq!(messages(analyze, &yaml), expected, "{destination}");
        }
    }

    #[test]
    fn mirrors_are_checked_and_named() {
        let vs = VS.replace("DEST", "reviews") + "    mirror: {host: shadow}\n";
        let yaml = format!("{}{vs}", service_with_pods("reviews"));
        assert_eq!(
            messages(analyze, &yaml),
            [
                "Error [IST0101] (VirtualService default/vs) Referenced mirror host not found: \"shadow\""
            ]
        );
    }

    #[test]
    fn services_exported_elsewhere_are_not_visible() {
        let hidden = service_with_pods("reviews").replace(
            "metadata: {name: reviews}",
            "metadata: {name: reviews, annotations: {networking.istio.io/exportTo: other}}",
        );
        let vs = VS.replace("DEST", "reviews");
        assert_eq!(
            messages(analyze, &format!("{hidden}{vs}")),
            ["Error [IST0101] (VirtualService default/vs) Referenced host not found: \"reviews\""]
        );
    }
}
