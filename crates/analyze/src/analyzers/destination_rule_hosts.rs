//! IST0174: a DestinationRule whose host matches no Service or ServiceEntry
//! host visible from its namespace, so its policies apply to nothing.

use crate::host;
use crate::message::{Message, UNKNOWN_DESTINATION_RULE_HOST};
use crate::model::Model;

pub(crate) fn analyze(model: &Model<'_>, messages: &mut Vec<Message>) {
    for dr in &model.destination_rules {
        let fqdn = host::resolve(&dr.spec.host, dr.namespace());
        if model.hosts_for(&fqdn, dr.namespace()).next().is_none() {
            let text = format!(
                "The host {} defined in the DestinationRule does not match any services in the mesh.",
                dr.spec.host
            );
            messages.push(Message::new(&UNKNOWN_DESTINATION_RULE_HOST, dr, text));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{messages, service_with_pods};
    use super::*;

    #[test]
    fn rule_hosts_must_match_a_service() {
        let entry = "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: google}
spec:
  hosts: [www.googleapis.com]
  ports: [{number: 443, name: https, protocol: HTTPS}]
  resolution: DNS
---
";
        let unknown = |host: &str| {
            vec![format!(
                "Warning [IST0174] (DestinationRule default/dr) The host {host} defined in the DestinationRule does not match any services in the mesh."
            )]
        };
        let cases: [(&str, Vec<String>); 6] = [
            ("reviews", vec![]),
            ("reviews.default.svc.cluster.local", vec![]),
            ("www.googleapis.com", vec![]),
            ("'*.googleapis.com'", vec![]),
            ("reveiws", unknown("reveiws")),
            (
                "reviews.prod.svc.cluster.local",
                unknown("reviews.prod.svc.cluster.local"),
            ),
        ];
        for (host, expected) in cases {
            let rule = format!(
                "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: dr}}\nspec:\n  host: {host}\n"
            );
            let yaml = format!("{}{entry}{rule}", service_with_pods("reviews"));
            assert_eq!(messages(analyze, &yaml), expected, "{host}");
        }
    }
}
