//! RequestAuthentication checks, after Istio's `ValidateRequestAuthentication`.

use super::targets;
use crate::istio::{JwtRule, RequestAuthentication};
use crate::validate::Violations;
use crate::validate::network::fqdn;

pub(in crate::validate) fn validate_request_authentication(
    violations: &mut Violations,
    policy: &RequestAuthentication,
) {
    targets(
        violations,
        policy.selector.as_ref(),
        policy.target_ref.as_ref(),
        &policy.target_refs,
    );
    for (index, rule) in policy.jwt_rules.iter().enumerate() {
        validate_jwt_rule(violations, &format!("spec.jwtRules[{index}]"), rule);
    }
}

fn validate_jwt_rule(violations: &mut Violations, field: &str, rule: &JwtRule) {
    if rule.issuer.is_empty() {
        violations.push(format!("{field}.issuer"), "issuer must be set");
    }
    for (index, audience) in rule.audiences.iter().enumerate() {
        if audience.is_empty() {
            violations.push(
                format!("{field}.audiences[{index}]"),
                "audience must be non-empty string",
            );
        }
    }
    if !rule.jwks_uri.is_empty() {
        if !rule.jwks.is_empty() {
            violations.push(
                format!("{field}.jwks"),
                "only one of jwks or jwksUri can be set",
            );
        }
        if let Err(message) = http_url(&rule.jwks_uri) {
            violations.push(format!("{field}.jwksUri"), message);
        }
    }
    for (index, header) in rule.from_headers.iter().enumerate() {
        let field = format!("{field}.fromHeaders[{index}].name");
        if header.name.is_empty() {
            violations.push(field, "location header name must be non-empty string");
        } else if !is_header_name(&header.name) {
            violations.push(field, format!("invalid header name: {:?}", header.name));
        }
    }
    for (name, values, what) in [
        ("fromParams", &rule.from_params, "location query"),
        ("fromCookies", &rule.from_cookies, "cookie name"),
    ] {
        for (index, value) in values.iter().enumerate() {
            if value.is_empty() {
                violations.push(
                    format!("{field}.{name}[{index}]"),
                    format!("{what} must be non-empty string"),
                );
            }
        }
    }
    output_headers(violations, field, rule);
    violations.duration(&format!("{field}.timeout"), rule.timeout.as_deref(), false);
}

fn output_headers(violations: &mut Violations, field: &str, rule: &JwtRule) {
    let payload = &rule.output_payload_to_header;
    if !payload.is_empty() && !is_header_name(payload) {
        violations.push(
            format!("{field}.outputPayloadToHeader"),
            format!("invalid header name: {payload:?}"),
        );
    }
    for (index, output) in rule.output_claim_to_headers.iter().enumerate() {
        let field = format!("{field}.outputClaimToHeaders[{index}]");
        if output.header.is_empty() || output.claim.is_empty() {
            violations.push(
                &field,
                "outputClaimToHeader header and claim value must be non-empty string",
            );
        } else if !is_header_name(&output.header) {
            violations.push(
                format!("{field}.header"),
                format!("invalid header name: {:?}", output.header),
            );
        }
    }
}

/// A header name as HTTP defines it (an RFC 9110 token); pseudo-headers
/// (`:path`) are not headers a policy may name.
fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// An absolute `http` or `https` URL with a host: where the control plane
/// fetches keys from.
fn http_url(uri: &str) -> Result<(), String> {
    let invalid = |why: &str| Err(format!("invalid jwksUri {uri:?}: {why}"));
    let Some((scheme, rest)) = uri.split_once("://") else {
        return invalid("not an absolute URL");
    };
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return invalid("the scheme must be http or https");
    }
    if uri
        .bytes()
        .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
    {
        return invalid("contains whitespace");
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') {
        return invalid("credentials in the URL are not supported");
    }
    let (host, port) = split_host_port(authority);
    if let Some(port) = port
        && !matches!(port.parse::<u16>(), Ok(1..))
    {
        return invalid("invalid port");
    }
    let ip_literal = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if host.is_empty() || (ip_literal.parse::<std::net::IpAddr>().is_err() && fqdn(host).is_err()) {
        return invalid("missing or invalid host");
    }
    Ok(())
}

/// `host:port`, `[v6]:port`, or a host alone.
fn split_host_port(authority: &str) -> (&str, Option<&str>) {
    if authority.starts_with('[') {
        return match authority.split_once("]:") {
            Some((host, port)) => (&authority[..host.len() + 1], Some(port)),
            None => (authority, None),
        };
    }
    match authority.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (authority, None),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::{AnyResource, parse_yaml};

    /// `FIELD@LINE: message` for each error of a RequestAuthentication
    /// with `spec`, under both API versions.
    fn errors(spec: &str) -> Vec<String> {
        let mut seen = Vec::new();
        for version in ["security.istio.io/v1", "security.istio.io/v1beta1"] {
            let text = format!(
                "apiVersion: {version}\nkind: RequestAuthentication\nmetadata: {{name: jwt}}\nspec:\n{spec}"
            );
            let outcome = parse_yaml(Path::new("jwt.yaml"), &text);
            let found: Vec<String> = outcome
                .errors
                .iter()
                .map(|e| format!("{}@{}: {}", e.field, e.position().line, e.message))
                .collect();
            if found.is_empty() {
                assert!(matches!(
                    outcome.resources.as_slice(),
                    [AnyResource::RequestAuthentication(_)]
                ));
            }
            seen = found;
        }
        seen
    }

    #[test]
    fn accepts_istio_examples() {
        let spec = "  selector: {matchLabels: {app: httpbin}}\n  jwtRules:\n  - issuer: testing@secure.istio.io\n    jwksUri: https://raw.githubusercontent.com/istio/istio/release-1.28/security/tools/jwt/samples/jwks.json\n    audiences: [app1]\n    fromHeaders: [{name: x-jwt-assertion, prefix: 'Bearer '}]\n    fromParams: [my_token]\n    fromCookies: [session]\n    outputPayloadToHeader: x-jwt-payload\n    outputClaimToHeaders: [{header: x-jwt-group, claim: groups}]\n    forwardOriginalToken: true\n    timeout: 5s\n";
        assert_eq!(errors(spec), Vec::<String>::new());
        let inline = "  jwtRules:\n  - issuer: a\n    jwks: '{\"keys\": []}'\n";
        assert_eq!(errors(inline), Vec::<String>::new());
    }

    #[test]
    fn rejects_what_istio_rejects_with_the_line() {
        let spec = "  jwtRules:\n  - issuer: ''\n    jwksUri: ftp://example.com/keys\n    jwks: '{}'\n    audiences: ['']\n    fromHeaders: [{name: ''}, {name: 'bad header'}]\n    fromParams: ['']\n    outputClaimToHeaders: [{header: x-a, claim: ''}, {header: ':path', claim: sub}]\n    timeout: 0s\n";
        assert_eq!(
            errors(spec),
            [
                "spec.jwtRules[0].issuer@6: issuer must be set",
                "spec.jwtRules[0].audiences[0]@9: audience must be non-empty string",
                "spec.jwtRules[0].jwks@8: only one of jwks or jwksUri can be set",
                "spec.jwtRules[0].jwksUri@7: invalid jwksUri \"ftp://example.com/keys\": the scheme must be http or https",
                "spec.jwtRules[0].fromHeaders[0].name@10: location header name must be non-empty string",
                "spec.jwtRules[0].fromHeaders[1].name@10: invalid header name: \"bad header\"",
                "spec.jwtRules[0].fromParams[0]@11: location query must be non-empty string",
                "spec.jwtRules[0].outputClaimToHeaders[0]@12: outputClaimToHeader header and claim value must be non-empty string",
                "spec.jwtRules[0].outputClaimToHeaders[1].header@12: invalid header name: \":path\"",
                "spec.jwtRules[0].timeout@13: duration must be greater than 1ms",
            ]
        );
        let both =
            "  selector: {matchLabels: {app: a}}\n  targetRefs: [{kind: Gateway, name: gw}]\n";
        assert_eq!(
            errors(both),
            ["spec@4: only one of targetRefs or workloadSelector can be set"]
        );
        let typo = "apiVersion: security.istio.io/v1\nkind: RequestAuthentication\nmetadata: {name: jwt}\nspec:\n  jwtRules: [{issuer: a, jwksURL: x}]\n";
        let outcome = parse_yaml(Path::new("jwt.yaml"), typo);
        let warnings: Vec<&str> = outcome.warnings.iter().map(|w| w.field.as_str()).collect();
        assert_eq!(warnings, ["spec.jwtRules[0].jwksURL"]);
    }

    #[test]
    fn jwks_uris_must_be_http_urls_with_a_host() {
        for good in [
            "https://example.com/.well-known/jwks.json",
            "http://127.0.0.1:8080/jwks",
            "http://[::1]:9000/keys",
            "https://issuer.example.com",
        ] {
            assert_eq!(http_url(good), Ok(()), "{good}");
        }
        for bad in [
            "example.com/jwks",
            "ftp://example.com/jwks",
            "https:///jwks",
            "https://exa mple.com/",
            "http://example.com:0/",
            "http://example.com:99999/",
            "http://user:pw@example.com/",
        ] {
            assert!(http_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn header_names_are_tokens() {
        assert!(is_header_name("x-jwt-payload"));
        assert!(!is_header_name(":path"));
        assert!(!is_header_name("x jwt"));
        assert!(!is_header_name(""));
    }
}
