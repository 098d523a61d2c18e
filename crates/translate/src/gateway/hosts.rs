//! Gateway server hosts (`namespace/host`) against VirtualService hosts,
//! with Istio's wildcards: `*` matches any host, `*.example.com` any host
//! ending in `.example.com` (including narrower wildcards).

use trellis_config::service_hostname;

/// One entry of a server's `hosts`: which VirtualServices may bind to it
/// (by namespace) and for which host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerHost {
    namespace: NamespaceScope,
    host: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum NamespaceScope {
    /// `*/host`, or a host without a namespace: any namespace.
    Any,
    /// `./host`: the Gateway's own namespace.
    Gateway,
    Named(String),
}

impl ServerHost {
    pub fn parse(raw: &str) -> ServerHost {
        let (namespace, host) = match raw.split_once('/') {
            None | Some(("*", _)) => (NamespaceScope::Any, raw.rsplit('/').next().unwrap_or(raw)),
            Some((".", host)) => (NamespaceScope::Gateway, host),
            Some((namespace, host)) => (NamespaceScope::Named(namespace.to_owned()), host),
        };
        ServerHost {
            namespace,
            host: host.to_ascii_lowercase(),
        }
    }

    /// Whether a VirtualService in `vs_namespace` may bind to this host of
    /// a Gateway in `gateway_namespace`.
    pub fn admits(&self, vs_namespace: &str, gateway_namespace: &str) -> bool {
        match &self.namespace {
            NamespaceScope::Any => true,
            NamespaceScope::Gateway => vs_namespace == gateway_namespace,
            NamespaceScope::Named(namespace) => vs_namespace == namespace,
        }
    }

    pub fn host(&self) -> &str {
        &self.host
    }
}

/// A VirtualService host as a gateway sees it: short names are Services of
/// the VirtualService's namespace (`reviews` ->
/// `reviews.default.svc.cluster.local`), as Istio resolves them.
pub fn qualified_vs_host(host: &str, vs_namespace: &str) -> String {
    let host = host.to_ascii_lowercase();
    if host.contains('.') || host.contains('*') || host.parse::<std::net::IpAddr>().is_ok() {
        host
    } else {
        service_hostname(&host, vs_namespace)
    }
}

/// The hosts both patterns match, as one pattern: the narrower of the two
/// (Istio serves a VirtualService host under a wider server host as
/// itself, and a wider VirtualService host as the server's host).
pub fn intersection(vs_host: &str, server_host: &str) -> Option<String> {
    if covers(server_host, vs_host) {
        Some(vs_host.to_owned())
    } else if covers(vs_host, server_host) {
        Some(server_host.to_owned())
    } else {
        None
    }
}

/// Whether every host `host` matches is also matched by `pattern`.
fn covers(pattern: &str, host: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    match pattern.strip_prefix('*') {
        // `*.example.com` covers `a.example.com` and `*.a.example.com`.
        Some(suffix) => host == pattern || (host.ends_with(suffix) && host.len() > suffix.len()),
        None => host == pattern,
    }
}

/// The Envoy virtual host domains for a host: any port for a named host
/// (Host headers carry the port unless it is the default one).
pub fn domains(host: &str) -> Vec<String> {
    if host == "*" || host.starts_with('*') {
        // Envoy accepts one wildcard per domain, so `*.example.com:*`
        // cannot be written; wildcard hosts match Host headers without a
        // port (and `*` matches everything).
        vec![host.to_owned()]
    } else {
        vec![host.to_owned(), format!("{host}:*")]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_namespace_scopes() {
        let any = ServerHost::parse("*/bookinfo.example.com");
        assert_eq!(any.host(), "bookinfo.example.com");
        assert!(any.admits("shop", "istio-system"));
        assert!(ServerHost::parse("Example.COM").admits("a", "b"));
        assert_eq!(ServerHost::parse("Example.COM").host(), "example.com");
        let own = ServerHost::parse("./*");
        assert!(own.admits("istio-system", "istio-system"));
        assert!(!own.admits("default", "istio-system"));
        let named = ServerHost::parse("shop/*.example.com");
        assert!(named.admits("shop", "istio-system"));
        assert!(!named.admits("default", "istio-system"));
        assert_eq!(named.host(), "*.example.com");
    }

    #[test]
    fn intersects_with_the_narrower_host() {
        assert_eq!(intersection("*", "*"), Some("*".into()));
        assert_eq!(
            intersection("a.example.com", "*"),
            Some("a.example.com".into())
        );
        assert_eq!(
            intersection("*", "a.example.com"),
            Some("a.example.com".into())
        );
        assert_eq!(
            intersection("a.example.com", "*.example.com"),
            Some("a.example.com".into())
        );
        assert_eq!(
            intersection("*.example.com", "*.a.example.com"),
            Some("*.a.example.com".into())
        );
        assert_eq!(intersection("example.com", "*.example.com"), None);
        assert_eq!(intersection("a.example.org", "*.example.com"), None);
        assert_eq!(intersection("a.example.com", "b.example.com"), None);
    }

    #[test]
    fn qualifies_short_service_names() {
        assert_eq!(
            qualified_vs_host("productpage", "default"),
            "productpage.default.svc.cluster.local"
        );
        assert_eq!(qualified_vs_host("*", "default"), "*");
        assert_eq!(
            qualified_vs_host("Bookinfo.Example.com", "x"),
            "bookinfo.example.com"
        );
        assert_eq!(qualified_vs_host("10.0.0.1", "x"), "10.0.0.1");
    }

    #[test]
    fn named_hosts_match_any_port() {
        assert_eq!(domains("*"), ["*"]);
        assert_eq!(domains("*.example.com"), ["*.example.com"]);
        assert_eq!(
            domains("a.example.com"),
            ["a.example.com", "a.example.com:*"]
        );
    }
}
