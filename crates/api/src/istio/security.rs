//! Istio security resources (security.istio.io v1 and v1beta1):
//! `PeerAuthentication` (which mTLS mode a workload's inbound ports accept),
//! `RequestAuthentication` (which end-user JWTs a workload accepts) and
//! `AuthorizationPolicy` (who may call what). The whole documented
//! schemas; unknown fields are warnings.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::WorkloadSelector;

/// The API versions under which Istio serves the same security schemas.
pub const SECURITY_API_VERSIONS: [&str; 2] = ["security.istio.io/v1", "security.istio.io/v1beta1"];

/// The namespace whose selector-less policies apply to the whole mesh
/// (Istio's default `rootNamespace`).
pub const ROOT_NAMESPACE: &str = "istio-system";

#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct PeerAuthentication {
    /// Absent or empty: the policy covers its whole namespace (or, in the
    /// root namespace, the whole mesh).
    pub selector: Option<WorkloadSelector>,
    pub mtls: Option<PeerMtls>,
    /// Per workload port; only allowed with a selector.
    pub port_level_mtls: BTreeMap<u32, PeerMtls>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct PeerMtls {
    pub mode: MtlsMode,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum MtlsMode {
    /// Inherit from the enclosing policy (PERMISSIVE at the mesh level).
    #[default]
    Unset,
    Disable,
    Permissive,
    Strict,
}

/// End-user authentication: the JWTs a workload accepts. A request without
/// a token passes (an AuthorizationPolicy can require one); a request with
/// a token that no rule verifies is refused with 401.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct RequestAuthentication {
    pub selector: Option<WorkloadSelector>,
    pub target_ref: Option<PolicyTargetReference>,
    pub target_refs: Vec<PolicyTargetReference>,
    pub jwt_rules: Vec<JwtRule>,
}

/// One accepted issuer: where its keys are and where its tokens are read.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct JwtRule {
    pub issuer: String,
    /// A token must name one of these in `aud`; empty: `aud` is not checked.
    pub audiences: Vec<String>,
    pub jwks_uri: String,
    /// The JWKS itself, as a JSON string.
    pub jwks: String,
    /// None of `fromHeaders`, `fromParams`, `fromCookies`: the token is
    /// read from `Authorization: Bearer` and the `access_token` parameter.
    pub from_headers: Vec<JwtHeader>,
    pub from_params: Vec<String>,
    pub from_cookies: Vec<String>,
    /// A header to receive the verified payload (base64url).
    pub output_payload_to_header: String,
    pub forward_original_token: bool,
    pub output_claim_to_headers: Vec<ClaimToHeader>,
    /// How long fetching `jwksUri` may take (a duration string).
    pub timeout: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct JwtHeader {
    pub name: String,
    /// e.g. `"Bearer "`: stripped from the value; a value without it holds no token.
    pub prefix: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ClaimToHeader {
    pub header: String,
    pub claim: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct AuthorizationPolicy {
    pub selector: Option<WorkloadSelector>,
    pub target_ref: Option<PolicyTargetReference>,
    pub target_refs: Vec<PolicyTargetReference>,
    /// No rules: an ALLOW policy matches nothing (denies everything); a
    /// rule written `{}` matches every request.
    pub rules: Vec<Rule>,
    pub action: AuthorizationAction,
    pub provider: Option<ExtensionProvider>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct PolicyTargetReference {
    pub group: String,
    pub kind: String,
    pub name: String,
    pub namespace: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AuthorizationAction {
    #[default]
    Allow,
    Deny,
    Audit,
    Custom,
}

impl AuthorizationAction {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthorizationAction::Allow => "ALLOW",
            AuthorizationAction::Deny => "DENY",
            AuthorizationAction::Audit => "AUDIT",
            AuthorizationAction::Custom => "CUSTOM",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ExtensionProvider {
    pub name: String,
}

/// Matches when every written part matches: any `from`, any `to`, all `when`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Rule {
    pub from: Vec<RuleFrom>,
    pub to: Vec<RuleTo>,
    pub when: Vec<Condition>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct RuleFrom {
    pub source: Option<Source>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct RuleTo {
    pub operation: Option<Operation>,
}

/// Who calls. Within a field values are alternatives; fields are all required.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Source {
    pub principals: Vec<String>,
    pub not_principals: Vec<String>,
    pub request_principals: Vec<String>,
    pub not_request_principals: Vec<String>,
    pub namespaces: Vec<String>,
    pub not_namespaces: Vec<String>,
    pub service_accounts: Vec<String>,
    pub not_service_accounts: Vec<String>,
    pub ip_blocks: Vec<String>,
    pub not_ip_blocks: Vec<String>,
    pub remote_ip_blocks: Vec<String>,
    pub not_remote_ip_blocks: Vec<String>,
}

impl Source {
    /// Every field with its name, as written in YAML.
    pub fn fields(&self) -> [(&'static str, &[String]); 12] {
        [
            ("principals", &self.principals),
            ("notPrincipals", &self.not_principals),
            ("requestPrincipals", &self.request_principals),
            ("notRequestPrincipals", &self.not_request_principals),
            ("namespaces", &self.namespaces),
            ("notNamespaces", &self.not_namespaces),
            ("serviceAccounts", &self.service_accounts),
            ("notServiceAccounts", &self.not_service_accounts),
            ("ipBlocks", &self.ip_blocks),
            ("notIpBlocks", &self.not_ip_blocks),
            ("remoteIpBlocks", &self.remote_ip_blocks),
            ("notRemoteIpBlocks", &self.not_remote_ip_blocks),
        ]
    }
}

/// What is called. Within a field values are alternatives; fields are all required.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Operation {
    pub hosts: Vec<String>,
    pub not_hosts: Vec<String>,
    /// Port numbers, written as strings in Istio's API.
    pub ports: Vec<String>,
    pub not_ports: Vec<String>,
    pub methods: Vec<String>,
    pub not_methods: Vec<String>,
    pub paths: Vec<String>,
    pub not_paths: Vec<String>,
}

impl Operation {
    /// Every field with its name, as written in YAML.
    pub fn fields(&self) -> [(&'static str, &[String]); 8] {
        [
            ("hosts", &self.hosts),
            ("notHosts", &self.not_hosts),
            ("ports", &self.ports),
            ("notPorts", &self.not_ports),
            ("methods", &self.methods),
            ("notMethods", &self.not_methods),
            ("paths", &self.paths),
            ("notPaths", &self.not_paths),
        ]
    }
}

/// `key` is one of Istio's attribute names, e.g. `request.headers[x-user]`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Condition {
    pub key: String,
    pub values: Vec<String>,
    pub not_values: Vec<String>,
}

/// A `when` key, parsed. Istio documents these attribute names; anything
/// else is rejected when the policy is applied.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ConditionKey {
    /// `request.headers[NAME]`.
    RequestHeader(String),
    SourceIp,
    RemoteIp,
    SourceNamespace,
    SourcePrincipal,
    RequestAuthPrincipal,
    RequestAuthAudiences,
    RequestAuthPresenter,
    /// `request.auth.claims[a][b]`: the claim's path.
    RequestAuthClaim(Vec<String>),
    DestinationIp,
    DestinationPort,
    ConnectionSni,
    /// `experimental.envoy.filters.*`.
    Experimental(String),
}

impl ConditionKey {
    pub fn parse(key: &str) -> Result<ConditionKey, String> {
        let simple = match key {
            "source.ip" => Some(ConditionKey::SourceIp),
            "remote.ip" => Some(ConditionKey::RemoteIp),
            "source.namespace" => Some(ConditionKey::SourceNamespace),
            "source.principal" => Some(ConditionKey::SourcePrincipal),
            "request.auth.principal" => Some(ConditionKey::RequestAuthPrincipal),
            "request.auth.audiences" => Some(ConditionKey::RequestAuthAudiences),
            "request.auth.presenter" => Some(ConditionKey::RequestAuthPresenter),
            "destination.ip" => Some(ConditionKey::DestinationIp),
            "destination.port" => Some(ConditionKey::DestinationPort),
            "connection.sni" => Some(ConditionKey::ConnectionSni),
            _ => None,
        };
        if let Some(simple) = simple {
            return Ok(simple);
        }
        if let Some(rest) = key.strip_prefix("request.headers") {
            return match bracketed(rest).as_deref() {
                Some([name]) => Ok(ConditionKey::RequestHeader(name.clone())),
                _ => Err(format!("invalid key: {key}")),
            };
        }
        if let Some(rest) = key.strip_prefix("request.auth.claims") {
            return match bracketed(rest) {
                Some(path) => Ok(ConditionKey::RequestAuthClaim(path)),
                None => Err(format!("invalid key: {key}")),
            };
        }
        if key.starts_with("experimental.envoy.filters.") {
            return Ok(ConditionKey::Experimental(key.to_string()));
        }
        Err(format!("unknown attribute: {key}"))
    }
}

/// `[a][b]` as `["a", "b"]`; `None` unless it is one or more non-empty
/// bracketed names and nothing else.
fn bracketed(mut text: &str) -> Option<Vec<String>> {
    let mut names = Vec::new();
    while !text.is_empty() {
        let (name, rest) = text.strip_prefix('[')?.split_once(']')?;
        if name.is_empty() || name.contains('[') {
            return None;
        }
        names.push(name.to_string());
        text = rest;
    }
    (!names.is_empty()).then_some(names)
}
