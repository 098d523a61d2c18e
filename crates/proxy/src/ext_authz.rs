//! Envoy's external authorization filter (`envoy.filters.http.ext_authz`),
//! which Istio's CUSTOM AuthorizationPolicy action configures: the request
//! is checked with an authorization service, over HTTP (the request's
//! method, path and chosen headers, a 200 allows) or over gRPC (Envoy's
//! `Authorization.Check`), and the service's answer decides. Istio gates
//! the filter on the metadata a shadow RBAC filter publishes, so that only
//! requests the CUSTOM rules select are checked.

mod grpc_check;
mod http_check;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use envoy_types::pb::envoy::extensions::filters::http::ext_authz::v3::{
    AuthorizationResponse, ExtAuthz, ext_authz::Services,
};
use envoy_types::pb::envoy::r#type::matcher::v3::{
    ListStringMatcher, metadata_matcher::path_segment::Segment, value_matcher::MatchPattern,
};
use http::header::{self, HeaderName, HeaderValue};
use http::{HeaderMap, Response, StatusCode};
use prost::Message;

use crate::body::{ProxyBody, full};
use crate::rbac::Text;
use crate::side_call::SideCallError;
use crate::state::ProxyState;
use crate::unsupported::{Unsupported, reject_if};

pub const FILTER_TYPE: &str =
    "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz";
/// The filter whose metadata Istio gates the check on.
const RBAC_FILTER_NAME: &str = "envoy.filters.http.rbac";

#[derive(Debug)]
pub struct ExtAuthzFilter {
    service: Service,
    cluster: String,
    timeout: Duration,
    failure_mode_allow: bool,
    status_on_error: StatusCode,
    enabled_by: Option<EnabledBy>,
}

#[derive(Debug)]
enum Service {
    Http(http_check::HttpService),
    /// The request headers it sees; all when `None`.
    Grpc(Option<Vec<Text>>),
}

/// `filter_enabled_metadata`: check only when the RBAC filter's metadata
/// key holds a matching value.
#[derive(Debug)]
struct EnabledBy {
    key: String,
    value: Text,
    invert: bool,
}

/// What the filter sees of a request.
pub struct CheckInput<'a> {
    pub method: &'a str,
    /// With the query.
    pub path: &'a str,
    pub authority: &'a str,
    pub scheme: &'a str,
    pub headers: &'a HeaderMap,
    pub source: SocketAddr,
    pub destination: SocketAddr,
    /// The verified peer's URI SAN.
    pub principal: Option<&'a str>,
}

/// The service's verdict.
#[derive(Debug)]
pub enum Decision {
    Allowed(Allowed),
    /// Answer the client with this instead of routing.
    Denied(Response<ProxyBody>),
}

/// What an allowed request takes from the service's answer.
#[derive(Debug, Default)]
pub struct Allowed {
    /// Set on (or, `true`, appended to) the upstream request.
    pub upstream: Vec<(HeaderName, HeaderValue, bool)>,
    pub upstream_remove: Vec<HeaderName>,
    /// Added to the response the client gets.
    pub downstream: Vec<(HeaderName, HeaderValue)>,
}

impl Allowed {
    pub fn apply_upstream(&self, headers: &mut HeaderMap) {
        for name in &self.upstream_remove {
            headers.remove(name);
        }
        for (name, value, append) in &self.upstream {
            if *append {
                headers.append(name.clone(), value.clone());
            } else {
                headers.insert(name.clone(), value.clone());
            }
        }
    }
}

impl ExtAuthzFilter {
    pub fn compile(bytes: &[u8]) -> Result<ExtAuthzFilter, Unsupported> {
        let config =
            ExtAuthz::decode(bytes).map_err(|_| Unsupported("undecodable ext_authz filter"))?;
        reject_if(
            config.with_request_body.is_some(),
            "ext_authz.with_request_body",
        )?;
        reject_if(config.filter_enabled.is_some(), "ext_authz.filter_enabled")?;
        reject_if(
            config.deny_at_disable.is_some(),
            "ext_authz.deny_at_disable",
        )?;
        reject_if(
            config.disallowed_headers.is_some(),
            "ext_authz.disallowed_headers",
        )?;
        let status_on_error = match &config.status_on_error {
            None => StatusCode::FORBIDDEN,
            Some(status) => u16::try_from(status.code)
                .ok()
                .and_then(|code| StatusCode::from_u16(code).ok())
                .ok_or(Unsupported("ext_authz.status_on_error"))?,
        };
        // Which request headers the service sees (for gRPC, all when unset).
        let allowed_headers = name_matchers(config.allowed_headers.as_ref())?;
        let (service, cluster, timeout) = match &config.services {
            Some(Services::HttpService(http)) => {
                let uri = http
                    .server_uri
                    .as_ref()
                    .ok_or(Unsupported("ext_authz http_service without server_uri"))?;
                use envoy_types::pb::envoy::config::core::v3::http_uri::HttpUpstreamType;
                let Some(HttpUpstreamType::Cluster(cluster)) = &uri.http_upstream_type else {
                    return Err(Unsupported("ext_authz server_uri without cluster"));
                };
                let service = http_check::HttpService::compile(http, allowed_headers)?;
                (
                    Service::Http(service),
                    cluster.clone(),
                    duration(uri.timeout.as_ref()),
                )
            }
            Some(Services::GrpcService(grpc)) => {
                use envoy_types::pb::envoy::config::core::v3::grpc_service::TargetSpecifier;
                let Some(TargetSpecifier::EnvoyGrpc(envoy)) = &grpc.target_specifier else {
                    return Err(Unsupported("ext_authz grpc_service other than envoy_grpc"));
                };
                (
                    Service::Grpc(allowed_headers),
                    envoy.cluster_name.clone(),
                    duration(grpc.timeout.as_ref()),
                )
            }
            None => return Err(Unsupported("ext_authz without a service")),
        };
        let enabled_by = match &config.filter_enabled_metadata {
            None => None,
            Some(matcher) => {
                reject_if(
                    matcher.filter != RBAC_FILTER_NAME,
                    "ext_authz.filter_enabled_metadata of a filter other than rbac",
                )?;
                let [segment] = matcher.path.as_slice() else {
                    return Err(Unsupported("ext_authz.filter_enabled_metadata path"));
                };
                let Some(Segment::Key(key)) = &segment.segment else {
                    return Err(Unsupported("ext_authz.filter_enabled_metadata path"));
                };
                let value = match matcher
                    .value
                    .as_ref()
                    .and_then(|v| v.match_pattern.as_ref())
                {
                    Some(MatchPattern::StringMatch(string)) => Text::compile(string)?,
                    _ => return Err(Unsupported("ext_authz.filter_enabled_metadata value")),
                };
                Some(EnabledBy {
                    key: key.clone(),
                    value,
                    invert: matcher.invert,
                })
            }
        };
        Ok(ExtAuthzFilter {
            service,
            cluster,
            timeout,
            failure_mode_allow: config.failure_mode_allow,
            status_on_error,
            enabled_by,
        })
    }

    /// Whether the request is checked, given the RBAC filters' metadata
    /// (key, value) so far.
    pub fn enabled(&self, metadata: &[(&str, &str)]) -> bool {
        let Some(gate) = &self.enabled_by else {
            return true;
        };
        let matched = metadata
            .iter()
            .any(|(key, value)| *key == gate.key && gate.value.matches(value));
        matched != gate.invert
    }

    pub async fn check(&self, input: &CheckInput<'_>, state: &Arc<ProxyState>) -> Decision {
        let outcome = match &self.service {
            Service::Http(http) => http.check(&self.cluster, self.timeout, input, state).await,
            Service::Grpc(headers) => {
                let headers = headers.as_deref();
                grpc_check::check(&self.cluster, self.timeout, headers, input, state).await
            }
        };
        match outcome {
            Ok(decision) => decision,
            Err(error) => {
                tracing::info!(cluster = self.cluster, %error, "ext_authz: authorization service failed");
                if self.failure_mode_allow {
                    Decision::Allowed(Allowed::default())
                } else {
                    let mut response = Response::new(full(""));
                    *response.status_mut() = self.status_on_error;
                    Decision::Denied(response)
                }
            }
        }
    }
}

/// Why a check got no verdict.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("{0}")]
    Call(#[from] SideCallError),
    #[error("the gRPC service answered status {0}")]
    GrpcStatus(String),
    #[error("undecodable CheckResponse")]
    Undecodable,
}

/// Envoy's default ext_authz timeout.
const DEFAULT_TIMEOUT: Duration = Duration::from_millis(200);

fn duration(value: Option<&envoy_types::pb::google::protobuf::Duration>) -> Duration {
    value.map_or(DEFAULT_TIMEOUT, |d| {
        Duration::new(
            d.seconds.max(0) as u64,
            d.nanos.clamp(0, 999_999_999) as u32,
        )
    })
}

/// A header-name list matcher; `None` when the list is not set.
fn name_matchers(list: Option<&ListStringMatcher>) -> Result<Option<Vec<Text>>, Unsupported> {
    list.map(|list| list.patterns.iter().map(Text::compile).collect())
        .transpose()
}

fn any_matches(matchers: &[Text], name: &str) -> bool {
    matchers.iter().any(|m| m.matches(name))
}

/// A denial as the service wrote it: its status, body and the headers the
/// client may see.
fn denial(
    status: StatusCode,
    headers: &HeaderMap,
    allowed: Option<&[Text]>,
    body: bytes::Bytes,
) -> Response<ProxyBody> {
    let mut response = Response::new(full(body));
    *response.status_mut() = status;
    // The proxy frames the body itself; the host is not the service's to set.
    const NEVER_SHOWN: [HeaderName; 4] = [
        header::CONTENT_LENGTH,
        header::TRANSFER_ENCODING,
        header::CONNECTION,
        header::HOST,
    ];
    for (name, value) in headers {
        let shown = !NEVER_SHOWN.contains(name)
            && allowed.is_none_or(|allowed| any_matches(allowed, name.as_str()));
        if shown {
            response.headers_mut().append(name.clone(), value.clone());
        }
    }
    response
}

fn response_matchers(
    response: Option<&AuthorizationResponse>,
) -> Result<[Option<Vec<Text>>; 3], Unsupported> {
    let Some(response) = response else {
        return Ok([None, None, None]);
    };
    reject_if(
        response.allowed_upstream_headers_to_append.is_some(),
        "ext_authz allowed_upstream_headers_to_append",
    )?;
    reject_if(
        response.dynamic_metadata_from_headers.is_some(),
        "ext_authz dynamic_metadata_from_headers",
    )?;
    Ok([
        name_matchers(response.allowed_upstream_headers.as_ref())?,
        name_matchers(response.allowed_client_headers.as_ref())?,
        name_matchers(response.allowed_client_headers_on_success.as_ref())?,
    ])
}

#[cfg(test)]
mod tests;
