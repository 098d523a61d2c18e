//! `%DYNAMIC_METADATA(NAMESPACE:KEY*)%` (and its spelling
//! `%METADATA(DYNAMIC:NAMESPACE:KEY*)%`) for the dynamic metadata this
//! proxy has: what its JWT filter verified, under Envoy's namespace
//! (`envoy.filters.http.jwt_authn:payload[:claim...]`) and under Istio's
//! (`istio_authn:request.auth.principal`, `request.auth.audiences`,
//! `request.auth.presenter`, `request.auth.claims[:claim...]`).
//!
//! As Envoy renders metadata: a string as it is, any other value as JSON,
//! and a missing one as `-`.

use serde_json::Value;

use crate::jwt::VerifiedJwt;

const JWT_AUTHN: &str = "envoy.filters.http.jwt_authn";
const ISTIO_AUTHN: &str = "istio_authn";

/// Where in the request's dynamic metadata a value is read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MetadataPath {
    /// Envoy's JWT filter: the payload under its metadata key, then claims.
    JwtPayload { key: String, claims: Vec<String> },
    /// Istio's `request.auth.principal`: `iss/sub`.
    RequestPrincipal,
    /// Istio's `request.auth.*` values read from the payload, then claims.
    Claim {
        claim: &'static str,
        nested: Vec<String>,
    },
    /// A namespace or key the proxy never sets.
    Unknown,
}

impl MetadataPath {
    /// `argument` of `DYNAMIC_METADATA`: `NAMESPACE[:KEY[:KEY...]]`.
    pub fn parse(argument: &str) -> MetadataPath {
        let mut parts = argument.split(':');
        let namespace = parts.next().unwrap_or_default();
        let keys: Vec<String> = parts.map(str::to_string).collect();
        match (namespace, keys.split_first()) {
            (JWT_AUTHN, Some((key, claims))) => MetadataPath::JwtPayload {
                key: key.clone(),
                claims: claims.to_vec(),
            },
            (ISTIO_AUTHN, Some((key, nested))) => istio_authn(key, nested),
            _ => MetadataPath::Unknown,
        }
    }

    /// `argument` of `METADATA`: only the `DYNAMIC` type is known here.
    pub fn parse_typed(argument: &str) -> MetadataPath {
        match argument.split_once(':') {
            Some(("DYNAMIC", rest)) => MetadataPath::parse(rest),
            _ => MetadataPath::Unknown,
        }
    }

    /// Appends the value for `jwt` (the request's verified token) to `out`.
    pub fn render(&self, jwt: Option<&VerifiedJwt>, out: &mut String) {
        let Some(jwt) = jwt else { return };
        let value = match self {
            MetadataPath::JwtPayload { key, claims } if *key == jwt.metadata_key => {
                lookup(&jwt.payload, claims)
            }
            MetadataPath::RequestPrincipal => {
                out.push_str(&jwt.principal);
                return;
            }
            MetadataPath::Claim { claim: "", nested } => lookup(&jwt.payload, nested),
            MetadataPath::Claim { claim, nested } => jwt
                .payload
                .get(*claim)
                .and_then(|value| lookup(value, nested)),
            MetadataPath::JwtPayload { .. } | MetadataPath::Unknown => None,
        };
        match value {
            None | Some(Value::Null) => {}
            Some(Value::String(text)) => out.push_str(text),
            Some(other) => out.push_str(&other.to_string()),
        }
    }
}

fn istio_authn(key: &str, nested: &[String]) -> MetadataPath {
    let claim = |claim| MetadataPath::Claim {
        claim,
        nested: nested.to_vec(),
    };
    match key {
        "request.auth.principal" if nested.is_empty() => MetadataPath::RequestPrincipal,
        "request.auth.audiences" => claim("aud"),
        "request.auth.presenter" => claim("azp"),
        // The whole payload, or one claim of it.
        "request.auth.claims" => claim(""),
        _ => MetadataPath::Unknown,
    }
}

fn lookup<'a>(value: &'a Value, keys: &[String]) -> Option<&'a Value> {
    keys.iter().try_fold(value, |value, key| value.get(key))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn jwt() -> VerifiedJwt {
        VerifiedJwt {
            principal: "issuer.example/alice".into(),
            metadata_key: "payload".into(),
            payload: json!({
                "iss": "issuer.example", "sub": "alice", "aud": ["app1", "app2"],
                "azp": "web", "groups": ["group1"], "org": {"team": "blue"}
            }),
        }
    }

    fn rendered(argument: &str) -> String {
        let mut out = String::new();
        MetadataPath::parse(argument).render(Some(&jwt()), &mut out);
        out
    }

    #[test]
    fn renders_istio_authn_values() {
        assert_eq!(
            rendered("istio_authn:request.auth.principal"),
            "issuer.example/alice"
        );
        assert_eq!(
            rendered("istio_authn:request.auth.audiences"),
            r#"["app1","app2"]"#
        );
        assert_eq!(rendered("istio_authn:request.auth.presenter"), "web");
        assert_eq!(
            rendered("istio_authn:request.auth.claims:groups"),
            r#"["group1"]"#
        );
        assert!(rendered("istio_authn:request.auth.claims").contains(r#""sub":"alice""#));
        assert_eq!(rendered("istio_authn:source.user"), "");
    }

    #[test]
    fn renders_the_jwt_filter_payload_and_nested_claims() {
        assert_eq!(
            rendered("envoy.filters.http.jwt_authn:payload:org:team"),
            "blue"
        );
        assert_eq!(
            rendered("envoy.filters.http.jwt_authn:payload:org"),
            r#"{"team":"blue"}"#
        );
        assert_eq!(rendered("envoy.filters.http.jwt_authn:payload:missing"), "");
        assert_eq!(rendered("envoy.filters.http.jwt_authn:other_key"), "");
        assert_eq!(rendered("envoy.filters.http.jwt_authn"), "");
        assert_eq!(rendered("com.example.filter:key"), "");
    }

    #[test]
    fn nothing_without_a_verified_token_and_only_dynamic_metadata() {
        let mut out = String::new();
        MetadataPath::parse("istio_authn:request.auth.principal").render(None, &mut out);
        assert_eq!(out, "");
        assert_eq!(
            MetadataPath::parse_typed("DYNAMIC:istio_authn:request.auth.principal"),
            MetadataPath::RequestPrincipal
        );
        assert_eq!(
            MetadataPath::parse_typed("ROUTE:istio_authn:request.auth.principal"),
            MetadataPath::Unknown
        );
    }
}
