//! Bearer tokens that map callers to identities: the authentication used in
//! local mode, where there are no Kubernetes service-account tokens.

use std::fmt;
use std::path::Path;

use rand::RngCore;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use crate::error::CaError;
use crate::files::write_atomically;
use crate::service::Authenticator;
use crate::spiffe::SpiffeId;

/// One line of the tokens file.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TokenEntry {
    pub token: String,
    pub namespace: String,
    pub service_account: String,
}

impl fmt::Debug for TokenEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenEntry")
            .field("token", &"<redacted>")
            .field("namespace", &self.namespace)
            .field("service_account", &self.service_account)
            .finish()
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokensFile {
    tokens: Vec<TokenEntry>,
}

/// A fixed set of tokens loaded from a JSON file:
/// `{"tokens":[{"token":"...","namespace":"default","serviceAccount":"sa"}]}`.
/// The default set accepts no token.
#[derive(Default)]
pub struct StaticTokens {
    entries: Vec<(Vec<u8>, SpiffeId)>,
}

impl fmt::Debug for StaticTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaticTokens")
            .field(
                "identities",
                &self.entries.iter().map(|(_, id)| id).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl StaticTokens {
    /// Loads the tokens file; every entry must name a valid identity and
    /// tokens must be non-empty and unique.
    pub fn load(path: &Path, trust_domain: &str) -> Result<StaticTokens, CaError> {
        let text = std::fs::read_to_string(path).map_err(|e| CaError::io(path, e))?;
        let file: TokensFile = serde_json::from_str(&text).map_err(|e| invalid(path, e))?;
        Self::from_entries(&file.tokens, trust_domain).map_err(|reason| invalid(path, reason))
    }

    fn from_entries(entries: &[TokenEntry], trust_domain: &str) -> Result<StaticTokens, String> {
        let mut parsed: Vec<(Vec<u8>, SpiffeId)> = Vec::with_capacity(entries.len());
        for (index, entry) in entries.iter().enumerate() {
            if entry.token.is_empty() {
                return Err(format!("tokens[{index}]: empty token"));
            }
            let identity = SpiffeId::new(trust_domain, &entry.namespace, &entry.service_account);
            identity
                .validate()
                .map_err(|e| format!("tokens[{index}]: {e}"))?;
            if parsed
                .iter()
                .any(|(token, _)| token == entry.token.as_bytes())
            {
                return Err(format!("tokens[{index}]: duplicate token"));
            }
            parsed.push((entry.token.as_bytes().to_vec(), identity));
        }
        Ok(StaticTokens { entries: parsed })
    }

    /// Number of known tokens.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no token is known (every request will be refused).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl Authenticator for StaticTokens {
    fn authenticate(&self, token: &str) -> Option<SpiffeId> {
        // Compare against every entry in constant time and without stopping
        // early, so response timing reveals neither a token's bytes nor its
        // position in the file.
        let mut found = None;
        for (known, identity) in &self.entries {
            if bool::from(known.as_slice().ct_eq(token.as_bytes())) {
                found = Some(identity);
            }
        }
        found.cloned()
    }
}

/// Writes a tokens file readable only by its owner, atomically.
pub fn write_tokens_file(path: &Path, entries: &[TokenEntry]) -> Result<(), CaError> {
    let file = TokensFile {
        tokens: entries.to_vec(),
    };
    let mut json = serde_json::to_vec_pretty(&file).map_err(|e| invalid(path, e))?;
    json.push(b'\n');
    write_atomically(path, &json, 0o600)
}

/// A fresh random token: 32 bytes from the OS-seeded CSPRNG, hex-encoded.
pub fn generate_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn invalid(path: &Path, reason: impl ToString) -> CaError {
    CaError::InvalidTokensFile {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(token: &str, namespace: &str, service_account: &str) -> TokenEntry {
        TokenEntry {
            token: token.to_string(),
            namespace: namespace.to_string(),
            service_account: service_account.to_string(),
        }
    }

    #[test]
    fn write_then_load_authenticates_each_token() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.json");
        let reviews = generate_token();
        let ratings = generate_token();
        write_tokens_file(
            &path,
            &[
                entry(&reviews, "default", "bookinfo-reviews"),
                entry(&ratings, "default", "bookinfo-ratings"),
            ],
        )
        .unwrap();
        let tokens = StaticTokens::load(&path, "cluster.local").unwrap();
        assert_eq!(tokens.len(), 2);
        assert_eq!(
            tokens.authenticate(&reviews),
            Some(SpiffeId::new(
                "cluster.local",
                "default",
                "bookinfo-reviews"
            ))
        );
        assert_eq!(
            tokens.authenticate(&ratings),
            Some(SpiffeId::new(
                "cluster.local",
                "default",
                "bookinfo-ratings"
            ))
        );
        assert_eq!(tokens.authenticate(&generate_token()), None);
        assert_eq!(tokens.authenticate(""), None);
        assert_eq!(tokens.authenticate(&reviews[..10]), None);
    }

    #[test]
    fn reads_the_documented_format() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.json");
        std::fs::write(
            &path,
            r#"{"tokens":[{"token":"abc","namespace":"default","serviceAccount":"bookinfo-reviews"}]}"#,
        )
        .unwrap();
        let tokens = StaticTokens::load(&path, "td").unwrap();
        assert_eq!(
            tokens.authenticate("abc"),
            Some(SpiffeId::new("td", "default", "bookinfo-reviews"))
        );
    }

    #[test]
    fn rejects_bad_files_naming_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.json");
        let cases = [
            r#"{"tokens":[{"token":"a","namespace":"ns","serviceAccount":"sa"},{"token":"a","namespace":"ns","serviceAccount":"other"}]}"#,
            r#"{"tokens":[{"token":"","namespace":"ns","serviceAccount":"sa"}]}"#,
            r#"{"tokens":[{"token":"a","namespace":"n/s","serviceAccount":"sa"}]}"#,
            r#"{"tokens":[{"token":"a","namespace":"ns"}]}"#,
            "not json",
        ];
        for case in cases {
            std::fs::write(&path, case).unwrap();
            let err = StaticTokens::load(&path, "td").expect_err(case);
            assert!(
                matches!(err, CaError::InvalidTokensFile { .. }),
                "{case}: {err}"
            );
            assert!(err.to_string().contains("tokens.json"), "{err}");
        }
    }

    #[test]
    fn tokens_file_is_private_and_tokens_are_random_hex() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.json");
        write_tokens_file(&path, &[entry("t", "ns", "sa")]).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);

        let token = generate_token();
        assert_eq!(token.len(), 64);
        assert!(token.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(token, generate_token());
    }
}
