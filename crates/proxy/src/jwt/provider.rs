//! One JWT provider (`JwtProvider`): where its tokens are, how they are
//! verified, and what a verified token adds to the request.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use envoy_types::pb::envoy::config::core::v3::data_source::Specifier;
use envoy_types::pb::envoy::extensions::filters::http::jwt_authn::v3::{
    JwtProvider, jwt_provider::JwksSourceSpecifier,
};
use http::header::{AUTHORIZATION, COOKIE, HeaderMap, HeaderName, HeaderValue};
use jsonwebtoken::{Validation, decode, decode_header};
use serde_json::Value;

use super::keys::{self, ACCEPTED, VerificationKey};
use crate::unsupported::{Unsupported, reject_if};

#[derive(Debug)]
pub struct Provider {
    issuer: String,
    audiences: Vec<String>,
    keys: Vec<VerificationKey>,
    locations: Vec<Location>,
    forward: bool,
    payload_header: Option<HeaderName>,
    claim_headers: Vec<(HeaderName, String)>,
    pub metadata_key: String,
    require_expiration: bool,
    clock_skew_seconds: u64,
}

/// Where a token may be.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Location {
    /// A header, whose value starts with `prefix` (may be empty).
    Header {
        name: HeaderName,
        prefix: String,
    },
    Param(String),
    Cookie(String),
}

/// A token found for a provider, and where.
pub struct Found {
    pub token: String,
    location: Location,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("Jwt issuer is not configured")]
    UnknownIssuer,
    #[error("Jwt verification fails: {0}")]
    Invalid(String),
}

impl Provider {
    pub fn compile(name: &str, provider: &JwtProvider) -> Result<Provider, Unsupported> {
        reject_if(provider.subjects.is_some(), "jwt_authn provider subjects")?;
        reject_if(
            provider.max_lifetime.is_some(),
            "jwt_authn provider max_lifetime",
        )?;
        reject_if(
            provider.normalize_payload_in_metadata.is_some(),
            "jwt_authn provider normalize_payload_in_metadata",
        )?;
        reject_if(
            !provider.header_in_metadata.is_empty(),
            "jwt_authn header_in_metadata",
        )?;
        reject_if(
            !provider.failed_status_in_metadata.is_empty(),
            "jwt_authn failed_status_in_metadata",
        )?;
        reject_if(
            provider
                .claim_to_headers
                .iter()
                .any(|c| !c.claim_path.is_empty()),
            "jwt_authn claim_to_headers.claim_path",
        )?;
        let jwks = match &provider.jwks_source_specifier {
            Some(JwksSourceSpecifier::LocalJwks(source)) => match &source.specifier {
                Some(Specifier::InlineString(jwks)) => jwks.as_str(),
                _ => return Err(Unsupported("jwt_authn local_jwks other than inline_string")),
            },
            _ => return Err(Unsupported("jwt_authn provider without local_jwks")),
        };
        // As Envoy: a provider whose keys cannot be read verifies nothing.
        let keys = keys::parse(jwks).unwrap_or_else(|error| {
            tracing::warn!(provider = name, issuer = provider.issuer, %error, "no usable keys");
            Vec::new()
        });
        let header_name = |name: &str| {
            HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| Unsupported("jwt_authn invalid header name"))
        };
        Ok(Provider {
            issuer: provider.issuer.clone(),
            audiences: provider.audiences.clone(),
            keys,
            locations: locations(provider)?,
            forward: provider.forward,
            payload_header: (!provider.forward_payload_header.is_empty())
                .then(|| header_name(&provider.forward_payload_header))
                .transpose()?,
            claim_headers: provider
                .claim_to_headers
                .iter()
                .map(|c| Ok((header_name(&c.header_name)?, c.claim_name.clone())))
                .collect::<Result<_, Unsupported>>()?,
            metadata_key: provider.payload_in_metadata.clone(),
            require_expiration: provider.require_expiration,
            clock_skew_seconds: u64::from(provider.clock_skew_seconds),
        })
    }

    /// The first token in this provider's locations.
    pub fn find(&self, headers: &HeaderMap, query: Option<&str>) -> Option<Found> {
        self.locations.iter().find_map(|location| {
            let token = match location {
                Location::Header { name, prefix } => headers
                    .get_all(name)
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .find_map(|v| strip_prefix_ignore_case(v.trim(), prefix)),
                Location::Param(name) => query_param(query?, name),
                Location::Cookie(name) => cookie(headers, name),
            }?;
            Some(Found {
                token: token.trim().to_string(),
                location: location.clone(),
            })
        })
    }

    /// Checks the signature, issuer, audiences and times of `token`; the
    /// payload when it verifies.
    pub fn verify(&self, token: &str) -> Result<Value, VerifyError> {
        let invalid = |e: jsonwebtoken::errors::Error| VerifyError::Invalid(e.to_string());
        let header = decode_header(token).map_err(invalid)?;
        if !ACCEPTED.contains(&header.alg) {
            return Err(VerifyError::Invalid(format!(
                "{:?} is not accepted",
                header.alg
            )));
        }
        if !self.issuer.is_empty() && unverified_issuer(token).as_deref() != Some(&self.issuer) {
            return Err(VerifyError::UnknownIssuer);
        }
        let validation = self.validation(header.alg);
        let mut last = VerifyError::Invalid("no key matches the token".into());
        let candidates = self.keys.iter().filter(|key| {
            key.algorithms.contains(&header.alg)
                && (header.kid.is_none() || key.kid.is_none() || key.kid == header.kid)
        });
        for key in candidates {
            match decode::<Value>(token, &key.key, &validation) {
                Ok(data) => return Ok(data.claims),
                Err(error) => last = invalid(error),
            }
        }
        Err(last)
    }

    fn validation(&self, algorithm: jsonwebtoken::Algorithm) -> Validation {
        let mut validation = Validation::new(algorithm);
        validation.leeway = self.clock_skew_seconds;
        validation.validate_nbf = true;
        validation.required_spec_claims.clear();
        if self.require_expiration {
            validation.required_spec_claims.insert("exp".into());
        }
        if !self.issuer.is_empty() {
            validation.set_issuer(&[&self.issuer]);
            validation.required_spec_claims.insert("iss".into());
        }
        if self.audiences.is_empty() {
            validation.validate_aud = false;
        } else {
            validation.set_audience(&self.audiences);
            validation.required_spec_claims.insert("aud".into());
        }
        validation
    }

    /// What a verified token does to the request on its way upstream.
    pub fn apply(&self, found: &Found, payload: &Value, headers: &mut HeaderMap) {
        if !self.forward
            && let Location::Header { name, .. } = &found.location
        {
            headers.remove(name);
        }
        if let Some(name) = &self.payload_header
            && let Some(encoded) = found.token.split('.').nth(1)
            && let Ok(value) = HeaderValue::from_str(encoded)
        {
            headers.insert(name.clone(), value);
        }
        for (name, claim) in &self.claim_headers {
            match claim_text(payload, claim).and_then(|t| HeaderValue::from_str(&t).ok()) {
                Some(value) => headers.insert(name.clone(), value),
                // A client must not pose as the token's claim.
                None => headers.remove(name),
            };
        }
    }
}

/// The provider's locations; none configured means Envoy's defaults.
fn locations(provider: &JwtProvider) -> Result<Vec<Location>, Unsupported> {
    let mut locations = Vec::new();
    for header in &provider.from_headers {
        let name = HeaderName::from_bytes(header.name.as_bytes())
            .map_err(|_| Unsupported("jwt_authn invalid from_headers name"))?;
        locations.push(Location::Header {
            name,
            prefix: header.value_prefix.clone(),
        });
    }
    locations.extend(provider.from_params.iter().cloned().map(Location::Param));
    locations.extend(provider.from_cookies.iter().cloned().map(Location::Cookie));
    if locations.is_empty() {
        locations.push(Location::Header {
            name: AUTHORIZATION,
            prefix: "Bearer ".into(),
        });
        locations.push(Location::Param("access_token".into()));
    }
    Ok(locations)
}

fn strip_prefix_ignore_case<'v>(value: &'v str, prefix: &str) -> Option<&'v str> {
    let head = value.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &value[prefix.len()..])
        .filter(|rest| !rest.trim().is_empty())
}

fn query_param<'q>(query: &'q str, name: &str) -> Option<&'q str> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(key, value)| *key == name && !value.is_empty())
        .map(|(_, value)| value)
}

fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, value)| *key == name && !value.is_empty())
        .map(|(_, value)| value)
}

/// `iss` of a token, read before verification to pick its provider.
fn unverified_issuer(token: &str) -> Option<String> {
    let payload = URL_SAFE_NO_PAD.decode(token.split('.').nth(1)?).ok()?;
    let claims: Value = serde_json::from_slice(&payload).ok()?;
    claims.get("iss")?.as_str().map(str::to_string)
}

/// A claim (`a.b` reads nested objects) as header text: strings, numbers
/// and booleans; anything else is not copied.
fn claim_text(payload: &Value, claim: &str) -> Option<String> {
    let value = claim
        .split('.')
        .try_fold(payload, |value, key| value.get(key))?;
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        Value::Bool(flag) => Some(flag.to_string()),
        _ => None,
    }
}
