//! The trust domains a mesh accepts peers from: its own and its aliases
//! (Istio's `trustDomainAliases`, for migrating from one trust domain to
//! another without refusing the workloads still on the old one).

use crate::spiffe::{SpiffeId, valid_trust_domain};

/// A trust domain name that cannot appear in a SPIFFE ID.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid trust domain {0:?} (want lowercase letters, digits, '.', '-', '_')")]
pub struct InvalidTrustDomain(pub String);

/// The mesh's trust domain and its aliases. Identities that differ only in
/// which of these trust domains they name are the same workload.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TrustDomains {
    primary: String,
    aliases: Vec<String>,
}

impl TrustDomains {
    /// `primary` plus `aliases` (duplicates and the primary itself are
    /// dropped from the aliases).
    pub fn new(
        primary: &str,
        aliases: impl IntoIterator<Item = String>,
    ) -> Result<TrustDomains, InvalidTrustDomain> {
        let check = |td: String| {
            if valid_trust_domain(&td) {
                Ok(td)
            } else {
                Err(InvalidTrustDomain(td))
            }
        };
        let primary = check(primary.to_string())?;
        let mut unique: Vec<String> = Vec::new();
        for alias in aliases {
            let alias = check(alias)?;
            if alias != primary && !unique.contains(&alias) {
                unique.push(alias);
            }
        }
        Ok(TrustDomains {
            primary,
            aliases: unique,
        })
    }

    /// Only `primary`, no aliases. Not validated (like [`SpiffeId::new`]):
    /// for a trust domain taken from an identity already checked.
    pub fn only(primary: &str) -> TrustDomains {
        TrustDomains {
            primary: primary.to_string(),
            aliases: Vec::new(),
        }
    }

    pub fn primary(&self) -> &str {
        &self.primary
    }

    pub fn aliases(&self) -> &[String] {
        &self.aliases
    }

    /// Whether peers of `trust_domain` are accepted at all.
    pub fn contains(&self, trust_domain: &str) -> bool {
        self.primary == trust_domain || self.aliases.iter().any(|alias| alias == trust_domain)
    }

    /// Whether `found` is the workload `expected` names: the same identity,
    /// or the same namespace and service account under two trust domains
    /// that are both this mesh's. A peer outside these trust domains never
    /// matches.
    pub fn is_equivalent(&self, expected: &SpiffeId, found: &SpiffeId) -> bool {
        self.contains(&found.trust_domain)
            && expected.namespace == found.namespace
            && expected.service_account == found.service_account
            && (expected.trust_domain == found.trust_domain
                || self.contains(&expected.trust_domain))
    }

    /// Every accepted trust domain, the primary first.
    pub fn all(&self) -> Vec<String> {
        std::iter::once(&self.primary)
            .chain(&self.aliases)
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn migrating() -> TrustDomains {
        TrustDomains::new("new.td", ["old.td".to_string(), "new.td".to_string()]).unwrap()
    }

    fn id(td: &str, sa: &str) -> SpiffeId {
        SpiffeId::new(td, "default", sa)
    }

    #[test]
    fn accepts_the_trust_domain_and_its_aliases_only() {
        let trust = migrating();
        assert_eq!(trust.aliases(), ["old.td"]);
        assert!(trust.contains("new.td"));
        assert!(trust.contains("old.td"));
        assert!(!trust.contains("foreign.td"));
        assert!(!TrustDomains::only("new.td").contains("old.td"));
    }

    #[test]
    fn an_alias_identity_stands_for_the_same_workload() {
        let trust = migrating();
        assert!(trust.is_equivalent(&id("new.td", "reviews"), &id("old.td", "reviews")));
        assert!(trust.is_equivalent(&id("old.td", "reviews"), &id("new.td", "reviews")));
        assert!(!trust.is_equivalent(&id("new.td", "reviews"), &id("old.td", "ratings")));
    }

    #[test]
    fn a_foreign_trust_domain_never_matches_even_when_named_exactly() {
        let trust = migrating();
        let foreign = id("foreign.td", "reviews");
        assert!(!trust.is_equivalent(&foreign, &foreign));
        assert!(!trust.is_equivalent(&id("new.td", "reviews"), &foreign));
    }

    #[test]
    fn refuses_malformed_trust_domains() {
        assert_eq!(
            TrustDomains::new("Cluster.Local", []),
            Err(InvalidTrustDomain("Cluster.Local".to_string()))
        );
        assert!(TrustDomains::new("cluster.local", ["a/b".to_string()]).is_err());
    }
}
