//! IST0109: several VirtualServices bound to the mesh define the same host,
//! so which one a sidecar applies is undefined. Gateway-bound ones are
//! merged by Istio and never conflict. A VirtualService exported only to
//! some namespaces conflicts with those visible there and with public ones.

use std::collections::BTreeMap;

use trellis_api::{Resource, VirtualService};

use super::is_mesh_bound;
use crate::host;
use crate::message::{CONFLICTING_MESH_GATEWAY_VIRTUAL_SERVICE_HOSTS, Message};
use crate::model::Model;

/// `None` for VirtualServices exported to every namespace, else their own.
type Scope<'a> = Option<&'a str>;

pub(crate) fn analyze(model: &Model<'_>, messages: &mut Vec<Message>) {
    let mut by_host: BTreeMap<(String, Scope<'_>), Vec<&Resource<VirtualService>>> =
        BTreeMap::new();
    for vs in model
        .virtual_services
        .iter()
        .copied()
        .filter(|vs| is_mesh_bound(&vs.spec))
    {
        let public = vs.spec.export_to.is_empty() || vs.spec.export_to.iter().any(|e| e == "*");
        let scope = if public { None } else { Some(vs.namespace()) };
        for name in &vs.spec.hosts {
            let entry = by_host
                .entry((host::resolve(name, vs.namespace()), scope))
                .or_default();
            if !entry.iter().any(|known| std::ptr::eq(*known, vs)) {
                entry.push(vs);
            }
        }
    }
    for ((fqdn, scope), scoped) in &by_host {
        let mut group = scoped.clone();
        if scope.is_some()
            && let Some(public) = by_host.get(&(fqdn.clone(), None))
        {
            group.extend(public);
        }
        if group.len() < 2 {
            continue;
        }
        let mut names: Vec<String> = group
            .iter()
            .map(|vs| format!("{}/{}", vs.namespace(), vs.name()))
            .collect();
        names.sort();
        let text = format!(
            "The VirtualServices {} associated with mesh gateway define the same host {fqdn} which can lead to undefined behavior. This can be fixed by merging the conflicting VirtualServices into a single resource.",
            names.join(",")
        );
        for vs in group {
            messages.push(Message::new(
                &CONFLICTING_MESH_GATEWAY_VIRTUAL_SERVICE_HOSTS,
                vs,
                text.clone(),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::messages;
    use super::*;

    fn vs(name: &str, namespace: &str, host: &str, extra: &str) -> String {
        format!(
            "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: {name}, namespace: {namespace}}}
spec:
  hosts: [{host}]
  {extra}
  http:
  - route:
    - destination: {{host: {host}}}
---
"
        )
    }

    fn conflict(names: &str, host: &str, origins: &[&str]) -> Vec<String> {
        origins
            .iter()
            .map(|origin| format!(
                "Error [IST0109] (VirtualService {origin}) The VirtualServices {names} associated with mesh gateway define the same host {host} which can lead to undefined behavior. This can be fixed by merging the conflicting VirtualServices into a single resource."
            ))
            .collect()
    }

    #[test]
    fn mesh_virtual_services_must_not_share_hosts() {
        let shared = "productpage.default.svc.cluster.local";
        let cases: [(String, Vec<String>); 6] = [
            (
                vs("a", "default", "reviews", "") + &vs("b", "default", "ratings", ""),
                vec![],
            ),
            (
                vs("a", "team-1", shared, "") + &vs("b", "team-2", shared, ""),
                conflict("team-1/a,team-2/b", shared, &["team-1/a", "team-2/b"]),
            ),
            (
                vs("a", "default", "reviews", "")
                    + &vs(
                        "b",
                        "default",
                        "reviews.default.svc.cluster.local",
                        "gateways: [mesh]",
                    ),
                conflict(
                    "default/a,default/b",
                    "reviews.default.svc.cluster.local",
                    &["default/a", "default/b"],
                ),
            ),
            (
                vs("a", "default", shared, "gateways: [gw]")
                    + &vs("b", "default", shared, "gateways: [gw]"),
                vec![],
            ),
            (
                vs("a", "team-1", shared, "exportTo: ['.']")
                    + &vs("b", "team-2", shared, "exportTo: ['.']"),
                vec![],
            ),
            (
                vs("a", "team-1", shared, "exportTo: ['.']") + &vs("b", "team-2", shared, ""),
                conflict("team-1/a,team-2/b", shared, &["team-1/a", "team-2/b"]),
            ),
        ];
        for (yaml, expected) in cases {
            assert_eq!(messages(analyze, &yaml), expected, "{yaml}");
        }
    }
}
