//! IST0118: a Service port whose protocol Istio cannot tell from its name
//! (`<protocol>[-<suffix>]`) or `appProtocol`, so it falls back to protocol
//! sniffing.

use trellis_api::{IntOrString, Protocol, ServicePort};

use crate::message::{Message, PORT_NAME_IS_NOT_UNDER_NAMING_CONVENTION};
use crate::model::Model;

/// Kubernetes' own namespaces, which Istio does not analyze.
const SYSTEM_NAMESPACES: [&str; 4] = [
    "kube-system",
    "kube-public",
    "kube-node-lease",
    "local-path-storage",
];

pub(crate) fn analyze(model: &Model<'_>, messages: &mut Vec<Message>) {
    for service in &model.services {
        if SYSTEM_NAMESPACES.contains(&service.namespace()) {
            continue;
        }
        for port in service
            .spec
            .ports
            .iter()
            .filter(|port| !names_protocol(port))
        {
            let target = match &port.target_port {
                None => "0".to_string(),
                Some(IntOrString::Int(number)) => number.to_string(),
                Some(IntOrString::String(name)) => name.clone(),
            };
            let text = format!(
                "Port name {} (port: {}, targetPort: {target}) doesn't follow the naming convention of Istio port.",
                port.name.as_deref().unwrap_or(""),
                port.port
            );
            messages.push(Message::new(
                &PORT_NAME_IS_NOT_UNDER_NAMING_CONVENTION,
                service,
                text,
            ));
        }
    }
}

/// Whether Istio can tell the port's protocol without sniffing: UDP, a
/// known `appProtocol`, or a name `<protocol>` / `<protocol>-<suffix>`.
fn names_protocol(port: &ServicePort) -> bool {
    if port
        .protocol
        .as_deref()
        .is_some_and(|p| p.eq_ignore_ascii_case("UDP"))
    {
        return true;
    }
    let name = match port.app_protocol.as_deref() {
        Some("kubernetes.io/h2c" | "kubernetes.io/ws" | "kubernetes.io/wss") => return true,
        Some(app_protocol) => app_protocol,
        None => port.name.as_deref().unwrap_or(""),
    };
    if name.to_ascii_lowercase().starts_with("grpc-web") {
        return true;
    }
    let prefix = name.split('-').next().unwrap_or(name);
    Protocol::parse(prefix).is_some()
}

#[cfg(test)]
mod tests {
    use super::super::testing::messages;
    use super::*;

    #[test]
    fn port_names_must_name_the_protocol() {
        let flagged = |name: &str, target: &str| {
            vec![format!(
                "Info [IST0118] (Service default/web) Port name {name} (port: 80, targetPort: {target}) doesn't follow the naming convention of Istio port."
            )]
        };
        let cases: [(&str, Vec<String>); 10] = [
            ("{name: http, port: 80}", vec![]),
            ("{name: http-web, port: 80}", vec![]),
            ("{name: grpc-web-ui, port: 80}", vec![]),
            ("{name: TCP, port: 80}", vec![]),
            ("{name: web, port: 80, appProtocol: http}", vec![]),
            ("{name: dns, port: 80, protocol: UDP}", vec![]),
            (
                "{name: web, port: 80, targetPort: 8080}",
                flagged("web", "8080"),
            ),
            (
                "{name: webhttp, port: 80, targetPort: http}",
                flagged("webhttp", "http"),
            ),
            ("{port: 80}", flagged("", "0")),
            (
                "{name: http, port: 80, appProtocol: custom}",
                flagged("http", "0"),
            ),
        ];
        for (port, expected) in cases {
            let yaml = format!(
                "apiVersion: v1\nkind: Service\nmetadata: {{name: web}}\nspec:\n  ports: [{port}]\n"
            );
            assert_eq!(messages(analyze, &yaml), expected, "{port}");
        }
        let system = "apiVersion: v1\nkind: Service\nmetadata: {name: dns, namespace: kube-system}\nspec:\n  ports: [{name: dns, port: 53}]\n";
        assert!(messages(analyze, system).is_empty());
    }
}
