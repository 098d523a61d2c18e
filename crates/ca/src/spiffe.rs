//! SPIFFE IDs in Istio's Kubernetes shape: `spiffe://TD/ns/NS/sa/SA`.

use std::fmt;
use std::str::FromStr;

const SCHEME: &str = "spiffe://";

/// A workload identity: trust domain, namespace and service account.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpiffeId {
    pub trust_domain: String,
    pub namespace: String,
    pub service_account: String,
}

/// Why a string is not an Istio SPIFFE ID.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SpiffeIdError {
    #[error("SPIFFE ID {0:?} does not start with \"spiffe://\"")]
    MissingScheme(String),
    #[error(
        "SPIFFE ID {0:?} has an invalid trust domain (want lowercase letters, digits, '.', '-', '_')"
    )]
    InvalidTrustDomain(String),
    #[error("SPIFFE ID {0:?} does not have the path /ns/NAMESPACE/sa/SERVICE_ACCOUNT")]
    InvalidPath(String),
    #[error(
        "SPIFFE ID {id:?} has an invalid {part} {value:?} (want letters, digits, '.', '-', '_')"
    )]
    InvalidSegment {
        id: String,
        part: &'static str,
        value: String,
    },
}

impl SpiffeId {
    /// Builds an ID from its parts without checking them; use
    /// [`SpiffeId::validate`] (or parse a string) where the parts come from
    /// outside.
    pub fn new(
        trust_domain: impl Into<String>,
        namespace: impl Into<String>,
        service_account: impl Into<String>,
    ) -> SpiffeId {
        SpiffeId {
            trust_domain: trust_domain.into(),
            namespace: namespace.into(),
            service_account: service_account.into(),
        }
    }

    /// Checks every part against the SPIFFE character rules, so that the ID
    /// round-trips through its string form and fits in a URI SAN.
    pub fn validate(&self) -> Result<(), SpiffeIdError> {
        if !valid_trust_domain(&self.trust_domain) {
            return Err(SpiffeIdError::InvalidTrustDomain(self.to_string()));
        }
        for (part, value) in [
            ("namespace", &self.namespace),
            ("service account", &self.service_account),
        ] {
            if !valid_path_segment(value) {
                return Err(SpiffeIdError::InvalidSegment {
                    id: self.to_string(),
                    part,
                    value: value.clone(),
                });
            }
        }
        Ok(())
    }
}

impl fmt::Display for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{SCHEME}{}/ns/{}/sa/{}",
            self.trust_domain, self.namespace, self.service_account
        )
    }
}

impl FromStr for SpiffeId {
    type Err = SpiffeIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let rest = s
            .strip_prefix(SCHEME)
            .ok_or_else(|| SpiffeIdError::MissingScheme(s.to_string()))?;
        let (trust_domain, path) = rest
            .split_once('/')
            .ok_or_else(|| SpiffeIdError::InvalidPath(s.to_string()))?;
        let segments: Vec<&str> = path.split('/').collect();
        let ["ns", namespace, "sa", service_account] = segments.as_slice() else {
            return Err(SpiffeIdError::InvalidPath(s.to_string()));
        };
        let id = SpiffeId::new(trust_domain, *namespace, *service_account);
        id.validate()?;
        Ok(id)
    }
}

/// SPIFFE trust domains: lowercase letters, digits, dots, dashes, underscores.
pub(crate) fn valid_trust_domain(td: &str) -> bool {
    !td.is_empty()
        && td
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b".-_".contains(&b))
}

/// SPIFFE path segments: letters, digits, dots, dashes, underscores; never
/// empty, "." or "..".
fn valid_path_segment(segment: &str) -> bool {
    !segment.is_empty()
        && segment != "."
        && segment != ".."
        && segment
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-_".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_and_parse_round_trip() {
        let id = SpiffeId::new("cluster.local", "default", "bookinfo-reviews");
        let text = id.to_string();
        assert_eq!(
            text,
            "spiffe://cluster.local/ns/default/sa/bookinfo-reviews"
        );
        assert_eq!(text.parse::<SpiffeId>(), Ok(id));
    }

    #[test]
    fn parse_rejects_malformed_ids() {
        let cases = [
            ("http://cluster.local/ns/a/sa/b", "scheme"),
            ("spiffe://cluster.local", "path"),
            ("spiffe://cluster.local/ns/a/sa", "path"),
            ("spiffe://cluster.local/ns/a/sa/b/extra", "path"),
            ("spiffe://cluster.local/namespace/a/sa/b", "path"),
            ("spiffe://cluster.local/ns//sa/b", "segment"),
            ("spiffe://cluster.local/ns/../sa/b", "segment"),
            ("spiffe://cluster.local/ns/a/sa/b?x=1", "segment"),
            ("spiffe://Cluster.Local/ns/a/sa/b", "trust domain"),
            ("spiffe:///ns/a/sa/b", "trust domain"),
            ("spiffe://user@td/ns/a/sa/b", "trust domain"),
        ];
        for (input, why) in cases {
            let err = input.parse::<SpiffeId>().expect_err(input);
            let matches = match why {
                "scheme" => matches!(err, SpiffeIdError::MissingScheme(_)),
                "path" => matches!(err, SpiffeIdError::InvalidPath(_)),
                "segment" => matches!(err, SpiffeIdError::InvalidSegment { .. }),
                _ => matches!(err, SpiffeIdError::InvalidTrustDomain(_)),
            };
            assert!(matches, "{input}: expected {why} error, got {err:?}");
        }
    }

    #[test]
    fn validate_checks_parts_built_with_new() {
        assert!(SpiffeId::new("td", "ns", "sa").validate().is_ok());
        assert!(SpiffeId::new("td", "a/b", "sa").validate().is_err());
        assert!(SpiffeId::new("td", "ns", "").validate().is_err());
    }
}
