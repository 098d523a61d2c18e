//! What a gateway server is, from its port protocol and `tls`: plain HTTP
//! (optionally redirecting to HTTPS), plain TCP, HTTPS or TLS terminated at
//! the gateway (see [`Termination`]), or TLS passed through by SNI.
//! Everything else is a [`Skipped`] reason, which the translator logs.

use std::fmt;

use trellis_api::{ServerTlsMode, ServerTlsSettings, TlsProtocolVersion};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerKind {
    /// `httpsRedirect`: every request is redirected to HTTPS.
    Http { https_redirect: bool },
    /// TLS terminated, then HTTP routes (protocol HTTPS).
    Https(Termination),
    /// TLS terminated, then `tcp` routes (protocol TLS, a terminating mode).
    TerminatedTcp(Termination),
    /// TLS forwarded as is, chosen by SNI (`tls` routes' `sniHosts`).
    Passthrough,
    /// Plain TCP (`tcp` routes).
    Tcp,
}

/// How a listener port carries its servers: every server of a port must
/// agree (HTTP servers share routes, TLS servers are chains by SNI).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Http,
    Tls,
    Tcp,
}

impl ServerKind {
    pub fn transport(&self) -> Transport {
        match self {
            ServerKind::Http { .. } => Transport::Http,
            ServerKind::Tcp => Transport::Tcp,
            ServerKind::Https(_) | ServerKind::TerminatedTcp(_) | ServerKind::Passthrough => {
                Transport::Tls
            }
        }
    }
}

/// TLS terminated at the gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Termination {
    pub certificate: Certificate,
    pub min_version: Option<TlsProtocolVersion>,
    pub max_version: Option<TlsProtocolVersion>,
    pub cipher_suites: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Certificate {
    /// `credentialName`, with clients verified against its CA
    /// (`NAME-cacert`) when `clients` says so.
    Credential { name: String, clients: Clients },
    /// ISTIO_MUTUAL: the gateway's mesh certificate, mesh clients only.
    Mesh,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clients {
    /// SIMPLE: no client certificates asked for.
    Anonymous,
    /// MUTUAL: a client certificate the CA signed is required.
    Required,
    /// OPTIONAL_MUTUAL: verified when presented.
    Optional,
}

/// Why a server is not served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Skipped {
    NoPort,
    InvalidPort(u32),
    Protocol(String),
    Bind(String),
    /// Another server already maps to the same listener port.
    PortClash {
        listen_port: u16,
        other: u16,
    },
    /// Servers of different transports (HTTP, TLS, TCP) on one port.
    TransportClash(u16),
    /// Another TLS server of the port takes the same SNI names.
    DuplicateServerNames(Vec<String>),
    NoTls,
    TlsMode(&'static str),
    NoCredential,
    TlsSetting(&'static str),
}

impl fmt::Display for Skipped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Skipped::NoPort => write!(f, "the server has no port"),
            Skipped::InvalidPort(port) => write!(f, "port {port} is not a TCP port"),
            Skipped::Protocol(protocol) => write!(
                f,
                "protocol {protocol} is not served by gateways \
                 (HTTP, HTTP2, GRPC, GRPC-WEB, HTTPS, TLS and TCP are)"
            ),
            Skipped::Bind(bind) => write!(f, "server.bind ({bind}) is not supported yet"),
            Skipped::PortClash { listen_port, other } => write!(
                f,
                "it would listen on {listen_port}, where port {other} is already served"
            ),
            Skipped::TransportClash(port) => write!(
                f,
                "port {port} already serves another of plain HTTP, TLS and plain TCP"
            ),
            Skipped::DuplicateServerNames(names) => {
                write!(f, "another TLS server of the port takes hosts {names:?}")
            }
            Skipped::NoTls => write!(f, "an HTTPS or TLS server needs `tls`"),
            Skipped::TlsMode(mode) => write!(f, "TLS mode {mode} is not served yet"),
            Skipped::NoCredential => write!(
                f,
                "a terminating TLS mode needs one credentialName \
                 (certificate files are not supported)"
            ),
            Skipped::TlsSetting(field) => write!(f, "tls.{field} is not supported"),
        }
    }
}

pub fn server_kind(protocol: &str, tls: Option<&ServerTlsSettings>) -> Result<ServerKind, Skipped> {
    let protocol = protocol.to_ascii_uppercase();
    match protocol.as_str() {
        "HTTP" | "HTTP2" | "GRPC" | "GRPC-WEB" => Ok(ServerKind::Http {
            https_redirect: tls.is_some_and(|tls| tls.https_redirect),
        }),
        "TCP" => Ok(ServerKind::Tcp),
        "HTTPS" | "TLS" => {
            let tls = tls.ok_or(Skipped::NoTls)?;
            if tls.mode == ServerTlsMode::Passthrough {
                return Ok(ServerKind::Passthrough);
            }
            let termination = termination(tls)?;
            Ok(if protocol == "HTTPS" {
                ServerKind::Https(termination)
            } else {
                ServerKind::TerminatedTcp(termination)
            })
        }
        _ => Err(Skipped::Protocol(protocol)),
    }
}

/// How a terminating server presents itself and treats clients, refusing
/// settings not honoured.
fn termination(tls: &ServerTlsSettings) -> Result<Termination, Skipped> {
    let clients = match tls.mode {
        ServerTlsMode::Simple => Clients::Anonymous,
        ServerTlsMode::Mutual => Clients::Required,
        ServerTlsMode::OptionalMutual => Clients::Optional,
        ServerTlsMode::IstioMutual => Clients::Required,
        mode @ (ServerTlsMode::Passthrough | ServerTlsMode::AutoPassthrough) => {
            return Err(Skipped::TlsMode(mode.as_str()));
        }
    };
    let old = |v: Option<TlsProtocolVersion>| {
        matches!(v, Some(TlsProtocolVersion::V1_0 | TlsProtocolVersion::V1_1))
    };
    let unsupported = [
        (
            old(tls.min_protocol_version),
            "minProtocolVersion below TLSV1_2",
        ),
        (
            old(tls.max_protocol_version),
            "maxProtocolVersion below TLSV1_2",
        ),
        (!tls.subject_alt_names.is_empty(), "subjectAltNames"),
        (
            !tls.verify_certificate_spki.is_empty(),
            "verifyCertificateSpki",
        ),
        (
            !tls.verify_certificate_hash.is_empty(),
            "verifyCertificateHash",
        ),
        (tls.https_redirect, "httpsRedirect on an HTTPS server"),
        (
            // The mesh certificate's TLS settings are the mesh's own.
            tls.mode == ServerTlsMode::IstioMutual
                && (tls.min_protocol_version.is_some()
                    || tls.max_protocol_version.is_some()
                    || !tls.cipher_suites.is_empty()),
            "minProtocolVersion, maxProtocolVersion or cipherSuites with ISTIO_MUTUAL",
        ),
    ];
    if let Some((_, field)) = unsupported.iter().find(|(set, _)| *set) {
        return Err(Skipped::TlsSetting(field));
    }
    let certificate = if tls.mode == ServerTlsMode::IstioMutual {
        Certificate::Mesh
    } else {
        Certificate::Credential {
            name: credential(tls)?,
            clients,
        }
    };
    Ok(Termination {
        certificate,
        min_version: tls.min_protocol_version,
        max_version: tls.max_protocol_version,
        cipher_suites: tls.cipher_suites.clone(),
    })
}

fn credential(tls: &ServerTlsSettings) -> Result<String, Skipped> {
    let files = tls.server_certificate.is_some()
        || tls.private_key.is_some()
        || tls.ca_certificates.is_some()
        || tls.ca_crl.is_some()
        || !tls.tls_certificates.is_empty();
    match (
        tls.credential_name.as_deref(),
        tls.credential_names.as_slice(),
    ) {
        _ if files => Err(Skipped::NoCredential),
        (Some(name), []) if !name.is_empty() => Ok(name.to_owned()),
        (None, [name]) if !name.is_empty() => Ok(name.clone()),
        _ => Err(Skipped::NoCredential),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tls(mode: ServerTlsMode, credential: Option<&str>) -> ServerTlsSettings {
        ServerTlsSettings {
            mode,
            credential_name: credential.map(str::to_owned),
            ..Default::default()
        }
    }

    fn credential(name: &str, clients: Clients) -> Termination {
        Termination {
            certificate: Certificate::Credential {
                name: name.into(),
                clients,
            },
            min_version: None,
            max_version: None,
            cipher_suites: Vec::new(),
        }
    }

    #[test]
    fn plain_protocols_are_served() {
        for protocol in ["http", "HTTP2", "GRPC", "GRPC-WEB"] {
            assert_eq!(
                server_kind(protocol, None),
                Ok(ServerKind::Http {
                    https_redirect: false
                })
            );
        }
        assert_eq!(server_kind("tcp", None), Ok(ServerKind::Tcp));
    }

    #[test]
    fn tls_modes_terminate_or_pass_through() {
        let kind = |protocol: &str, mode, name| server_kind(protocol, Some(&tls(mode, name)));
        let bookinfo = Some("bookinfo");
        assert_eq!(
            kind("HTTPS", ServerTlsMode::Simple, bookinfo),
            Ok(ServerKind::Https(credential(
                "bookinfo",
                Clients::Anonymous
            )))
        );
        assert_eq!(
            kind("HTTPS", ServerTlsMode::Mutual, bookinfo),
            Ok(ServerKind::Https(credential("bookinfo", Clients::Required)))
        );
        assert_eq!(
            kind("TLS", ServerTlsMode::OptionalMutual, bookinfo),
            Ok(ServerKind::TerminatedTcp(credential(
                "bookinfo",
                Clients::Optional
            )))
        );
        let Ok(ServerKind::Https(mesh)) = kind("HTTPS", ServerTlsMode::IstioMutual, None) else {
            panic!("ISTIO_MUTUAL terminates");
        };
        assert_eq!(mesh.certificate, Certificate::Mesh);
        assert_eq!(
            kind("TLS", ServerTlsMode::Passthrough, None),
            Ok(ServerKind::Passthrough)
        );
    }

    #[test]
    fn says_why_a_server_is_skipped() {
        let skipped = |protocol: &str, tls: Option<&ServerTlsSettings>| {
            server_kind(protocol, tls).unwrap_err().to_string()
        };
        assert!(skipped("MONGO", None).contains("protocol MONGO"));
        assert!(skipped("HTTPS", None).contains("needs `tls`"));
        let auto = tls(ServerTlsMode::AutoPassthrough, None);
        assert!(skipped("TLS", Some(&auto)).contains("AUTO_PASSTHROUGH"));
        let no_credential = tls(ServerTlsMode::Simple, None);
        assert!(skipped("HTTPS", Some(&no_credential)).contains("one credentialName"));
        let mut files = tls(ServerTlsMode::Simple, Some("bookinfo"));
        files.server_certificate = Some("/etc/certs/cert.pem".into());
        assert!(skipped("HTTPS", Some(&files)).contains("certificate files"));
        let mut old = tls(ServerTlsMode::Simple, Some("bookinfo"));
        old.min_protocol_version = Some(TlsProtocolVersion::V1_1);
        assert!(skipped("HTTPS", Some(&old)).contains("minProtocolVersion"));
        let mut sans = tls(ServerTlsMode::Mutual, Some("bookinfo"));
        sans.subject_alt_names = vec!["spiffe://x".into()];
        assert!(skipped("HTTPS", Some(&sans)).contains("subjectAltNames"));
        let mut mesh = tls(ServerTlsMode::IstioMutual, None);
        mesh.cipher_suites = vec!["ECDHE-RSA-AES128-GCM-SHA256".into()];
        assert!(skipped("HTTPS", Some(&mesh)).contains("with ISTIO_MUTUAL"));
    }
}
