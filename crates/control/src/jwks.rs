//! The `jwksUri` resolver, as istiod's: the control plane fetches the keys
//! of every RequestAuthentication rule without inline `jwks` (from its
//! `jwksUri`, or else by OpenID discovery from its issuer), caches them per
//! source, refreshes them, and hands proxies the keys inline, so that
//! proxies never fetch anything themselves.
//!
//! Translation never waits for a fetch: it sees the snapshot with the keys
//! cached so far ([`with_resolved_keys`]); a rule whose keys were never
//! fetched keeps an empty `jwks`, which the translator turns into a key set
//! that verifies nothing (fail closed). When a URI's keys change (first
//! fetch, rotation), the control plane pushes again. A failed refresh keeps
//! the last good keys.

pub mod cache;
pub mod fetch;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use trellis_api::{AnyResource, JwtRule, RequestAuthentication, Resource};
use trellis_config::Snapshot;

pub use cache::{JwksCache, JwksMetrics, RefreshPolicy, ResolvedKeys};
pub use fetch::{FetchJwks, HttpFetcher};

/// Istio's default for a rule without `timeout`.
pub const DEFAULT_FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// Where a rule's keys are fetched from.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum JwksSource {
    /// The rule's `jwksUri`.
    Uri(String),
    /// The `jwks_uri` of the issuer's OpenID configuration (a rule with
    /// neither `jwks` nor `jwksUri` whose issuer is an http(s) URL).
    Discovery { issuer: String },
}

impl JwksSource {
    /// Where `rule`'s keys come from, if they are not inline.
    pub fn of(rule: &JwtRule) -> Option<JwksSource> {
        if !rule.jwks.is_empty() {
            return None;
        }
        if !rule.jwks_uri.is_empty() {
            return Some(JwksSource::Uri(rule.jwks_uri.clone()));
        }
        let discoverable = ["https://", "http://"]
            .iter()
            .any(|scheme| rule.issuer.starts_with(scheme));
        discoverable.then(|| JwksSource::Discovery {
            issuer: rule.issuer.clone(),
        })
    }
}

impl fmt::Display for JwksSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JwksSource::Uri(uri) => f.write_str(uri),
            JwksSource::Discovery { issuer } => write!(f, "OpenID discovery of {issuer}"),
        }
    }
}

/// Every source whose keys `snapshot` needs, with its fetch timeout (the
/// longest of the rules naming it).
pub fn wanted_sources(snapshot: &Snapshot) -> BTreeMap<JwksSource, Duration> {
    let mut wanted = BTreeMap::new();
    let rules = snapshot
        .request_authentications()
        .flat_map(|policy| &policy.spec.jwt_rules);
    for rule in rules {
        let Some(source) = JwksSource::of(rule) else {
            continue;
        };
        let timeout = rule
            .timeout
            .as_deref()
            .and_then(|text| trellis_api::parse_duration(text).ok())
            .filter(|timeout| !timeout.is_zero())
            .unwrap_or(DEFAULT_FETCH_TIMEOUT);
        let entry = wanted.entry(source).or_insert(timeout);
        *entry = (*entry).max(timeout);
    }
    wanted
}

/// `snapshot` with the cached keys filled into the `jwks` of the rules that
/// need them; `snapshot` itself when there is nothing to fill.
pub fn with_resolved_keys(snapshot: &Arc<Snapshot>, keys: &ResolvedKeys) -> Arc<Snapshot> {
    let mut resolved: Option<Snapshot> = None;
    for (index, resource) in snapshot.resources.iter().enumerate() {
        let AnyResource::RequestAuthentication(policy) = resource.as_ref() else {
            continue;
        };
        let Some(filled) = fill_keys(policy, keys) else {
            continue;
        };
        let copy = resolved.get_or_insert_with(|| Snapshot::clone(snapshot));
        // Same key, same position: the resources stay sorted.
        copy.resources[index] = Arc::new(AnyResource::RequestAuthentication(filled));
    }
    resolved.map_or_else(|| snapshot.clone(), Arc::new)
}

/// The policy with its rules' keys filled in, if any rule had keys to fill.
fn fill_keys(
    policy: &Resource<RequestAuthentication>,
    keys: &ResolvedKeys,
) -> Option<Resource<RequestAuthentication>> {
    let cached = |rule: &JwtRule| JwksSource::of(rule).and_then(|source| keys.get(&source));
    if !policy
        .spec
        .jwt_rules
        .iter()
        .any(|rule| cached(rule).is_some())
    {
        return None;
    }
    let mut filled = policy.clone();
    for rule in &mut filled.spec.jwt_rules {
        if let Some(jwks) = cached(rule) {
            rule.jwks = jwks.to_string();
        }
    }
    Some(filled)
}

#[cfg(test)]
mod tests {
    use trellis_api::{ObjectMeta, SourceRef};

    use super::*;

    fn policy(name: &str, rules: Vec<JwtRule>) -> Arc<AnyResource> {
        Arc::new(AnyResource::RequestAuthentication(Resource {
            api_version: "security.istio.io/v1".into(),
            kind: "RequestAuthentication".into(),
            meta: ObjectMeta {
                name: name.into(),
                namespace: Some("default".into()),
                ..Default::default()
            },
            spec: RequestAuthentication {
                jwt_rules: rules,
                ..Default::default()
            },
            source: SourceRef {
                file: "policies.yaml".into(),
                line: 1,
                column: 1,
            },
        }))
    }

    fn rule(uri: &str, jwks: &str, timeout: Option<&str>) -> JwtRule {
        JwtRule {
            issuer: "issuer".into(),
            jwks_uri: uri.into(),
            jwks: jwks.into(),
            timeout: timeout.map(str::to_string),
            ..Default::default()
        }
    }

    fn rules_of(snapshot: &Snapshot) -> Vec<(String, String)> {
        snapshot
            .request_authentications()
            .flat_map(|p| &p.spec.jwt_rules)
            .map(|r| (r.jwks_uri.clone(), r.jwks.clone()))
            .collect()
    }

    #[test]
    fn wants_each_source_without_inline_keys_with_its_longest_timeout() {
        let snapshot = Snapshot::new(
            1,
            vec![
                policy("a", vec![rule("https://a/jwks", "", None)]),
                policy(
                    "b",
                    vec![
                        rule("https://a/jwks", "", Some("9s")),
                        rule("https://b/jwks", "", Some("250ms")),
                        rule("", r#"{"keys":[]}"#, None),
                        JwtRule {
                            issuer: "https://accounts.example".into(),
                            ..Default::default()
                        },
                        JwtRule {
                            issuer: "testing@secure.istio.io".into(),
                            ..Default::default()
                        },
                    ],
                ),
            ],
        );
        let wanted = wanted_sources(&snapshot);
        let uri = |uri: &str| JwksSource::Uri(uri.into());
        let discovery = JwksSource::Discovery {
            issuer: "https://accounts.example".into(),
        };
        assert_eq!(
            wanted.into_iter().collect::<Vec<_>>(),
            [
                (uri("https://a/jwks"), Duration::from_secs(9)),
                (uri("https://b/jwks"), Duration::from_millis(250)),
                (discovery, DEFAULT_FETCH_TIMEOUT),
            ],
            "an issuer that is no URL has nothing to discover"
        );
    }

    #[test]
    fn fills_cached_keys_and_leaves_the_rest_alone() {
        let inline = r#"{"keys":[{"kid":"inline"}]}"#;
        let snapshot = Arc::new(Snapshot::new(
            3,
            vec![
                policy("a", vec![rule("https://a/jwks", "", None)]),
                policy(
                    "b",
                    vec![rule("https://b/jwks", "", None), rule("", inline, None)],
                ),
            ],
        ));
        let keys = ResolvedKeys::from([(
            JwksSource::Uri("https://a/jwks".into()),
            r#"{"keys":[1]}"#.into(),
        )]);
        let resolved = with_resolved_keys(&snapshot, &keys);
        assert_eq!(resolved.version, 3);
        assert_eq!(
            rules_of(&resolved),
            [
                ("https://a/jwks".into(), r#"{"keys":[1]}"#.into()),
                ("https://b/jwks".into(), String::new()),
                (String::new(), inline.into()),
            ]
        );
        assert!(
            rules_of(&snapshot)
                .iter()
                .all(|(uri, jwks)| uri.is_empty() != jwks.is_empty())
        );
        let untouched = with_resolved_keys(&snapshot, &ResolvedKeys::new());
        assert!(
            Arc::ptr_eq(&untouched, &snapshot),
            "nothing to fill: no copy"
        );
    }
}
