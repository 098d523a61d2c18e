//! The stand-in for Istio's ext-authz sample server, played by the demo
//! app as service `ext-authz`: a request carrying `x-ext-authz: allow` is
//! allowed, any other denied, both over Envoy's HTTP check protocol and
//! its gRPC `Authorization.Check`, with the sample's header and body so
//! that Istio's external authorization task reads the same.

use bytes::Bytes;
use envoy_types::pb::envoy::config::core::v3::{HeaderValue, HeaderValueOption};
use envoy_types::pb::envoy::service::auth::v3::authorization_server::{
    Authorization, AuthorizationServer,
};
use envoy_types::pb::envoy::service::auth::v3::check_response::HttpResponse;
use envoy_types::pb::envoy::service::auth::v3::{
    CheckRequest, CheckResponse, DeniedHttpResponse, OkHttpResponse,
};
use envoy_types::pb::envoy::r#type::v3::HttpStatus;
use envoy_types::pb::google::rpc::Status;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;

use super::server::AppBody;

/// The service name that makes the demo app an authorizer.
pub const SERVICE: &str = "ext-authz";
pub const CHECK_HEADER: &str = "x-ext-authz";
pub const ALLOW_VALUE: &str = "allow";
pub const RESULT_HEADER: &str = "x-ext-authz-check-result";
pub const DENIED_BODY: &str =
    "denied by ext_authz for not found header `x-ext-authz: allow` in the request";
/// What the authorizer was asked, for the upstream to show.
const RECEIVED_HEADER: &str = "x-ext-authz-check-received";
const GRPC_PERMISSION_DENIED: i32 = 7;

/// Answers one check, over gRPC or HTTP.
pub async fn respond(request: Request<Incoming>) -> Response<AppBody> {
    let grpc = request
        .headers()
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
    if grpc {
        let mut server = AuthorizationServer::new(SampleAuthorizer);
        let response = tower_service::Service::call(&mut server, request).await;
        return match response {
            Ok(response) => response.map(|body| body.map_err(Into::into).boxed_unsync()),
            Err(never) => match never {},
        };
    }
    let allowed = allows(request.headers().get(CHECK_HEADER).map(|v| v.as_bytes()));
    let received = format!(
        "{} {}{}",
        request.method(),
        request
            .headers()
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("-"),
        request.uri().path_and_query().map_or("/", |p| p.as_str())
    );
    let (status, result, body) = if allowed {
        (StatusCode::OK, "allowed", "")
    } else {
        (StatusCode::FORBIDDEN, "denied", DENIED_BODY)
    };
    let mut response = Response::new(
        Full::new(Bytes::from_static(body.as_bytes()))
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(RESULT_HEADER, http::HeaderValue::from_static(result));
    if let Ok(received) = http::HeaderValue::from_str(&received) {
        headers.insert(RECEIVED_HEADER, received);
    }
    response
}

fn allows(value: Option<&[u8]>) -> bool {
    value == Some(ALLOW_VALUE.as_bytes())
}

struct SampleAuthorizer;

#[tonic::async_trait]
impl Authorization for SampleAuthorizer {
    async fn check(
        &self,
        request: tonic::Request<CheckRequest>,
    ) -> Result<tonic::Response<CheckResponse>, tonic::Status> {
        let http = request
            .get_ref()
            .attributes
            .as_ref()
            .and_then(|a| a.request.as_ref())
            .and_then(|r| r.http.as_ref());
        let value = http.and_then(|h| h.headers.get(CHECK_HEADER));
        let received = http.map_or_else(String::new, |h| {
            format!("{} {}{}", h.method, h.host, h.path)
        });
        let response = if allows(value.map(String::as_bytes)) {
            CheckResponse {
                status: Some(Status::default()),
                http_response: Some(HttpResponse::OkResponse(OkHttpResponse {
                    headers: vec![
                        header(RESULT_HEADER, "allowed"),
                        header(RECEIVED_HEADER, &received),
                    ],
                    ..Default::default()
                })),
                ..Default::default()
            }
        } else {
            CheckResponse {
                status: Some(Status {
                    code: GRPC_PERMISSION_DENIED,
                    ..Default::default()
                }),
                http_response: Some(HttpResponse::DeniedResponse(DeniedHttpResponse {
                    status: Some(HttpStatus { code: 403 }),
                    headers: vec![header(RESULT_HEADER, "denied")],
                    body: DENIED_BODY.into(),
                })),
                ..Default::default()
            }
        };
        Ok(tonic::Response::new(response))
    }
}

fn header(key: &str, value: &str) -> HeaderValueOption {
    HeaderValueOption {
        header: Some(HeaderValue {
            key: key.into(),
            value: value.into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Whether `headers` are an answer of this authorizer (either verdict).
pub fn is_verdict(headers: &HeaderMap) -> bool {
    headers
        .get(RESULT_HEADER)
        .is_some_and(|v| v == "allowed" || v == "denied")
}
