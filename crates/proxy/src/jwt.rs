//! Envoy's JWT filter (`envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication`)
//! in the shape Istio's RequestAuthentication generates: one requirement
//! for every path that any of a list of providers satisfies, optionally
//! letting requests without a token through (`allow_missing`). A request
//! whose token no provider verifies is refused with 401 and Envoy's body
//! `Jwt verification fails`. A verified token gives the request its
//! principal (`iss/sub`) and its payload, which RBAC reads.

mod keys;
mod provider;

use envoy_types::pb::envoy::config::route::v3::route_match::PathSpecifier;
use envoy_types::pb::envoy::extensions::filters::http::jwt_authn::v3::{
    JwtAuthentication, JwtRequirement, jwt_requirement::RequiresType,
    requirement_rule::RequirementType,
};
use http::header::{self, HeaderMap, HeaderValue};
use http::{Response, StatusCode};
use prost::Message;
use serde_json::Value;

use crate::body::{ProxyBody, full};
use crate::unsupported::{Unsupported, reject_if};
use provider::{Provider, VerifyError};

pub const FILTER_TYPE: &str =
    "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication";

/// Envoy's response code details for a refused token.
pub const DENIED_DETAILS: &str = "jwt_authn_access_denied{Jwt_verification_fails}";

#[derive(Debug)]
pub struct JwtFilter {
    /// The providers any of which may verify a token, in config order.
    providers: Vec<Provider>,
    allow_missing: bool,
}

/// What a verified token tells about the request.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedJwt {
    /// `iss/sub`, Istio's request principal.
    pub principal: String,
    /// The metadata key the payload is stored under (`payload_in_metadata`).
    pub metadata_key: String,
    pub payload: Value,
}

/// A request refused by the filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub reason: String,
}

impl JwtFilter {
    pub fn compile(bytes: &[u8]) -> Result<JwtFilter, Unsupported> {
        let config = JwtAuthentication::decode(bytes)
            .map_err(|_| Unsupported("undecodable jwt_authn filter"))?;
        reject_if(
            config.filter_state_rules.is_some(),
            "jwt_authn filter_state_rules",
        )?;
        reject_if(
            !config.requirement_map.is_empty(),
            "jwt_authn requirement_map",
        )?;
        let [rule] = config.rules.as_slice() else {
            return Err(Unsupported("jwt_authn with other than one rule"));
        };
        let matches_every_path = rule.r#match.as_ref().is_some_and(|m| {
            m.path_specifier == Some(PathSpecifier::Prefix("/".into()))
                && m.headers.is_empty()
                && m.query_parameters.is_empty()
        });
        reject_if(
            !matches_every_path,
            "jwt_authn rule match other than prefix /",
        )?;
        let Some(RequirementType::Requires(requires)) = &rule.requirement_type else {
            return Err(Unsupported("jwt_authn rule without an inline requirement"));
        };
        let (names, allow_missing) = any_of(requires)?;
        let mut providers = Vec::new();
        for name in names {
            let provider = config.providers.get(name).ok_or(Unsupported(
                "jwt_authn requirement names an unknown provider",
            ))?;
            providers.push(Provider::compile(name, provider)?);
        }
        Ok(JwtFilter {
            providers,
            allow_missing,
        })
    }

    /// Finds and verifies the request's token. `Ok(None)`: no token, and
    /// none is required. On success the headers are updated as the
    /// provider says (token removed, payload and claims copied).
    pub fn authenticate(
        &self,
        headers: &mut HeaderMap,
        query: Option<&str>,
    ) -> Result<Option<VerifiedJwt>, Rejection> {
        let mut failure = None;
        for provider in &self.providers {
            let Some(found) = provider.find(headers, query) else {
                continue;
            };
            match provider.verify(&found.token) {
                Ok(payload) => {
                    provider.apply(&found, &payload, headers);
                    return Ok(Some(VerifiedJwt {
                        principal: principal(&payload),
                        metadata_key: provider.metadata_key.clone(),
                        payload,
                    }));
                }
                // A token of another issuer is for another provider.
                Err(VerifyError::UnknownIssuer) => {
                    failure.get_or_insert(VerifyError::UnknownIssuer);
                }
                Err(error) => failure = Some(error),
            }
        }
        match failure {
            Some(error) => Err(Rejection {
                reason: error.to_string(),
            }),
            None if self.allow_missing => Ok(None),
            None => Err(Rejection {
                reason: "Jwt is missing".into(),
            }),
        }
    }
}

/// The providers of a `requires_any` of provider names (and
/// `allow_missing`), or of a single provider name.
fn any_of(requires: &JwtRequirement) -> Result<(Vec<&str>, bool), Unsupported> {
    let alternatives = match &requires.requires_type {
        Some(RequiresType::ProviderName(name)) => return Ok((vec![name.as_str()], false)),
        Some(RequiresType::RequiresAny(any)) => &any.requirements,
        _ => {
            return Err(Unsupported(
                "jwt_authn requirement other than a provider name or requires_any",
            ));
        }
    };
    let mut names = Vec::new();
    let mut allow_missing = false;
    for alternative in alternatives {
        match &alternative.requires_type {
            Some(RequiresType::ProviderName(name)) => names.push(name.as_str()),
            Some(RequiresType::AllowMissing(_)) => allow_missing = true,
            _ => {
                return Err(Unsupported(
                    "jwt_authn requires_any of other than provider names and allow_missing",
                ));
            }
        }
    }
    Ok((names, allow_missing))
}

/// Istio's request principal: `iss/sub`.
fn principal(payload: &Value) -> String {
    let claim = |name: &str| {
        payload
            .get(name)
            .and_then(Value::as_str)
            .unwrap_or_default()
    };
    format!("{}/{}", claim("iss"), claim("sub"))
}

impl Rejection {
    /// Envoy's answer: 401, `Jwt verification fails`, and a challenge
    /// naming the request's URL (without its query) as the realm.
    pub fn response(&self, scheme: &str, authority: &str, path: &str) -> Response<ProxyBody> {
        let path = path.split('?').next().unwrap_or("/");
        let challenge =
            format!("Bearer realm=\"{scheme}://{authority}{path}\", error=\"invalid_token\"");
        let mut response = Response::new(full("Jwt verification fails"));
        *response.status_mut() = StatusCode::UNAUTHORIZED;
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        if let Ok(value) = HeaderValue::from_str(&challenge) {
            headers.insert(header::WWW_AUTHENTICATE, value);
        }
        response
    }
}

#[cfg(test)]
mod tests;
