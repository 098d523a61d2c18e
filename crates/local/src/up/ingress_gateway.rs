//! Istio's ingress gateway, as its default install profile runs it: a
//! workload `istio-ingressgateway` in `istio-system` (labels
//! `app: istio-ingressgateway` and `istio: ingressgateway`, service account
//! `istio-ingressgateway-service-account`) that runs only a proxy, in the
//! router role, on a loopback address of its own. Gateways that select
//! these labels configure it.
//!
//! Without root, ports below 1024 cannot be bound: a Gateway server on
//! port 80 is served at 10080 (port + `UNPRIVILEGED_PORT_OFFSET`), as the
//! translator's local-mode rule says; `up` prints each such mapping.
//!
//! HTTPS servers present the certificate their `credentialName` names,
//! read from `CONFIG_DIR/credentials/NAME/tls.crt` and `tls.key` (local
//! mode's stand-in for Kubernetes TLS Secrets; changes apply to new
//! connections).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use trellis_api::AnyResource;
use trellis_translate::gateway_listen_port;
use trellis_xds::node::Interception;

use super::launch::Paths;
use super::plan::{AppPlan, MeshPlan, WorkloadPlan};
use super::state::{GatewayPort, GatewayProtocol, GatewayState, ProxyRole, WorkloadState};

pub const NAME: &str = "istio-ingressgateway";
pub const NAMESPACE: &str = "istio-system";
pub const SERVICE_ACCOUNT: &str = "istio-ingressgateway-service-account";
/// Under the config directory: one directory of `tls.crt` and `tls.key`
/// per credential name.
pub const CREDENTIALS_DIR: &str = "credentials";

/// The gateway workload's pod labels, which Gateway selectors match.
pub fn labels() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app".to_owned(), NAME.to_owned()),
        ("istio".to_owned(), "ingressgateway".to_owned()),
    ])
}

/// Adds the gateway to the planned workloads, unless the manifests run a
/// workload of that name themselves.
pub fn add_to(plan: &mut MeshPlan) {
    let taken = plan
        .workloads
        .iter()
        .any(|w| w.workload == NAME && w.namespace == NAMESPACE);
    if !taken {
        plan.workloads.push(workload_plan());
    }
}

fn workload_plan() -> WorkloadPlan {
    WorkloadPlan {
        workload: NAME.to_owned(),
        pod: format!("{NAME}-0"),
        namespace: NAMESPACE.to_owned(),
        service_account: SERVICE_ACCOUNT.to_owned(),
        labels: labels(),
        services: Vec::new(),
        app: AppPlan {
            service: NAME.to_owned(),
            version: "latest".to_owned(),
            latency: Duration::ZERO,
            error_rate: 0.0,
        },
        containers: Vec::new(),
        entry_ports: BTreeMap::new(),
        service_targets: BTreeMap::new(),
        proxy_type: ProxyRole::Router,
    }
}

/// The HTTP and HTTPS server ports of the Gateways in `resources` that
/// select the gateway, in order, with where the gateway listens for each
/// (real ports when `interception` says it runs in a pod of its own).
pub fn served_ports<'a>(
    resources: impl Iterator<Item = &'a AnyResource>,
    interception: Interception,
) -> Vec<GatewayPort> {
    let labels = labels();
    let mut ports = BTreeMap::new();
    for resource in resources {
        let AnyResource::Gateway(gateway) = resource else {
            continue;
        };
        let selected = gateway
            .spec
            .selector
            .iter()
            .all(|(key, value)| labels.get(key) == Some(value));
        if !selected {
            continue;
        }
        for server in &gateway.spec.servers {
            let Some(port) = server.port.as_ref() else {
                continue;
            };
            let protocol = match port.protocol.to_ascii_uppercase().as_str() {
                "HTTP" | "HTTP2" | "GRPC" | "GRPC-WEB" => GatewayProtocol::Http,
                "HTTPS" => GatewayProtocol::Https,
                _ => continue,
            };
            if let Ok(number @ 1..) = u16::try_from(port.number) {
                ports.entry(number).or_insert(protocol);
            }
        }
    }
    ports
        .into_iter()
        .map(|(port, protocol)| GatewayPort {
            port,
            listen_port: gateway_listen_port(port, interception),
            protocol,
        })
        .collect()
}

/// The gateway's entry in `up.json`, if it runs: its URL is its first
/// HTTP port, at Bookinfo's product page when Bookinfo runs.
pub fn state(
    plan: &MeshPlan,
    workloads: &[WorkloadState],
    ports: Vec<GatewayPort>,
    paths: &Paths,
) -> Option<GatewayState> {
    let workload = workloads
        .iter()
        .find(|w| w.proxy_type == ProxyRole::Router && w.name == NAME)?;
    let path = if plan.services.iter().any(|s| s.name == "productpage") {
        "/productpage"
    } else {
        "/"
    };
    let url = ports
        .iter()
        .find(|p| p.protocol == GatewayProtocol::Http)
        .map(|p| format!("http://{}:{}{path}", workload.address, p.listen_port));
    Some(GatewayState {
        name: NAME.to_owned(),
        namespace: NAMESPACE.to_owned(),
        pod: workload.pod.clone(),
        address: workload.address,
        ports,
        url,
        credentials_dir: credentials_dir(paths),
    })
}

/// `gateway: URL` on `stdout` (write errors ignored, as for the other
/// readiness lines), and each port mapping on stderr.
pub fn announce(stdout: &mut impl Write, gateways: &[GatewayState]) {
    for gateway in gateways {
        if let Some(url) = &gateway.url {
            let _ = writeln!(stdout, "gateway: {url}");
        }
        for port in gateway.ports.iter().filter(|p| p.port != p.listen_port) {
            eprintln!(
                "up: gateway port {} is served at {}:{} (ports below 1024 need root)",
                port.port, gateway.address, port.listen_port
            );
        }
    }
}

/// Where the gateway reads `credentialName` certificates.
pub fn credentials_dir(paths: &Paths) -> PathBuf {
    paths.config_dir.join(CREDENTIALS_DIR)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn resources(text: &str) -> Vec<AnyResource> {
        let outcome = trellis_api::parse_yaml(Path::new("gw.yaml"), text);
        assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
        outcome.resources
    }

    #[test]
    fn maps_privileged_ports_and_ignores_other_gateways() {
        let text = "apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: web}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ['*']
  - port: {number: 8080, name: http-alt, protocol: http}
    hosts: ['*']
  - port: {number: 443, name: https, protocol: HTTPS}
    hosts: ['*']
    tls: {mode: SIMPLE, credentialName: web}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: egress}
spec:
  selector: {istio: egressgateway}
  servers:
  - port: {number: 9000, name: http, protocol: HTTP}
    hosts: ['*']
";
        let ports = served_ports(resources(text).iter(), Interception::None);
        let port = |port, listen_port, protocol| GatewayPort {
            port,
            listen_port,
            protocol,
        };
        assert_eq!(
            ports,
            [
                port(80, 10080, GatewayProtocol::Http),
                port(443, 10443, GatewayProtocol::Https),
                port(8080, 8080, GatewayProtocol::Http),
            ]
        );
        let in_a_pod = served_ports(resources(text).iter(), Interception::Redirect);
        let listen: Vec<u16> = in_a_pod.iter().map(|p| p.listen_port).collect();
        assert_eq!(listen, [80, 443, 8080]);
    }

    #[test]
    fn is_added_once() {
        let mut plan = MeshPlan::default();
        add_to(&mut plan);
        add_to(&mut plan);
        assert_eq!(plan.workloads.len(), 1);
        let gateway = &plan.workloads[0];
        assert_eq!(gateway.pod, "istio-ingressgateway-0");
        assert_eq!(gateway.labels["istio"], "ingressgateway");
        assert!(gateway.containers.is_empty());
    }
}
