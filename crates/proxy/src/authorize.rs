//! The connection manager's authorization filters, in their order: RBAC
//! filters (AuthorizationPolicy's AUDIT, DENY and ALLOW; a shadow one for
//! CUSTOM) and the external authorization filter CUSTOM adds, gated on
//! what that shadow filter matched. Any of them can refuse the request.

use std::sync::Arc;

use http::header::{HeaderName, HeaderValue};
use http::uri::PathAndQuery;
use http::{Request, Response};

use crate::body::ProxyBody;
use crate::ext_authz::{CheckInput, Decision, ExtAuthzFilter};
use crate::forward::Downstream;
use crate::jwt::VerifiedJwt;
use crate::rbac::{RbacFilter, RequestFacts, Verdict};
use crate::state::ProxyState;

#[derive(Debug)]
pub enum AuthzFilter {
    Rbac(RbacFilter),
    External(Box<ExtAuthzFilter>),
}

/// Why a request may not go on.
pub enum Refusal {
    /// An RBAC filter denied it (Envoy's 403 `RBAC: access denied`).
    Rbac,
    /// The external authorizer's answer, for the client.
    External(Response<ProxyBody>),
}

/// Runs the filters in order over `request`; what an allowing external
/// authorizer adds to the client's response comes back.
pub async fn authorize(
    request: &mut Request<ProxyBody>,
    authority: &str,
    downstream: &Downstream,
    jwt: Option<&VerifiedJwt>,
    state: &Arc<ProxyState>,
) -> Result<Vec<(HeaderName, HeaderValue)>, Refusal> {
    let mut response_headers = Vec::new();
    if downstream.authz.is_empty() {
        return Ok(response_headers);
    }
    let principal = downstream
        .peer
        .as_ref()
        .and_then(|peer| peer.identity.as_ref())
        .map(ToString::to_string);
    let scheme = if downstream.tls { "https" } else { "http" };
    // The shadow rules' matches, as (metadata key, policy name).
    let mut metadata: Vec<(String, String)> = Vec::new();
    // Filters change headers at most, never the path.
    let path = request
        .uri()
        .path_and_query()
        .map_or("/", PathAndQuery::as_str)
        .to_owned();
    for filter in downstream.authz.iter() {
        match filter {
            AuthzFilter::Rbac(rbac) => {
                let facts = RequestFacts {
                    method: request.method().as_str(),
                    authority,
                    path: &path,
                    headers: request.headers(),
                    principal: principal.as_deref(),
                    source: downstream.addresses.remote,
                    destination: downstream.addresses.local,
                    jwt,
                    server_name: downstream.server_name.as_deref(),
                };
                if let Some((key, policy)) = rbac.shadow_effective_policy(&facts) {
                    metadata.push((key.to_owned(), policy.to_owned()));
                }
                if let Verdict::Denied { policy } = rbac.evaluate(&facts) {
                    tracing::info!(
                        principal = facts.principal.unwrap_or("-"),
                        source = %facts.source,
                        path = facts.path,
                        policy = policy.as_deref().unwrap_or("none matched an ALLOW filter"),
                        "rbac: access denied"
                    );
                    return Err(Refusal::Rbac);
                }
            }
            AuthzFilter::External(external) => {
                let gate: Vec<(&str, &str)> = metadata
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                if !external.enabled(&gate) {
                    continue;
                }
                let input = CheckInput {
                    method: request.method().as_str(),
                    path: &path,
                    authority,
                    scheme,
                    headers: request.headers(),
                    source: downstream.addresses.remote,
                    destination: downstream.addresses.local,
                    principal: principal.as_deref(),
                };
                match external.check(&input, state).await {
                    Decision::Allowed(allowed) => {
                        allowed.apply_upstream(request.headers_mut());
                        response_headers.extend(allowed.downstream);
                    }
                    Decision::Denied(response) => {
                        tracing::info!(
                            principal = principal.as_deref().unwrap_or("-"),
                            source = %downstream.addresses.remote,
                            path,
                            status = response.status().as_u16(),
                            "ext_authz: request denied"
                        );
                        return Err(Refusal::External(response));
                    }
                }
            }
        }
    }
    Ok(response_headers)
}
