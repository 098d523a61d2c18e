//! The HTTP authorization service: the request's method and path (after
//! `path_prefix`), its host, the headers Envoy always sends and those
//! `allowed_headers` names, with an empty body. A 200 allows; any other
//! answer is the client's answer.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use envoy_types::pb::envoy::extensions::filters::http::ext_authz::v3::HttpService as XdsHttpService;
use http::header::{self, HeaderName, HeaderValue};
use http::uri::PathAndQuery;
use http::{HeaderMap, Method, StatusCode};

use super::{
    Allowed, CheckError, CheckInput, Decision, any_matches, denial, name_matchers,
    response_matchers,
};
use crate::rbac::Text;
use crate::side_call::{self, SideCall};
use crate::state::ProxyState;
use crate::unsupported::{Unsupported, reject_if};

/// Sent whatever `allowed_headers` says, besides the host (Envoy also
/// sends the content length, but the check has no body).
const ALWAYS_SENT: HeaderName = header::AUTHORIZATION;

#[derive(Debug)]
pub struct HttpService {
    path_prefix: String,
    allowed_headers: Vec<Text>,
    headers_to_add: Vec<(HeaderName, HeaderValue)>,
    upstream_headers: Option<Vec<Text>>,
    client_headers: Option<Vec<Text>>,
    client_headers_on_success: Option<Vec<Text>>,
}

impl HttpService {
    /// `allowed_headers`: the filter's; the older per-service list counts too.
    pub fn compile(
        service: &XdsHttpService,
        allowed_headers: Option<Vec<Text>>,
    ) -> Result<HttpService, Unsupported> {
        reject_if(
            !service.path_override.is_empty(),
            "ext_authz http_service.path_override",
        )?;
        reject_if(
            service.retry_policy.is_some(),
            "ext_authz http_service.retry_policy",
        )?;
        reject_if(
            !service.path_prefix.is_empty() && !service.path_prefix.starts_with('/'),
            "ext_authz path_prefix not starting with /",
        )?;
        let request = service.authorization_request.as_ref();
        #[allow(deprecated)]
        let older = name_matchers(request.and_then(|r| r.allowed_headers.as_ref()))?;
        let allowed_headers: Vec<Text> =
            allowed_headers.into_iter().chain(older).flatten().collect();
        let mut headers_to_add = Vec::new();
        for option in request
            .map(|r| r.headers_to_add.as_slice())
            .unwrap_or_default()
        {
            let name = HeaderName::from_bytes(option.key.to_ascii_lowercase().as_bytes())
                .map_err(|_| Unsupported("ext_authz headers_to_add name"))?;
            let value = HeaderValue::from_str(&option.value)
                .map_err(|_| Unsupported("ext_authz headers_to_add value"))?;
            headers_to_add.push((name, value));
        }
        let [upstream_headers, client_headers, client_headers_on_success] =
            response_matchers(service.authorization_response.as_ref())?;
        Ok(HttpService {
            path_prefix: service.path_prefix.trim_end_matches('/').to_owned(),
            allowed_headers,
            headers_to_add,
            upstream_headers,
            client_headers,
            client_headers_on_success,
        })
    }

    pub async fn check(
        &self,
        cluster: &str,
        timeout: Duration,
        input: &CheckInput<'_>,
        state: &Arc<ProxyState>,
    ) -> Result<Decision, CheckError> {
        let mut headers = HeaderMap::new();
        for (name, value) in input.headers {
            let sent = *name == ALWAYS_SENT || any_matches(&self.allowed_headers, name.as_str());
            if sent && *name != header::HOST && *name != header::CONTENT_LENGTH {
                headers.append(name.clone(), value.clone());
            }
        }
        if let Ok(host) = HeaderValue::from_str(input.authority) {
            headers.insert(header::HOST, host);
        }
        for (name, value) in &self.headers_to_add {
            headers.insert(name.clone(), value.clone());
        }
        let path = PathAndQuery::try_from(format!("{}{}", self.path_prefix, input.path))
            .map_err(|_| CheckError::Undecodable)?;
        let call = SideCall {
            cluster,
            method: Method::from_bytes(input.method.as_bytes()).unwrap_or(Method::GET),
            path,
            headers,
            body: Bytes::new(),
            grpc: false,
            timeout,
        };
        let answer = side_call::send(call, state).await?;
        if answer.status != StatusCode::OK {
            return Ok(Decision::Denied(denial(
                answer.status,
                &answer.headers,
                self.client_headers.as_deref(),
                answer.body,
            )));
        }
        let mut allowed = Allowed::default();
        for (name, value) in &answer.headers {
            if self
                .upstream_headers
                .as_deref()
                .is_some_and(|m| any_matches(m, name.as_str()))
            {
                allowed.upstream.push((name.clone(), value.clone(), false));
            }
            if self
                .client_headers_on_success
                .as_deref()
                .is_some_and(|m| any_matches(m, name.as_str()))
            {
                allowed.downstream.push((name.clone(), value.clone()));
            }
        }
        Ok(Decision::Allowed(allowed))
    }
}
