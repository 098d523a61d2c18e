//! Envoy's RBAC HTTP filter (`envoy.extensions.filters.http.rbac.v3.RBAC`),
//! compiled into matchers over what the proxy knows of a request: the
//! verified peer identity, the connection's addresses and the request
//! head. ALLOW lets a request through only if a policy matches; DENY stops
//! it if one does; LOG only records matches. A policy matches when any of
//! its permissions and any of its principals match.

mod matcher;

use std::net::SocketAddr;

use envoy_types::pb::envoy::config::rbac::v3 as xds;
use envoy_types::pb::envoy::extensions::filters::http::rbac::v3::Rbac as RbacConfig;
use http::HeaderMap;
use prost::Message;

use crate::unsupported::{Unsupported, reject_if};
use matcher::{Permission, Principal};

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

impl RbacFilter {
    pub fn compile(bytes: &[u8]) -> Result<RbacFilter, Unsupported> {
        let config =
            RbacConfig::decode(bytes).map_err(|_| Unsupported("undecodable RBAC filter"))?;
        reject_if(config.matcher.is_some(), "rbac.matcher")?;
        reject_if(config.shadow_rules.is_some(), "rbac.shadow_rules")?;
        reject_if(config.shadow_matcher.is_some(), "rbac.shadow_matcher")?;
        // No rules: Envoy's filter does nothing.
        let Some(rules) = config.rules else {
            return Ok(RbacFilter {
                action: Action::Log,
                policies: Vec::new(),
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
            .map(|(name, policy)| Ok((name.clone(), Policy::compile(policy)?)))
            .collect::<Result<Vec<_>, Unsupported>>()?;
        policies.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(RbacFilter { action, policies })
    }

    pub fn evaluate(&self, request: &RequestFacts<'_>) -> Verdict {
        let matched = self
            .policies
            .iter()
            .find(|(_, policy)| policy.matches(request))
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
                        path = request.path,
                        principal = request.principal,
                        "rbac audit: policy matched"
                    );
                }
                Verdict::Allowed
            }
        }
    }
}

impl Policy {
    fn compile(policy: &xds::Policy) -> Result<Policy, Unsupported> {
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
                .map(Permission::compile)
                .collect::<Result<_, _>>()?,
            principals: policy
                .principals
                .iter()
                .map(Principal::compile)
                .collect::<Result<_, _>>()?,
        })
    }

    fn matches(&self, request: &RequestFacts<'_>) -> bool {
        self.permissions.iter().any(|p| p.matches(request))
            && self.principals.iter().any(|p| p.matches(request))
    }
}

#[cfg(test)]
mod tests;
