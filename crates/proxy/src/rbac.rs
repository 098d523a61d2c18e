//! Envoy's RBAC HTTP filter (`envoy.extensions.filters.http.rbac.v3.RBAC`),
//! compiled into matchers over what the proxy knows of a request: the
//! verified peer identity, the connection's addresses, the request head
//! and the verified JWT. ALLOW lets a request through only if a policy matches; DENY stops
//! it if one does; LOG only records matches. A policy matches when any of
//! its permissions and any of its principals match.
//!
//! The network filter (`envoy.extensions.filters.network.rbac.v3.RBAC`)
//! decides the same way once per connection, over what a connection
//! shows: the peer identity, both addresses and the TLS server name. A
//! policy that reads the request (headers, path, JWT) is refused there, as
//! is the server name in the HTTP filter, which does not see it. The
//! decision is taken when the connection is accepted, before any upstream
//! connection; Envoy takes it on the first bytes, with the same inputs.

mod matcher;
pub use matcher::Text;
mod metadata;

use std::net::SocketAddr;

use envoy_types::pb::envoy::config::rbac::v3 as xds;
use envoy_types::pb::envoy::extensions::filters::http::rbac::v3::Rbac as RbacConfig;
use envoy_types::pb::envoy::extensions::filters::network::rbac::v3::Rbac as NetworkRbacConfig;
use http::HeaderMap;
use prost::Message;

use crate::jwt::VerifiedJwt;
use crate::unsupported::{Unsupported, reject_if};
use matcher::{Layer, Permission, Principal};

/// What the RBAC filter sees of one request.
pub struct RequestFacts<'a> {
    pub method: &'a str,
    pub authority: &'a str,
    /// With the query string, as `:path`.
    pub path: &'a str,
    pub headers: &'a HeaderMap,
    /// The verified peer's URI SAN (`spiffe://...`); `None` without mTLS.
    pub principal: Option<&'a str>,
    /// The downstream peer's address.
    pub source: SocketAddr,
    /// The address the connection was accepted on.
    pub destination: SocketAddr,
    /// The token the JWT filter verified, if any.
    pub jwt: Option<&'a VerifiedJwt>,
    /// The server name of the connection's TLS ClientHello, if any.
    pub server_name: Option<&'a str>,
}

/// What the network RBAC filter sees of one connection.
#[derive(Clone, Copy, Debug)]
pub struct ConnectionFacts<'a> {
    /// The verified peer's URI SAN (`spiffe://...`); `None` without mTLS.
    pub principal: Option<&'a str>,
    pub source: SocketAddr,
    /// Where the client sent the connection (its original destination).
    pub destination: SocketAddr,
    /// The TLS ClientHello's server name, if any.
    pub server_name: Option<&'a str>,
}

/// What a matcher reads: a request, or (network filter) a connection.
#[derive(Clone, Copy)]
enum Facts<'a> {
    Request(&'a RequestFacts<'a>),
    Connection(&'a ConnectionFacts<'a>),
}

impl<'a> Facts<'a> {
    fn principal(&self) -> Option<&'a str> {
        match self {
            Facts::Request(r) => r.principal,
            Facts::Connection(c) => c.principal,
        }
    }

    fn source(&self) -> SocketAddr {
        match self {
            Facts::Request(r) => r.source,
            Facts::Connection(c) => c.source,
        }
    }

    fn destination(&self) -> SocketAddr {
        match self {
            Facts::Request(r) => r.destination,
            Facts::Connection(c) => c.destination,
        }
    }

    /// `None` for a connection: request matchers are refused there.
    fn request(&self) -> Option<&'a RequestFacts<'a>> {
        match self {
            Facts::Request(r) => Some(r),
            Facts::Connection(_) => None,
        }
    }

    fn server_name(&self) -> Option<&'a str> {
        match self {
            Facts::Request(r) => r.server_name,
            Facts::Connection(c) => c.server_name,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Allow,
    Deny,
    Log,
}

#[derive(Debug)]
pub struct RbacFilter {
    action: Action,
    /// In name order, so the first matching name is reported consistently.
    policies: Vec<(String, Policy)>,
    /// Evaluated without enforcing: the policy they match is published as
    /// dynamic metadata, which Istio's CUSTOM action uses to call the
    /// external authorizer only for the requests its rules select.
    shadow: Option<Box<ShadowRules>>,
}

#[derive(Debug)]
struct ShadowRules {
    /// The metadata key: `{stat_prefix}shadow_effective_policy_id`.
    effective_policy_key: String,
    rules: RbacFilter,
}

#[derive(Debug)]
struct Policy {
    permissions: Vec<Permission>,
    principals: Vec<Principal>,
}

/// What one filter decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    /// Denied, by the named DENY policy, or (ALLOW) because none matched.
    Denied {
        policy: Option<String>,
    },
}

impl Verdict {
    /// Envoy's `RESPONSE_CODE_DETAILS` (HTTP) or
    /// `CONNECTION_TERMINATION_DETAILS` (network) for a denial.
    pub fn details(&self) -> Option<String> {
        match self {
            Verdict::Allowed => None,
            Verdict::Denied { policy } => Some(format!(
                "rbac_access_denied_matched_policy[{}]",
                policy.as_deref().unwrap_or("none")
            )),
        }
    }
}

impl RbacFilter {
    /// The HTTP filter's config.
    pub fn compile(bytes: &[u8]) -> Result<RbacFilter, Unsupported> {
        let config =
            RbacConfig::decode(bytes).map_err(|_| Unsupported("undecodable RBAC filter"))?;
        reject_if(config.matcher.is_some(), "rbac.matcher")?;
        reject_if(config.shadow_matcher.is_some(), "rbac.shadow_matcher")?;
        let mut filter = Self::compile_rules(config.rules, Layer::Http)?;
        if let Some(shadow) = config.shadow_rules {
            filter.shadow = Some(Box::new(ShadowRules {
                effective_policy_key: format!(
                    "{}shadow_effective_policy_id",
                    config.shadow_rules_stat_prefix
                ),
                rules: Self::compile_rules(Some(shadow), Layer::Http)?,
            }));
        }
        Ok(filter)
    }

    /// The shadow rules' metadata for `request`: the key and the name of the
    /// policy they matched, if they have one and it matched.
    pub fn shadow_effective_policy(&self, request: &RequestFacts<'_>) -> Option<(&str, &str)> {
        let shadow = self.shadow.as_ref()?;
        let matched = shadow
            .rules
            .policies
            .iter()
            .find(|(_, policy)| policy.matches(Facts::Request(request)))?;
        Some((shadow.effective_policy_key.as_str(), matched.0.as_str()))
    }

    /// The network filter's config. Either enforcement type decides once:
    /// nothing a connection shows changes after it is accepted.
    pub fn compile_network(bytes: &[u8]) -> Result<RbacFilter, Unsupported> {
        let config = NetworkRbacConfig::decode(bytes)
            .map_err(|_| Unsupported("undecodable network RBAC filter"))?;
        reject_if(config.matcher.is_some(), "network rbac.matcher")?;
        reject_if(config.shadow_rules.is_some(), "network rbac.shadow_rules")?;
        reject_if(
            config.shadow_matcher.is_some(),
            "network rbac.shadow_matcher",
        )?;
        reject_if(config.delay_deny.is_some(), "network rbac.delay_deny")?;
        Self::compile_rules(config.rules, Layer::Network)
    }

    fn compile_rules(rules: Option<xds::Rbac>, layer: Layer) -> Result<RbacFilter, Unsupported> {
        // No rules: Envoy's filter does nothing.
        let Some(rules) = rules else {
            return Ok(RbacFilter {
                action: Action::Log,
                policies: Vec::new(),
                shadow: None,
            });
        };
        reject_if(
            rules.audit_logging_options.is_some(),
            "rbac.rules.audit_logging_options",
        )?;
        let action = match xds::rbac::Action::try_from(rules.action) {
            Ok(xds::rbac::Action::Allow) => Action::Allow,
            Ok(xds::rbac::Action::Deny) => Action::Deny,
            Ok(xds::rbac::Action::Log) => Action::Log,
            Err(_) => return Err(Unsupported("rbac.rules.action")),
        };
        let mut policies = rules
            .policies
            .iter()
            .map(|(name, policy)| Ok((name.clone(), Policy::compile(policy, layer)?)))
            .collect::<Result<Vec<_>, Unsupported>>()?;
        policies.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(RbacFilter {
            action,
            policies,
            shadow: None,
        })
    }

    pub fn evaluate(&self, request: &RequestFacts<'_>) -> Verdict {
        self.decide(Facts::Request(request))
    }

    pub fn evaluate_connection(&self, connection: &ConnectionFacts<'_>) -> Verdict {
        self.decide(Facts::Connection(connection))
    }

    fn decide(&self, facts: Facts<'_>) -> Verdict {
        let matched = self
            .policies
            .iter()
            .find(|(_, policy)| policy.matches(facts))
            .map(|(name, _)| name.as_str());
        match (self.action, matched) {
            (Action::Allow, Some(_)) | (Action::Deny, None) => Verdict::Allowed,
            (Action::Allow, None) => Verdict::Denied { policy: None },
            (Action::Deny, Some(name)) => Verdict::Denied {
                policy: Some(name.to_string()),
            },
            (Action::Log, matched) => {
                if let Some(policy) = matched {
                    tracing::info!(
                        policy,
                        path = facts.request().map(|r| r.path),
                        principal = facts.principal(),
                        destination = %facts.destination(),
                        "rbac audit: policy matched"
                    );
                }
                Verdict::Allowed
            }
        }
    }
}

impl Policy {
    fn compile(policy: &xds::Policy, layer: Layer) -> Result<Policy, Unsupported> {
        reject_if(policy.condition.is_some(), "rbac policy condition")?;
        reject_if(
            policy.checked_condition.is_some(),
            "rbac policy checked_condition",
        )?;
        reject_if(policy.cel_config.is_some(), "rbac policy cel_config")?;
        Ok(Policy {
            permissions: policy
                .permissions
                .iter()
                .map(|p| Permission::compile(p, layer))
                .collect::<Result<_, _>>()?,
            principals: policy
                .principals
                .iter()
                .map(|p| Principal::compile(p, layer))
                .collect::<Result<_, _>>()?,
        })
    }

    fn matches(&self, facts: Facts<'_>) -> bool {
        self.permissions.iter().any(|p| p.matches(facts))
            && self.principals.iter().any(|p| p.matches(facts))
    }
}

#[cfg(test)]
mod network_tests;
#[cfg(test)]
mod tests;
