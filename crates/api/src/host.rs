//! Host names as Istio resolves and compares them (the analyzers, and
//! which hosts a Sidecar imports).

/// The cluster's DNS domain, as Kubernetes' default.
pub const DOMAIN_SUFFIX: &str = "svc.cluster.local";

/// Istio's short-name rule: a host without a dot is a Service in the
/// namespace of the resource that names it (`reviews` written in `default`
/// is `reviews.default.svc.cluster.local`); anything else is taken as
/// written, so `reviews.default` is not expanded.
pub fn resolve(host: &str, namespace: &str) -> String {
    if host == "*" || host.contains('.') || host.contains(':') {
        host.to_string()
    } else {
        format!("{host}.{namespace}.{DOMAIN_SUFFIX}")
    }
}

/// The fully qualified name of a Kubernetes Service.
pub fn service_fqdn(name: &str, namespace: &str) -> String {
    format!("{name}.{namespace}.{DOMAIN_SUFFIX}")
}

/// True when the two names can denote a common host (Istio's
/// `host.Name.Matches`): equal, or a wildcard (`*`, `*.example.com`) that
/// covers the other, or two wildcards one of which covers the other.
pub fn overlaps(a: &str, b: &str) -> bool {
    let a = a.to_ascii_lowercase();
    let b = b.to_ascii_lowercase();
    match (a.strip_prefix('*'), b.strip_prefix('*')) {
        (None, None) => a == b,
        (Some(suffix), None) => b.ends_with(suffix),
        (None, Some(suffix)) => a.ends_with(suffix),
        (Some(x), Some(y)) => x.ends_with(y) || y.ends_with(x),
    }
}

/// True when `wildcard` covers every name `host` can denote.
pub fn covers(wildcard: &str, host: &str) -> bool {
    let wildcard = wildcard.to_ascii_lowercase();
    let host = host.to_ascii_lowercase();
    match (wildcard.strip_prefix('*'), host.strip_prefix('*')) {
        (None, None) => wildcard == host,
        (Some(suffix), None) => host.ends_with(suffix),
        (Some(x), Some(y)) => y.ends_with(x),
        (None, Some(_)) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_resolve_in_the_namespace_of_the_reference() {
        assert_eq!(
            resolve("reviews", "default"),
            "reviews.default.svc.cluster.local"
        );
        assert_eq!(resolve("reviews.prod", "default"), "reviews.prod");
        assert_eq!(resolve("*", "default"), "*");
        assert_eq!(resolve("10.0.0.1", "default"), "10.0.0.1");
    }

    #[test]
    fn wildcards_overlap_and_cover() {
        let cases = [
            ("a.example.com", "a.example.com", true, true),
            ("*.example.com", "a.example.com", true, true),
            ("*", "anything.at.all", true, true),
            ("a.example.com", "*.example.com", true, false),
            ("*.example.com", "*.a.example.com", true, true),
            ("*.a.example.com", "*.example.com", true, false),
            ("a.example.com", "b.example.com", false, false),
            ("*.example.com", "example.org", false, false),
        ];
        for (a, b, overlap, cover) in cases {
            assert_eq!(overlaps(a, b), overlap, "overlaps({a}, {b})");
            assert_eq!(covers(a, b), cover, "covers({a}, {b})");
        }
    }
}
