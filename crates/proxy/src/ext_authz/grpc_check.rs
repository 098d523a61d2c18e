//! The gRPC authorization service (`envoy.service.auth.v3.Authorization`):
//! a `CheckRequest` describing the peer and the request, and the
//! `CheckResponse`'s status deciding (OK allows, with its header changes;
//! anything else denies, with the denied response it describes).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use envoy_types::pb::envoy::config::core::v3::{
    Address, HeaderValueOption, SocketAddress, address, socket_address,
};
use envoy_types::pb::envoy::service::auth::v3::attribute_context::{HttpRequest, Peer, Request};
use envoy_types::pb::envoy::service::auth::v3::check_response::HttpResponse;
use envoy_types::pb::envoy::service::auth::v3::{AttributeContext, CheckRequest, CheckResponse};
use http::header::{self, HeaderName, HeaderValue};
use http::uri::PathAndQuery;
use http::{HeaderMap, Method, StatusCode};
use prost::Message;

use super::{Allowed, CheckError, CheckInput, Decision, any_matches, denial};
use crate::rbac::Text;
use crate::side_call::{self, SideCall, grpc_frame};
use crate::state::ProxyState;

const CHECK_PATH: &str = "/envoy.service.auth.v3.Authorization/Check";
const GRPC_OK: i32 = 0;

pub async fn check(
    cluster: &str,
    timeout: Duration,
    allowed_headers: Option<&[Text]>,
    input: &CheckInput<'_>,
    state: &Arc<ProxyState>,
) -> Result<Decision, CheckError> {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    let call = SideCall {
        cluster,
        method: Method::POST,
        path: PathAndQuery::from_static(CHECK_PATH),
        headers,
        body: grpc_frame(&check_request(input, allowed_headers).encode_to_vec()),
        grpc: true,
        timeout,
    };
    let answer = side_call::send(call, state).await?;
    match answer.grpc_status() {
        Some("0") => {}
        status => return Err(CheckError::GrpcStatus(status.unwrap_or("none").to_owned())),
    }
    let message = answer.grpc_message().ok_or(CheckError::Undecodable)?;
    let response = CheckResponse::decode(message).map_err(|_| CheckError::Undecodable)?;
    Ok(decision(response))
}

fn check_request(input: &CheckInput<'_>, allowed_headers: Option<&[Text]>) -> CheckRequest {
    let mut headers: HashMap<String, String> = HashMap::new();
    for (name, value) in input.headers {
        if allowed_headers.is_some_and(|allowed| !any_matches(allowed, name.as_str())) {
            continue;
        }
        let value = String::from_utf8_lossy(value.as_bytes());
        headers
            .entry(name.as_str().to_owned())
            .and_modify(|joined| {
                joined.push(',');
                joined.push_str(&value);
            })
            .or_insert_with(|| value.into_owned());
    }
    headers.insert(":authority".into(), input.authority.to_owned());
    headers.insert(":method".into(), input.method.to_owned());
    headers.insert(":path".into(), input.path.to_owned());
    let query = input.path.split_once('?').map_or("", |(_, query)| query);
    let http = HttpRequest {
        id: header_text(input.headers, "x-request-id"),
        method: input.method.to_owned(),
        headers,
        path: input.path.to_owned(),
        host: input.authority.to_owned(),
        scheme: input.scheme.to_owned(),
        query: query.to_owned(),
        size: header_text(input.headers, "content-length")
            .parse()
            .unwrap_or(-1),
        protocol: "HTTP/1.1".to_owned(),
        ..Default::default()
    };
    CheckRequest {
        attributes: Some(AttributeContext {
            source: Some(Peer {
                address: Some(socket(input.source)),
                principal: input.principal.unwrap_or_default().to_owned(),
                ..Default::default()
            }),
            destination: Some(Peer {
                address: Some(socket(input.destination)),
                ..Default::default()
            }),
            request: Some(Request {
                time: Some(timestamp(SystemTime::now())),
                http: Some(http),
            }),
            ..Default::default()
        }),
    }
}

fn timestamp(time: SystemTime) -> envoy_types::pb::google::protobuf::Timestamp {
    let since_epoch = time
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    envoy_types::pb::google::protobuf::Timestamp {
        seconds: i64::try_from(since_epoch.as_secs()).unwrap_or(i64::MAX),
        nanos: since_epoch.subsec_nanos() as i32,
    }
}

fn header_text(headers: &HeaderMap, name: &str) -> String {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

fn socket(address: std::net::SocketAddr) -> Address {
    Address {
        address: Some(address::Address::SocketAddress(SocketAddress {
            address: address.ip().to_string(),
            port_specifier: Some(socket_address::PortSpecifier::PortValue(
                address.port().into(),
            )),
            ..Default::default()
        })),
    }
}

/// The verdict a `CheckResponse` gives.
pub fn decision(response: CheckResponse) -> Decision {
    let allowed = response.status.as_ref().is_none_or(|s| s.code == GRPC_OK);
    if !allowed {
        let (status, headers, body) = match response.http_response {
            Some(HttpResponse::DeniedResponse(denied)) => {
                let status = denied
                    .status
                    .and_then(|s| u16::try_from(s.code).ok())
                    .and_then(|code| StatusCode::from_u16(code).ok())
                    .filter(|code| code.as_u16() != 0)
                    .unwrap_or(StatusCode::FORBIDDEN);
                let headers = header_map(&denied.headers);
                (status, headers, denied.body)
            }
            _ => (StatusCode::FORBIDDEN, HeaderMap::new(), String::new()),
        };
        return Decision::Denied(denial(status, &headers, None, body.into()));
    }
    let mut allowed = Allowed::default();
    if let Some(HttpResponse::OkResponse(ok)) = response.http_response {
        allowed.upstream = options(&ok.headers);
        allowed.upstream_remove = ok
            .headers_to_remove
            .iter()
            .filter_map(|name| HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes()).ok())
            .filter(|name| *name != header::HOST)
            .collect();
        allowed.downstream = options(&ok.response_headers_to_add)
            .into_iter()
            .map(|(name, value, _)| (name, value))
            .collect();
    }
    Decision::Allowed(allowed)
}

/// Header options as (name, value, append); unusable ones are skipped.
// `append` is deprecated but authorization services still send it.
#[allow(deprecated)]
fn options(options: &[HeaderValueOption]) -> Vec<(HeaderName, HeaderValue, bool)> {
    options
        .iter()
        .filter_map(|option| {
            let header = option.header.as_ref()?;
            let name = HeaderName::from_bytes(header.key.to_ascii_lowercase().as_bytes()).ok()?;
            let value = if header.raw_value.is_empty() {
                HeaderValue::from_str(&header.value).ok()?
            } else {
                HeaderValue::from_bytes(&header.raw_value).ok()?
            };
            // Unlike route header options, ext_authz overwrites by default.
            let append = option.append.as_ref().is_some_and(|a| a.value);
            Some((name, value, append))
        })
        .collect()
}

fn header_map(options_list: &[HeaderValueOption]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, value, _) in options(options_list) {
        headers.append(name, value);
    }
    headers
}
