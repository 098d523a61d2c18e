//! IST0145: Gateways that select the same workloads and declare servers on
//! one port with overlapping hosts; only one of those servers can be used.
//! Each Gateway involved is reported, naming the others.

use std::collections::BTreeSet;

use trellis_api::{Gateway, Resource};

use super::gateway_selectors::selector_text;
use crate::host;
use crate::message::{CONFLICTING_GATEWAYS, Message};
use crate::model::Model;

pub(crate) fn analyze(model: &Model<'_>, messages: &mut Vec<Message>) {
    for gateway in &model.gateways {
        for port in ports(gateway) {
            let mut others = BTreeSet::new();
            let mut hosts = BTreeSet::new();
            for other in &model.gateways {
                let same =
                    other.namespace() == gateway.namespace() && other.name() == gateway.name();
                if same || other.spec.selector != gateway.spec.selector {
                    continue;
                }
                let shared = overlapping_hosts(gateway, other, port);
                if !shared.is_empty() {
                    others.insert(format!("{}/{}", other.namespace(), other.name()));
                    hosts.extend(shared);
                }
            }
            if others.is_empty() {
                continue;
            }
            let text = format!(
                "Conflict with gateways {} (workload selector {}, port {port}, hosts {}).",
                others.into_iter().collect::<Vec<_>>().join(","),
                selector_text(&gateway.spec.selector),
                hosts.into_iter().collect::<Vec<_>>().join(","),
            );
            messages.push(Message::new(&CONFLICTING_GATEWAYS, gateway, text));
        }
    }
}

fn ports(gateway: &Resource<Gateway>) -> BTreeSet<u32> {
    gateway
        .spec
        .servers
        .iter()
        .filter_map(|s| s.port.as_ref().map(|p| p.number))
        .collect()
}

/// Hosts of `gateway`'s servers on `port` that a server of `other` on the
/// same port also takes.
fn overlapping_hosts<'g>(
    gateway: &'g Resource<Gateway>,
    other: &Resource<Gateway>,
    port: u32,
) -> Vec<&'g str> {
    let on_port = |g: &Resource<Gateway>| -> Vec<String> {
        g.spec
            .servers
            .iter()
            .filter(|s| s.port.as_ref().is_some_and(|p| p.number == port))
            .flat_map(|s| &s.hosts)
            .map(|h| host_name(h).to_owned())
            .collect()
    };
    let theirs = on_port(other);
    gateway
        .spec
        .servers
        .iter()
        .filter(|s| s.port.as_ref().is_some_and(|p| p.number == port))
        .flat_map(|s| &s.hosts)
        .map(|h| host_name(h))
        .filter(|mine| theirs.iter().any(|t| host::overlaps(mine, t)))
        .collect()
}

/// A server host without its `namespace/` part.
fn host_name(server_host: &str) -> &str {
    server_host
        .split_once('/')
        .map_or(server_host, |(_, name)| name)
}

#[cfg(test)]
mod tests {
    use super::super::testing::messages;
    use super::*;

    fn gateway(name: &str, selector: &str, port: u32, host: &str) -> String {
        format!(
            "apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: {name}}}
spec:
  selector: {{istio: {selector}}}
  servers:
  - port: {{number: {port}, name: http, protocol: HTTP}}
    hosts: ['{host}']
---
"
        )
    }

    #[test]
    fn overlapping_hosts_on_one_port_conflict() {
        let yaml = gateway("alpha", "ingressgateway", 80, "foo.example.com")
            + &gateway("beta", "ingressgateway", 80, "*.example.com");
        assert_eq!(
            messages(analyze, &yaml),
            [
                "Error [IST0145] (Gateway default/alpha) Conflict with gateways default/beta (workload selector istio=ingressgateway, port 80, hosts foo.example.com).",
                "Error [IST0145] (Gateway default/beta) Conflict with gateways default/alpha (workload selector istio=ingressgateway, port 80, hosts *.example.com).",
            ]
        );
    }

    #[test]
    fn other_ports_hosts_or_workloads_do_not_conflict() {
        let cases = [
            gateway("beta", "ingressgateway", 443, "*.example.com"),
            gateway("beta", "ingressgateway", 80, "bar.example.com"),
            gateway("beta", "egressgateway", 80, "foo.example.com"),
        ];
        for other in cases {
            let yaml = gateway("alpha", "ingressgateway", 80, "ns/foo.example.com") + &other;
            assert!(messages(analyze, &yaml).is_empty(), "{other}");
        }
    }
}
