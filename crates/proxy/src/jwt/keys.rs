//! A JSON Web Key Set, parsed into verification keys: RSA, EC (P-256,
//! P-384) and Ed25519 public keys. Symmetric (`oct`) keys are skipped: a
//! mesh never shares secrets with token issuers, and accepting them would
//! let anyone who knows a public key forge HS256 tokens.

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey};

/// Algorithms tokens may be signed with; `none` and HS* never verify.
pub const ACCEPTED: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

pub struct VerificationKey {
    pub kid: Option<String>,
    pub key: DecodingKey,
    /// What this key may verify: its `alg`, or every algorithm of its type.
    pub algorithms: Vec<Algorithm>,
}

impl std::fmt::Debug for VerificationKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerificationKey")
            .field("kid", &self.kid)
            .field("algorithms", &self.algorithms)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
#[error("invalid JWKS: {0}")]
pub struct InvalidJwks(String);

/// The usable keys of `jwks`; keys of unsupported types are skipped (as
/// Envoy does), and a set without any usable key verifies nothing.
pub fn parse(jwks: &str) -> Result<Vec<VerificationKey>, InvalidJwks> {
    // Keys of types this crate does not model would fail the whole set's
    // parse, so each key is read on its own.
    let document: serde_json::Value =
        serde_json::from_str(jwks).map_err(|e| InvalidJwks(e.to_string()))?;
    let keys = document
        .get("keys")
        .and_then(serde_json::Value::as_array)
        .ok_or_else(|| InvalidJwks("no \"keys\" array".into()))?;
    Ok(keys
        .iter()
        .filter_map(|key| serde_json::from_value::<Jwk>(key.clone()).ok())
        .filter_map(|jwk| verification_key(&jwk))
        .collect())
}

fn verification_key(jwk: &Jwk) -> Option<VerificationKey> {
    let family = family(&jwk.algorithm)?;
    let algorithms = match &jwk.common.key_algorithm {
        Some(declared) => {
            let algorithm = declared_algorithm(*declared)?;
            family.contains(&algorithm).then_some(vec![algorithm])?
        }
        None => family,
    };
    Some(VerificationKey {
        kid: jwk.common.key_id.clone(),
        key: DecodingKey::from_jwk(jwk).ok()?,
        algorithms,
    })
}

/// The accepted algorithms a key of this type and curve can verify.
fn family(parameters: &AlgorithmParameters) -> Option<Vec<Algorithm>> {
    use Algorithm::*;
    Some(match parameters {
        AlgorithmParameters::RSA(_) => vec![RS256, RS384, RS512, PS256, PS384, PS512],
        AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
            EllipticCurve::P256 => vec![ES256],
            EllipticCurve::P384 => vec![ES384],
            _ => return None,
        },
        AlgorithmParameters::OctetKeyPair(okp) if okp.curve == EllipticCurve::Ed25519 => {
            vec![EdDSA]
        }
        _ => return None,
    })
}

fn declared_algorithm(declared: KeyAlgorithm) -> Option<Algorithm> {
    let algorithm = match declared {
        KeyAlgorithm::RS256 => Algorithm::RS256,
        KeyAlgorithm::RS384 => Algorithm::RS384,
        KeyAlgorithm::RS512 => Algorithm::RS512,
        KeyAlgorithm::PS256 => Algorithm::PS256,
        KeyAlgorithm::PS384 => Algorithm::PS384,
        KeyAlgorithm::PS512 => Algorithm::PS512,
        KeyAlgorithm::ES256 => Algorithm::ES256,
        KeyAlgorithm::ES384 => Algorithm::ES384,
        KeyAlgorithm::EdDSA => Algorithm::EdDSA,
        _ => return None,
    };
    ACCEPTED.contains(&algorithm).then_some(algorithm)
}
