//! The HTTP connection manager and router: finds the route for a request,
//! picks a weighted cluster and an endpoint, forwards, and maps every
//! failure to the status and response flag Envoy would use.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::PathAndQuery;
use http::{Request, Response, StatusCode, Uri, Version};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use crate::body::{ProxyBody, full};
use crate::cluster::{Cluster, LiveEndpoint};
use crate::connection::Peer;
use crate::listener::{Direction, RouteSource};
use crate::metrics::RequestLabels;
use crate::route::{Forward, RequestView, RouteAction, RouteTable};
use crate::state::ProxyState;

const XFCC: HeaderName = HeaderName::from_static("x-forwarded-client-cert");
const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// What a request inherits from its connection.
pub struct Downstream {
    /// Metric labels every request of the connection starts from.
    pub labels: RequestLabels,
    pub peer: Option<Peer>,
    pub direction: Direction,
    pub routes: RouteSource,
    pub set_client_cert: bool,
    pub tls: bool,
}

/// Why the proxy answered itself (Envoy's response flags).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// NR: no route matched.
    NoRoute,
    /// NC: the route names a cluster the proxy does not have.
    NoCluster,
    /// UH: the cluster has no endpoints.
    NoHealthyUpstream,
    /// UF: connecting to the upstream failed.
    UpstreamUnreachable,
    /// UT: the route's timeout elapsed.
    UpstreamTimeout,
    /// DPE: the request is unusable (no authority).
    BadRequest,
}

impl Failure {
    pub fn status(self) -> StatusCode {
        match self {
            Failure::NoRoute => StatusCode::NOT_FOUND,
            Failure::NoCluster | Failure::NoHealthyUpstream | Failure::UpstreamUnreachable => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Failure::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
            Failure::BadRequest => StatusCode::BAD_REQUEST,
        }
    }

    pub fn flag(self) -> &'static str {
        match self {
            Failure::NoRoute => "NR",
            Failure::NoCluster => "NC",
            Failure::NoHealthyUpstream => "UH",
            Failure::UpstreamUnreachable => "UF",
            Failure::UpstreamTimeout => "UT",
            Failure::BadRequest => "DPE",
        }
    }

    fn body(self) -> &'static str {
        match self {
            Failure::NoRoute => "no route\n",
            Failure::NoCluster => "no cluster\n",
            Failure::NoHealthyUpstream => "no healthy upstream\n",
            Failure::UpstreamUnreachable => "upstream connect error\n",
            Failure::UpstreamTimeout => "upstream request timeout\n",
            Failure::BadRequest => "bad request: missing authority\n",
        }
    }
}

pub async fn handle(
    request: Request<Incoming>,
    downstream: Arc<Downstream>,
    state: Arc<ProxyState>,
) -> Result<Response<ProxyBody>, Infallible> {
    let started = Instant::now();
    let mut labels = downstream.labels.clone();
    let response = match route_and_forward(request, &downstream, &state, &mut labels).await {
        Ok(response) => response,
        Err(failure) => {
            labels.response_flags = failure.flag();
            let mut response = Response::new(full(failure.body()));
            *response.status_mut() = failure.status();
            response
                .headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
            response
        }
    };
    labels.response_code = response.status().as_u16();
    state.metrics.record(&labels, started.elapsed());
    Ok(response)
}

async fn route_and_forward(
    request: Request<Incoming>,
    downstream: &Downstream,
    state: &ProxyState,
    labels: &mut RequestLabels,
) -> Result<Response<ProxyBody>, Failure> {
    let authority = authority(&request).ok_or(Failure::BadRequest)?;
    let table: Arc<RouteTable> = match &downstream.routes {
        RouteSource::Inline(table) => table.clone(),
        RouteSource::Rds(name) => state
            .routes
            .load()
            .get(name)
            .cloned()
            .ok_or(Failure::NoRoute)?,
    };
    let path = request
        .uri()
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    let view = RequestView {
        method: request.method().as_str(),
        authority: &authority,
        scheme: if downstream.tls { "https" } else { "http" },
        path: path.as_str(),
        headers: request.headers(),
    };
    let route = table.find(&view).ok_or(Failure::NoRoute)?;
    let forward = match &route.action {
        RouteAction::DirectResponse { status, body } => {
            let mut response = Response::new(full(body.clone()));
            *response.status_mut() = *status;
            return Ok(response);
        }
        RouteAction::Forward(forward) => forward,
    };
    let cluster_name = forward.pick(rand::random_range(0..forward.total_weight));
    let cluster = state
        .clusters
        .load()
        .get(cluster_name)
        .cloned()
        .ok_or(Failure::NoCluster)?;
    labels.service = cluster.service.clone();
    let endpoint = cluster.pick().ok_or(Failure::NoHealthyUpstream)?;
    if downstream.direction == Direction::Outbound {
        labels.destination = endpoint.workload.clone();
    }
    let upstream = upstream_request(
        request, &authority, path, forward, &cluster, &endpoint, downstream, state,
    );
    let sent = cluster.client.request(upstream);
    let response = match forward.timeout {
        Some(timeout) => tokio::time::timeout(timeout, sent)
            .await
            .map_err(|_| Failure::UpstreamTimeout)?,
        None => sent.await,
    };
    let response = response.map_err(|error| {
        tracing::debug!(cluster = %cluster.spec.name, endpoint = %endpoint.address, %error, "upstream request failed");
        Failure::UpstreamUnreachable
    })?;
    let (mut parts, body) = response.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    Ok(Response::from_parts(parts, body.boxed()))
}

/// The request's authority: absolute-form URI (HTTP proxy requests, HTTP/2)
/// first, then the Host header, as RFC 9112 says.
fn authority(request: &Request<Incoming>) -> Option<String> {
    if let Some(authority) = request.uri().authority() {
        return Some(authority.as_str().to_string());
    }
    let host = request.headers().get(header::HOST)?.to_str().ok()?;
    (!host.is_empty()).then(|| host.to_string())
}

#[allow(clippy::too_many_arguments)]
fn upstream_request(
    request: Request<Incoming>,
    authority: &str,
    path: PathAndQuery,
    forward: &Forward,
    cluster: &Cluster,
    endpoint: &LiveEndpoint,
    downstream: &Downstream,
    state: &ProxyState,
) -> Request<ProxyBody> {
    let (mut parts, body) = request.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    parts.uri = Uri::builder()
        .scheme("http")
        .authority(endpoint.authority.clone())
        .path_and_query(path)
        .build()
        .unwrap_or_else(|_| Uri::from_static("/"));
    parts.version = if cluster.spec.http2 {
        Version::HTTP_2
    } else {
        Version::HTTP_11
    };
    let host = forward.host_rewrite.as_deref().unwrap_or(authority);
    if let Ok(host) = HeaderValue::from_str(host) {
        parts.headers.insert(header::HOST, host);
    }
    set_mesh_headers(&mut parts.headers, downstream, state);
    Request::from_parts(parts, body.boxed())
}

fn set_mesh_headers(headers: &mut HeaderMap, downstream: &Downstream, state: &ProxyState) {
    match downstream.direction {
        Direction::Outbound => {
            headers.remove(XFCC);
            if !headers.contains_key(REQUEST_ID) {
                headers.insert(REQUEST_ID, request_id());
            }
        }
        Direction::Inbound => {
            if !downstream.set_client_cert {
                return;
            }
            headers.remove(XFCC);
            let Some(peer) = &downstream.peer else { return };
            let uri = peer
                .identity
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default();
            let value = format!(
                "By={};Hash={};Subject=\"\";URI={uri}",
                state.identity.id, peer.cert_hash
            );
            if let Ok(value) = HeaderValue::from_str(&value) {
                headers.insert(XFCC, value);
            }
        }
    }
}

/// A random (version 4) UUID, as Envoy generates for `x-request-id`.
fn request_id() -> HeaderValue {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut bytes: [u8; 16] = rand::random();
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let mut text = [b'-'; 36];
    let mut at = 0;
    for (index, byte) in bytes.iter().enumerate() {
        if matches!(index, 4 | 6 | 8 | 10) {
            at += 1; // keep the dash
        }
        text[at] = HEX[usize::from(byte >> 4)];
        text[at + 1] = HEX[usize::from(byte & 0x0f)];
        at += 2;
    }
    HeaderValue::from_bytes(&text).expect("hex digits and dashes are valid header bytes")
}

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let listed: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in listed {
        headers.remove(name);
    }
    for name in [
        header::CONNECTION,
        header::PROXY_AUTHORIZATION,
        header::TE,
        header::TRAILER,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
    ] {
        headers.remove(name);
    }
    headers.remove("keep-alive");
    headers.remove("proxy-connection");
}
