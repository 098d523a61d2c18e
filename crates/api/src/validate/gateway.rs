//! Gateway checks, after Istio's `ValidateGateway`, and the server TLS
//! settings a sidecar's ingress listener shares with gateways.

use std::collections::BTreeSet;

use super::network::{HostScope, Protocol, ip_address, namespace_slash_host};
use super::{Violations, labels};
use crate::istio::{Gateway, Port, Server, ServerTlsMode, ServerTlsSettings, TlsProtocolVersion};

const UNIX_PREFIX: &str = "unix://";
/// The TLS 1.2 cipher suites (Envoy's names) the proxy's rustls offers.
pub const SUPPORTED_CIPHER_SUITES: [&str; 6] = [
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305",
    "ECDHE-RSA-CHACHA20-POLY1305",
];

pub(super) fn validate(violations: &mut Violations, name: &str, gateway: &Gateway) {
    if !name.is_empty() && !super::is_dns1123_label(name) {
        violations.push("metadata.name", format!("invalid gateway name: {name:?}"));
    }
    if gateway.servers.is_empty() {
        violations.push("spec.servers", "gateway must have at least one server");
    }
    let mut port_names = BTreeSet::new();
    for (index, server) in gateway.servers.iter().enumerate() {
        let field = format!("spec.servers[{index}]");
        validate_server(violations, &field, server);
        let Some(port) = &server.port else { continue };
        if !port_names.insert(port.name.as_str()) {
            violations.push(
                format!("{field}.port.name"),
                format!(
                    "port names in servers must be unique: duplicate name {}",
                    port.name
                ),
            );
        }
    }
    labels(violations, "spec.selector", &gateway.selector);
}

fn validate_server(violations: &mut Violations, field: &str, server: &Server) {
    if server.hosts.is_empty() {
        violations.push(
            format!("{field}.hosts"),
            "server config must contain at least one host",
        );
    }
    for (index, host) in server.hosts.iter().enumerate() {
        if let Err(message) = namespace_slash_host(host, HostScope::Gateway) {
            violations.push(format!("{field}.hosts[{index}]"), message);
        }
    }
    let bind = server.bind.as_deref().unwrap_or("");
    validate_bind(violations, field, server.port.as_ref(), bind);
    if let Some(tls) = &server.tls {
        validate_server_tls(violations, &format!("{field}.tls"), tls);
    }
    let Some(port) = &server.port else {
        violations.push(format!("{field}.port"), "port is required");
        return;
    };
    let Some(protocol) = validate_port(violations, &format!("{field}.port"), port, bind) else {
        return;
    };
    match &server.tls {
        None if protocol.is_tls() => violations.push(
            format!("{field}.tls"),
            "server must have TLS settings for HTTPS/TLS protocols",
        ),
        Some(tls) if !protocol.is_tls() && protocol.is_http() && !redirect_only(tls) => {
            violations.push(
                format!("{field}.tls"),
                "server cannot have TLS settings for plain text HTTP ports",
            );
        }
        Some(_) if !protocol.is_tls() && !protocol.is_http() => violations.push(
            format!("{field}.tls"),
            "server cannot have TLS settings for non HTTPS/TLS ports",
        ),
        _ => {}
    }
    if !protocol.is_http() && server.tls.as_ref().is_some_and(|tls| tls.https_redirect) {
        violations.push(
            format!("{field}.tls.httpsRedirect"),
            "tls.httpsRedirect should only be used with http servers",
        );
    }
}

/// TLS settings on a plain HTTP server may only ask for a redirect to HTTPS.
fn redirect_only(tls: &ServerTlsSettings) -> bool {
    tls.mode == ServerTlsMode::Passthrough
        && tls.server_certificate.is_none()
        && tls.private_key.is_none()
        && tls.ca_certificates.is_none()
}

/// Returns the port's protocol when it is one Istio knows.
fn validate_port(
    violations: &mut Violations,
    field: &str,
    port: &Port,
    bind: &str,
) -> Option<Protocol> {
    let protocol = Protocol::parse(&port.protocol);
    if protocol.is_none() {
        violations.push(
            format!("{field}.protocol"),
            format!(
                "invalid protocol {:?}, supported protocols are HTTP, HTTP2, GRPC, GRPC-WEB, MONGO, REDIS, MYSQL, TCP",
                port.protocol
            ),
        );
    }
    if port.number > 0 || !bind.starts_with(UNIX_PREFIX) {
        violations.port(&format!("{field}.number"), Some(port.number));
    }
    if port.target_port.is_some_and(|target| target > 0) {
        violations.push(
            format!("{field}.targetPort"),
            "targetPort has no impact on Gateways",
        );
    }
    if port.name.is_empty() {
        violations.push(format!("{field}.name"), "port name must be set");
    }
    protocol
}

fn validate_bind(violations: &mut Violations, field: &str, port: Option<&Port>, bind: &str) {
    let bind_field = format!("{field}.bind");
    if let Some(path) = bind.strip_prefix(UNIX_PREFIX) {
        if let Err(message) = unix_address(path) {
            violations.push(&bind_field, message);
        }
        if port.is_some_and(|port| port.number != 0) {
            violations.push(&bind_field, "port number must be 0 for unix domain socket");
        }
    } else if !bind.is_empty()
        && let Err(message) = ip_address(bind)
    {
        violations.push(&bind_field, message);
    }
}

/// Istio's `ValidateUnixAddress`: an absolute file path or an abstract socket.
pub(super) fn unix_address(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err("unix address must not be empty".to_string());
    }
    if path.starts_with('@') || (path.starts_with('/') && !path.ends_with('/')) {
        Ok(())
    } else {
        Err(format!("{path} is not an absolute path to a file"))
    }
}

/// TLS settings rustls can honour: versions 1.2 and 1.3, and for TLS 1.2
/// the ECDHE suites with AES-GCM or ChaCha20-Poly1305 (TLS 1.3 suites are
/// always offered and not configurable, as in Envoy). Istio would accept
/// TLS 1.0/1.1 and CBC suites; Trellis refuses them rather than serving
/// something other than what the config asks for.
fn validate_rustls_settings(violations: &mut Violations, field: &str, tls: &ServerTlsSettings) {
    for (name, version) in [
        ("minProtocolVersion", tls.min_protocol_version),
        ("maxProtocolVersion", tls.max_protocol_version),
    ] {
        if let Some(old @ (TlsProtocolVersion::V1_0 | TlsProtocolVersion::V1_1)) = version {
            violations.push(
                format!("{field}.{name}"),
                format!(
                    "{} is not supported: TLS 1.2 and 1.3 are (TLSV1_2, TLSV1_3, TLS_AUTO)",
                    old.as_str()
                ),
            );
        }
    }
    for (index, suite) in tls.cipher_suites.iter().enumerate() {
        if !SUPPORTED_CIPHER_SUITES.contains(&suite.as_str()) {
            violations.push(
                format!("{field}.cipherSuites[{index}]"),
                format!(
                    "cipher suite {suite:?} is not supported (no CBC, RSA key exchange or \
                     TLS 1.3 names); supported: {}",
                    SUPPORTED_CIPHER_SUITES.join(", ")
                ),
            );
        }
    }
}

/// Istio's `validateTLSOptions` for a server (gateway or sidecar ingress).
pub(super) fn validate_server_tls(
    violations: &mut Violations,
    field: &str,
    tls: &ServerTlsSettings,
) {
    validate_rustls_settings(violations, field, tls);
    if let (Some(min), Some(max)) = (tls.min_protocol_version, tls.max_protocol_version)
        && min != TlsProtocolVersion::Auto
        && max != TlsProtocolVersion::Auto
        && min > max
    {
        violations.push(
            format!("{field}.minProtocolVersion"),
            "Tls min protocol version must be less than or equal to max protocol version",
        );
    }
    let has = |value: &Option<String>| value.as_deref().is_some_and(|v| !v.is_empty());
    if tls.mode == ServerTlsMode::IstioMutual {
        let forbidden = [
            (
                has(&tls.server_certificate),
                "serverCertificate",
                "server certificate",
            ),
            (has(&tls.private_key), "privateKey", "private key"),
            (has(&tls.ca_certificates), "caCertificates", "CA bundle"),
            (
                has(&tls.credential_name),
                "credentialName",
                "credentialName",
            ),
        ];
        for (_, name, what) in forbidden.iter().filter(|(set, ..)| *set) {
            violations.push(
                format!("{field}.{name}"),
                format!("ISTIO_MUTUAL TLS cannot have associated {what}"),
            );
        }
        return;
    }
    let uses_credential = has(&tls.credential_name) || !tls.credential_names.is_empty();
    let terminates = matches!(
        tls.mode,
        ServerTlsMode::Simple | ServerTlsMode::Mutual | ServerTlsMode::OptionalMutual
    );
    if terminates && !uses_credential && tls.tls_certificates.is_empty() {
        let mode = if tls.mode == ServerTlsMode::Simple {
            "SIMPLE"
        } else {
            "MUTUAL"
        };
        if !has(&tls.server_certificate) {
            violations.push(
                format!("{field}.serverCertificate"),
                format!("{mode} TLS requires a server certificate"),
            );
        }
        if !has(&tls.private_key) {
            violations.push(
                format!("{field}.privateKey"),
                format!("{mode} TLS requires a private key"),
            );
        }
        if tls.mode != ServerTlsMode::Simple && !has(&tls.ca_certificates) {
            violations.push(
                format!("{field}.caCertificates"),
                "MUTUAL TLS requires a client CA bundle",
            );
        }
    }
    if has(&tls.ca_crl) {
        if uses_credential {
            violations.push(
                format!("{field}.caCrl"),
                "CRL is not supported with credentialName. CRL has to be specified in the credential",
            );
        }
        if tls.mode == ServerTlsMode::Simple {
            violations.push(
                format!("{field}.caCrl"),
                "CRL is not supported with SIMPLE TLS",
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::parse_yaml;

    /// The errors of a Gateway with one HTTPS server and `tls` settings.
    fn tls_problems(tls: &str) -> Vec<(String, String)> {
        let text = format!(
            "apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: edge}}
spec:
  servers:
  - port: {{number: 443, name: https, protocol: HTTPS}}
    hosts: [a.example.com]
    tls: {{mode: SIMPLE, credentialName: a-cert, {tls}}}
"
        );
        parse_yaml(Path::new("gateway.yaml"), &text)
            .errors
            .into_iter()
            .map(|e| (e.field, e.message))
            .collect()
    }

    #[test]
    fn accepts_what_rustls_offers() {
        let accepted = "minProtocolVersion: TLSV1_2, maxProtocolVersion: TLSV1_3, \
                        cipherSuites: [ECDHE-RSA-AES256-GCM-SHA384, ECDHE-ECDSA-CHACHA20-POLY1305]";
        assert_eq!(tls_problems(accepted), []);
    }

    #[test]
    fn refuses_old_versions_and_suites_naming_the_field() {
        let problems = tls_problems("minProtocolVersion: TLSV1_0, maxProtocolVersion: TLSV1_1");
        let fields: Vec<&str> = problems.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(
            fields,
            [
                "spec.servers[0].tls.minProtocolVersion",
                "spec.servers[0].tls.maxProtocolVersion"
            ]
        );
        assert!(
            problems[0].1.contains("TLSV1_0 is not supported"),
            "{problems:?}"
        );

        let problems = tls_problems("cipherSuites: [ECDHE-RSA-AES128-GCM-SHA256, AES128-SHA]");
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].0, "spec.servers[0].tls.cipherSuites[1]");
        assert!(problems[0].1.contains("\"AES128-SHA\" is not supported"));
    }
}
