//! Which application protocol a Service port speaks, by Istio's rules:
//! `appProtocol` first, then the port name's prefix (`http`, `http-web`,
//! `grpc-api`...), case-insensitively.

/// The protocol of a Service port, as far as the proxy needs to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// HTTP/1.1 (may be upgraded to HTTP/2).
    Http,
    /// HTTP/2, including cleartext h2c.
    Http2,
    Grpc,
    /// Opaque TCP, including TLS, HTTPS passed through, and databases.
    Tcp,
    /// Not declared (or not TCP): Istio sniffs the protocol of such ports.
    Unknown,
}

impl Protocol {
    /// Detects a port's protocol from its `name`, `appProtocol` and
    /// Kubernetes `protocol` (TCP, UDP, SCTP).
    pub fn detect(
        name: Option<&str>,
        app_protocol: Option<&str>,
        transport: Option<&str>,
    ) -> Protocol {
        if transport.is_some_and(|transport| !transport.eq_ignore_ascii_case("TCP")) {
            return Protocol::Unknown;
        }
        if let Some(protocol) = app_protocol.and_then(Protocol::from_app_protocol) {
            return protocol;
        }
        name.and_then(Protocol::from_port_name)
            .unwrap_or(Protocol::Unknown)
    }

    /// A ServiceEntry port's `protocol` (`HTTP`, `HTTPS`, `GRPC`, `TLS`...);
    /// one the proxy has no handling for (UDP) is `Unknown`.
    pub fn from_istio_protocol(protocol: &str) -> Protocol {
        Protocol::from_name(&protocol.to_ascii_lowercase()).unwrap_or(Protocol::Unknown)
    }

    /// `appProtocol` values: Istio's names plus Kubernetes' standard ones.
    fn from_app_protocol(app_protocol: &str) -> Option<Protocol> {
        match app_protocol.to_ascii_lowercase().as_str() {
            "kubernetes.io/h2c" => Some(Protocol::Http2),
            "kubernetes.io/ws" => Some(Protocol::Http),
            "kubernetes.io/wss" => Some(Protocol::Tcp),
            other => Protocol::from_name(other),
        }
    }

    /// Istio's port naming convention: `<protocol>[-<suffix>]`.
    fn from_port_name(name: &str) -> Option<Protocol> {
        let lower = name.to_ascii_lowercase();
        let prefix = lower.split('-').next().unwrap_or_default();
        Protocol::from_name(prefix)
    }

    fn from_name(name: &str) -> Option<Protocol> {
        Some(match name {
            "http" => Protocol::Http,
            "http2" | "h2c" => Protocol::Http2,
            "grpc" | "grpc-web" => Protocol::Grpc,
            "tcp" | "tls" | "https" | "mongo" | "mysql" | "redis" => Protocol::Tcp,
            _ => return None,
        })
    }

    /// Whether the proxy handles this port at HTTP level (routes, retries...).
    pub fn is_http(self) -> bool {
        matches!(self, Protocol::Http | Protocol::Http2 | Protocol::Grpc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_name_prefixes() {
        let detect = |name| Protocol::detect(Some(name), None, None);
        assert_eq!(detect("http"), Protocol::Http);
        assert_eq!(detect("http-web"), Protocol::Http);
        assert_eq!(detect("HTTP2"), Protocol::Http2);
        assert_eq!(detect("grpc-api"), Protocol::Grpc);
        assert_eq!(detect("grpc-web"), Protocol::Grpc);
        assert_eq!(detect("tcp-db"), Protocol::Tcp);
        assert_eq!(detect("mysql"), Protocol::Tcp);
        assert_eq!(detect("httpx"), Protocol::Unknown);
        assert_eq!(detect("web"), Protocol::Unknown);
    }

    #[test]
    fn app_protocol_wins_over_the_name() {
        assert_eq!(
            Protocol::detect(Some("http"), Some("grpc"), None),
            Protocol::Grpc
        );
        assert_eq!(
            Protocol::detect(Some("web"), Some("kubernetes.io/h2c"), Some("TCP")),
            Protocol::Http2
        );
        assert_eq!(Protocol::detect(None, None, None), Protocol::Unknown);
    }

    #[test]
    fn non_tcp_ports_are_not_classified() {
        assert_eq!(
            Protocol::detect(Some("http"), None, Some("UDP")),
            Protocol::Unknown
        );
    }
}
