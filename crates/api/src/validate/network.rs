//! Checks shared by the networking kinds: host names with wildcards,
//! `namespace/host` references, IP addresses, CIDR blocks and protocols,
//! with Istio's messages.

use std::net::IpAddr;

/// Istio's `ValidateWildcardDomain`: a DNS name whose first label may be
/// `*` or start with `*`, e.g. `*`, `*.example.com`, `reviews.default`.
pub(crate) fn wildcard_domain(domain: &str) -> Result<(), String> {
    domain_preconditions(domain)?;
    let (first, rest) = match domain.split_once('.') {
        Some((first, rest)) => (first, Some(rest)),
        None => (domain, None),
    };
    if !is_wildcard_label(first) {
        return Err(format!(
            "domain name {domain:?} invalid (label {first:?} invalid)"
        ));
    }
    match rest {
        Some(rest) => dns1123_labels(domain, rest),
        None => Ok(()),
    }
}

/// Istio's `ValidateFQDN`: a DNS name without wildcards.
pub(crate) fn fqdn(domain: &str) -> Result<(), String> {
    domain_preconditions(domain)?;
    dns1123_labels(domain, domain)
}

fn domain_preconditions(domain: &str) -> Result<(), String> {
    if domain.len() > 255 {
        return Err(format!("domain name {domain:?} too long (max 255)"));
    }
    if domain.is_empty() {
        return Err("empty domain name not allowed".to_string());
    }
    Ok(())
}

/// Every label of `labels` (part of `domain`) is a DNS-1123 label, the last
/// may be empty (a trailing dot) and the top-level one is not all digits.
fn dns1123_labels(domain: &str, labels: &str) -> Result<(), String> {
    let parts: Vec<&str> = labels.split('.').collect();
    let last = parts.len() - 1;
    let top_level = parts[last];
    if !top_level.is_empty() && top_level.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "domain name {domain:?} invalid (top level domain {top_level:?} cannot be all-numeric)"
        ));
    }
    for (index, label) in parts.iter().enumerate() {
        if index == last && label.is_empty() {
            continue;
        }
        if !is_host_label(label) {
            return Err(format!(
                "domain name {domain:?} invalid (label {label:?} invalid)"
            ));
        }
    }
    Ok(())
}

/// A DNS-1123 label, letters of either case (host names are case-insensitive).
fn is_host_label(label: &str) -> bool {
    let bytes = label.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'-')
        && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
}

fn is_wildcard_label(label: &str) -> bool {
    label == "*" || label.strip_prefix('*').is_some_and(is_host_label) || is_host_label(label)
}

/// Where a `namespace/host` reference is written: the two places differ in
/// which namespace wildcards they accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HostScope {
    /// Gateway server hosts: `*`, `.` or a namespace; the namespace part is optional.
    Gateway,
    /// Sidecar egress hosts: `*`, `.`, `~` or a namespace; required.
    Sidecar,
}

/// Istio's `ValidateNamespaceSlashWildcardHostname`.
pub(crate) fn namespace_slash_host(value: &str, scope: HostScope) -> Result<(), String> {
    let Some((namespace, host)) = value.split_once('/') else {
        return match scope {
            HostScope::Gateway => wildcard_domain(value),
            HostScope::Sidecar => Err("host must be of form namespace/dnsName".to_string()),
        };
    };
    if namespace.is_empty() || host.is_empty() {
        return Err("config namespace and dnsName in host entry cannot be empty".to_string());
    }
    let wildcard = match scope {
        HostScope::Gateway => matches!(namespace, "*" | "."),
        HostScope::Sidecar => matches!(namespace, "*" | "." | "~"),
    };
    if !wildcard && !super::is_dns1123_label(namespace) {
        let place = match scope {
            HostScope::Gateway => "gateway",
            HostScope::Sidecar => "sidecar",
        };
        return Err(format!("invalid namespace value {namespace:?} in {place}"));
    }
    wildcard_domain(host)
}

pub(crate) fn ip_address(value: &str) -> Result<(), String> {
    value
        .parse::<IpAddr>()
        .map(|_| ())
        .map_err(|_| format!("{value} is not a valid IP"))
}

/// An IP address or a CIDR block (`10.0.0.0/8`, `2001:db8::/32`).
pub(crate) fn ip_or_cidr(value: &str) -> Result<(), String> {
    let Some((address, bits)) = value.split_once('/') else {
        return ip_address(value);
    };
    let invalid = || format!("{value} is not a valid CIDR block");
    let address: IpAddr = address.parse().map_err(|_| invalid())?;
    let max_bits = if address.is_ipv4() { 32 } else { 128 };
    match bits.parse::<u8>() {
        Ok(bits) if bits <= max_bits => Ok(()),
        _ => Err(invalid()),
    }
}

/// The protocols Istio recognises on ports (`protocol.Parse`), case-insensitive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Http,
    HttpProxy,
    Http2,
    Https,
    Grpc,
    GrpcWeb,
    Tcp,
    Tls,
    Udp,
    Mongo,
    Redis,
    Mysql,
}

impl Protocol {
    /// `None` for a protocol Istio does not know.
    pub fn parse(value: &str) -> Option<Protocol> {
        Some(match value.to_ascii_lowercase().as_str() {
            "http" => Protocol::Http,
            "http_proxy" => Protocol::HttpProxy,
            "http2" => Protocol::Http2,
            "https" => Protocol::Https,
            "grpc" => Protocol::Grpc,
            "grpc-web" => Protocol::GrpcWeb,
            "tcp" => Protocol::Tcp,
            "tls" => Protocol::Tls,
            "udp" => Protocol::Udp,
            "mongo" => Protocol::Mongo,
            "redis" => Protocol::Redis,
            "mysql" => Protocol::Mysql,
            _ => return None,
        })
    }

    pub fn is_http(self) -> bool {
        matches!(
            self,
            Protocol::Http
                | Protocol::HttpProxy
                | Protocol::Http2
                | Protocol::Grpc
                | Protocol::GrpcWeb
        )
    }

    pub fn is_tls(self) -> bool {
        matches!(self, Protocol::Https | Protocol::Tls)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_domains() {
        for good in [
            "*",
            "*.example.com",
            "reviews",
            "Reviews.default.svc.cluster.local.",
            "*bar.com",
        ] {
            assert_eq!(wildcard_domain(good), Ok(()), "{good}");
        }
        let cases = [
            ("", "empty domain name not allowed"),
            (
                "a.*.com",
                "domain name \"a.*.com\" invalid (label \"*\" invalid)",
            ),
            (
                "foo.123",
                "domain name \"foo.123\" invalid (top level domain \"123\" cannot be all-numeric)",
            ),
            (
                "-a.com",
                "domain name \"-a.com\" invalid (label \"-a\" invalid)",
            ),
        ];
        for (bad, message) in cases {
            assert_eq!(wildcard_domain(bad), Err(message.to_string()), "{bad}");
        }
        assert!(fqdn("*.example.com").is_err());
    }

    #[test]
    fn namespace_slash_hosts() {
        assert_eq!(namespace_slash_host("*/*", HostScope::Sidecar), Ok(()));
        assert_eq!(namespace_slash_host("~/*", HostScope::Sidecar), Ok(()));
        assert_eq!(
            namespace_slash_host("example.com", HostScope::Gateway),
            Ok(())
        );
        assert_eq!(
            namespace_slash_host("example.com", HostScope::Sidecar),
            Err("host must be of form namespace/dnsName".into())
        );
        assert_eq!(
            namespace_slash_host("~/a.com", HostScope::Gateway),
            Err("invalid namespace value \"~\" in gateway".into())
        );
        assert_eq!(
            namespace_slash_host("/a.com", HostScope::Gateway),
            Err("config namespace and dnsName in host entry cannot be empty".into())
        );
    }

    #[test]
    fn addresses_and_blocks() {
        assert_eq!(ip_or_cidr("10.0.0.0/8"), Ok(()));
        assert_eq!(ip_or_cidr("2001:db8::/32"), Ok(()));
        assert_eq!(ip_or_cidr("192.168.1.1"), Ok(()));
        assert_eq!(
            ip_or_cidr("10.0.0.0/33"),
            Err("10.0.0.0/33 is not a valid CIDR block".into())
        );
        assert_eq!(ip_or_cidr("host"), Err("host is not a valid IP".into()));
    }

    #[test]
    fn protocols_are_case_insensitive() {
        assert_eq!(Protocol::parse("grpc-WEB"), Some(Protocol::GrpcWeb));
        assert!(Protocol::parse("HTTPS").unwrap().is_tls());
        assert!(Protocol::parse("http2").unwrap().is_http());
        assert_eq!(Protocol::parse("thrift"), None);
    }
}
