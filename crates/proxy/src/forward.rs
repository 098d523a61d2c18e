//! The HTTP connection manager and router: finds the route for a request,
//! applies the route's fault, answers redirects and direct responses, or
//! picks a weighted cluster and sends the request there (see
//! [`crate::attempt`] for retries), and maps every failure to the status
//! and response flags Envoy would use.

use std::convert::Infallible;
use std::sync::Arc;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::PathAndQuery;
use http::{Request, Response, StatusCode};

use crate::access_log::AccessLogger;
use crate::attempt::{Attempts, UpstreamHead};
use crate::authorize::{AuthzFilter, Refusal, authorize};
use crate::body::{ProxyBody, full};
use crate::cluster::Cluster;
use crate::connection::{Addresses, Peer};
pub use crate::failure::Failure;
use crate::hash_policy::{HashInput, request_hash};
use crate::jwt::{JwtFilter, VerifiedJwt};
use crate::listener::{Direction, RouteSource};
use crate::metrics::RequestLabels;
use crate::peer_metadata;
pub use crate::recording::Exchange;
use crate::recording::Recording;
use crate::replay::{BUFFER_LIMIT, RequestBody};
use crate::response_flags::Flag;
use crate::rewrite::{Origin, Redirect};
use crate::route::{ClusterTarget, Forward, RequestView, Route, RouteAction, RouteTable};
use crate::state::ProxyState;

mod passthrough;

use passthrough::{original_destination, passthrough_service};

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
    /// The connection manager runs the fault filter (routes configure it).
    pub fault_filter: bool,
    /// The connection manager runs the CORS filter (routes configure it).
    pub cors_filter: bool,
    /// Verifies end-user tokens before RBAC runs.
    pub jwt: Option<Arc<JwtFilter>>,
    /// Run in order before routing; any of them can deny the request.
    pub authz: Arc<[AuthzFilter]>,
    pub addresses: Addresses,
    /// The server name of the connection's TLS ClientHello, if any.
    pub server_name: Option<String>,
    /// Where each request's line goes once it is over.
    pub access_logs: Arc<[AccessLogger]>,
    /// The calling workload, from its sidecar's metadata exchange.
    pub peer_cache: peer_metadata::PeerCache,
    /// The metric series this connection last recorded into.
    pub series: crate::metrics::SeriesCache,
    /// The connection manager's `tracing`, if it traces.
    pub tracing: Option<Arc<crate::trace::TracingSpec>>,
    /// How request paths are rewritten before anything reads them.
    pub path_normalization: crate::path_normalization::PathNormalization,
    /// The stats filter; `None`: the listener reports no Istio metrics.
    pub stats: Option<Arc<crate::stats_filter::StatsSpec>>,
    /// What of each request the tag overrides and log filters read.
    pub attribute_roots: crate::attributes::Roots,
}

pub async fn handle(
    mut request: Request<hyper::body::Incoming>,
    downstream: Arc<Downstream>,
    state: Arc<ProxyState>,
) -> Result<Response<ProxyBody>, Infallible> {
    // As Envoy's connection manager, before anything (the access log
    // included) reads the request.
    if downstream.direction == Direction::Outbound && !request.headers().contains_key(REQUEST_ID) {
        request.headers_mut().insert(REQUEST_ID, request_id());
    }
    // Also before anything reads the request: the path every later step
    // (and the upstream) sees is the normalized one.
    let refusal = crate::request_line::screen(&mut request, &downstream.path_normalization).err();
    let authority = authority(&request);
    // The declared body length: the span is tagged before the body is read.
    let span = match &downstream.tracing {
        None => None,
        Some(tracing) => start_span(
            tracing,
            &mut request,
            authority.as_deref(),
            &downstream,
            &state,
        ),
    };
    let request_size = span
        .as_ref()
        .map_or(0, |_| declared_length(request.headers()));
    let (mut recording, request) = Recording::start(
        request,
        authority.as_deref(),
        downstream.clone(),
        state.clone(),
    );
    let outcome = match refusal {
        Some(refusal) => {
            recording.exchange.details = "path_normalization";
            refusal.response()
        }
        None => {
            route_and_forward(
                request,
                authority,
                &downstream,
                &state,
                &mut recording.exchange,
            )
            .await
        }
    };
    let response = match outcome {
        Ok(response) => response,
        Err(failure) => {
            recording.exchange.flags.set(failure.flag());
            recording.exchange.details = failure.details();
            failure.response()
        }
    };
    let Some(span) = span else {
        return Ok(recording.respond(response));
    };
    let end = crate::trace::HopEnd {
        status: response.status().as_u16(),
        response_flags: recording.exchange.flags.as_str(),
        upstream_cluster: recording
            .exchange
            .cluster
            .as_ref()
            .map(|c| c.spec.name.clone()),
        request_size,
    };
    Ok(crate::trace::traced(
        span,
        end,
        recording.respond(response),
        state,
    ))
}

fn declared_length(headers: &HeaderMap) -> u64 {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse().ok())
        .unwrap_or(0)
}

/// Starts this hop's span (a server span inbound, a client span outbound)
/// and gives the request this hop's trace headers.
fn start_span(
    tracing: &Arc<crate::trace::TracingSpec>,
    request: &mut Request<hyper::body::Incoming>,
    authority: Option<&str>,
    downstream: &Downstream,
    state: &ProxyState,
) -> Option<crate::trace::ActiveSpan> {
    // The headers leave the request while the hop reads its line, so the
    // path needs no copy (most requests are not sampled and never read it).
    let mut headers = std::mem::take(request.headers_mut());
    let hop = crate::trace::HopStart {
        kind: match downstream.direction {
            Direction::Inbound => crate::trace::SpanKind::Server,
            Direction::Outbound => crate::trace::SpanKind::Client,
        },
        method: request.method().as_str(),
        scheme: if downstream.tls { "https" } else { "http" },
        authority: authority.unwrap_or("-"),
        path: request.uri().path_and_query().map_or("/", |p| p.as_str()),
        protocol: crate::trace::protocol_name(request.version()),
        peer: downstream.addresses.remote,
        state,
    };
    let span = crate::trace::start_hop(tracing, &mut headers, &hop);
    *request.headers_mut() = headers;
    span
}

fn route_table(downstream: &Downstream, state: &ProxyState) -> Option<Arc<RouteTable>> {
    match &downstream.routes {
        RouteSource::Inline(table) => Some(table.clone()),
        RouteSource::Rds(name) => state.routes.load().get(name).cloned(),
    }
}

/// A request refused before routing still names the service its route
/// leads to, as Envoy's stats filter reads it off the route's cluster.
fn name_refused_service(
    request: &Request<ProxyBody>,
    authority: &str,
    downstream: &Downstream,
    state: &ProxyState,
    exchange: &mut Exchange,
) {
    let Some(table) = route_table(downstream, state) else {
        return;
    };
    let view = RequestView {
        method: request.method().as_str(),
        authority,
        scheme: if downstream.tls { "https" } else { "http" },
        path: request.uri().path_and_query().map_or("/", |p| p.as_str()),
        headers: request.headers(),
    };
    let Some(RouteAction::Forward(forward)) = table.find(&view).map(|route| &route.action) else {
        return;
    };
    let target = forward.pick(0);
    if let Some(cluster) = state.clusters.load().get(&target.name)
        && !cluster.spec.original_dst
    {
        exchange.labels.service = cluster.service.clone();
    }
}

async fn route_and_forward(
    mut request: Request<ProxyBody>,
    authority: Option<String>,
    downstream: &Downstream,
    state: &Arc<ProxyState>,
    exchange: &mut Exchange,
) -> Result<Response<ProxyBody>, Failure> {
    if let Some(refused) = crate::http1_framing::refusal(request.version(), request.headers()) {
        return Err(refused);
    }
    if downstream.direction == Direction::Inbound {
        accept_peer_metadata(request.headers_mut(), downstream, exchange);
    }
    let authority = authority.ok_or(Failure::BadRequest)?;
    exchange.jwt = match authenticate(&mut request, &authority, downstream) {
        Ok(jwt) => jwt,
        Err(refused) => {
            exchange.details = crate::jwt::DENIED_DETAILS;
            name_refused_service(&request, &authority, downstream, state, exchange);
            return Ok(*refused);
        }
    };
    let authorized_headers = match authorize(
        &mut request,
        &authority,
        downstream,
        exchange.jwt.as_ref(),
        state,
    )
    .await
    {
        Ok(headers) => headers,
        Err(refusal) => {
            name_refused_service(&request, &authority, downstream, state, exchange);
            return match refusal {
                Refusal::Rbac => Err(Failure::AccessDenied),
                Refusal::External(response) => {
                    exchange.flags.set(Flag::ExtAuthzDenied);
                    exchange.details = "ext_authz_denied";
                    Ok(response)
                }
            };
        }
    };
    let table = route_table(downstream, state).ok_or(Failure::NoRoute)?;
    let path = request
        .uri()
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    let scheme = if downstream.tls { "https" } else { "http" };
    let view = RequestView {
        method: request.method().as_str(),
        authority: &authority,
        scheme,
        path: path.as_str(),
        headers: request.headers(),
    };
    let route = table.find(&view).ok_or(Failure::NoRoute)?;
    exchange.route_name = (!route.name.is_empty()).then(|| route.name.clone());
    let cors_policy = route.cors.as_ref().filter(|_| downstream.cors_filter);
    let cors = match crate::cors::on_request(cors_policy, request.method(), request.headers()) {
        Ok(cors) => cors,
        Err(preflight) => return Ok(*preflight),
    };
    // As in Envoy, the weighted cluster is chosen with the route, so that
    // even a request the fault filter answers is counted against it.
    let plan = match &route.action {
        RouteAction::Forward(forward) => {
            let target = forward.pick(rand::random_range(0..forward.total_weight));
            let cluster = state.clusters.load().get(&target.name).cloned();
            if let Some(cluster) = &cluster {
                exchange.labels.service = if cluster.spec.original_dst {
                    passthrough_service(&cluster.spec.name, &authority)
                } else {
                    cluster.service.clone()
                };
                exchange.cluster = Some(cluster.clone());
            }
            Plan::Forward(forward, target, cluster)
        }
        RouteAction::DirectResponse { status, body } => Plan::Direct(*status, body),
        RouteAction::Redirect(redirect) => Plan::Redirect(redirect),
    };
    if let Some(fault) = route.fault.as_ref().filter(|_| downstream.fault_filter) {
        if let Some(delay) = fault.delay() {
            exchange.flags.set(Flag::DelayInjected);
            tokio::time::sleep(delay).await;
        }
        if let Some(mut response) = fault.abort() {
            if let Some(cors) = &cors {
                cors.decorate(response.headers_mut());
            }
            exchange.flags.set(Flag::FaultInjected);
            exchange.details = "fault_filter_abort";
            return Ok(response);
        }
    }
    exchange.details = match plan {
        Plan::Forward(..) => "via_upstream",
        Plan::Direct(..) | Plan::Redirect(_) => "direct_response",
    };
    let mut response = match plan {
        Plan::Direct(status, body) => {
            let mut response = Response::new(full(body.to_string()));
            *response.status_mut() = status;
            response
        }
        Plan::Redirect(redirect) => {
            let origin = Origin {
                scheme,
                authority: &authority,
                path_and_query: path.as_str(),
                matched: route.matched_len(path.as_str()),
            };
            let mut response = Response::new(full(""));
            *response.status_mut() = redirect.status;
            if let Ok(location) = HeaderValue::from_str(&redirect.location(&origin)) {
                response.headers_mut().insert(header::LOCATION, location);
            }
            response
        }
        Plan::Forward(forward, target, cluster) => {
            let routed = Routed {
                route,
                forward,
                target,
                cluster: cluster.ok_or(Failure::NoCluster)?,
                authority: &authority,
                path,
            };
            forward_to_cluster(request, routed, downstream, state, exchange).await?
        }
    };
    route.response_headers.apply(response.headers_mut());
    for (name, value) in authorized_headers {
        response.headers_mut().append(name, value);
    }
    if let Some(cors) = &cors {
        cors.decorate(response.headers_mut());
    }
    Ok(response)
}

/// Runs the connection manager's JWT filter: the verified token, or
/// Envoy's 401 answer.
fn authenticate(
    request: &mut Request<ProxyBody>,
    authority: &str,
    downstream: &Downstream,
) -> Result<Option<VerifiedJwt>, Box<Response<ProxyBody>>> {
    let Some(filter) = &downstream.jwt else {
        return Ok(None);
    };
    let uri = request.uri().clone();
    filter
        .authenticate(request.headers_mut(), uri.query())
        .map_err(|rejection| {
            tracing::info!(
                path = uri.path(),
                reason = rejection.reason,
                "jwt: request refused"
            );
            let scheme = request
                .headers()
                .get("x-forwarded-proto")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("http");
            Box::new(rejection.response(scheme, authority, uri.path()))
        })
}

/// What the route does with this request.
enum Plan<'a> {
    Forward(&'a Forward, &'a ClusterTarget, Option<Arc<Cluster>>),
    Direct(StatusCode, &'a str),
    Redirect(&'a Redirect),
}

/// A request's route, once it is to be forwarded.
struct Routed<'a> {
    route: &'a Route,
    forward: &'a Forward,
    target: &'a ClusterTarget,
    cluster: Arc<Cluster>,
    authority: &'a str,
    path: PathAndQuery,
}

async fn forward_to_cluster(
    request: Request<ProxyBody>,
    routed: Routed<'_>,
    downstream: &Downstream,
    state: &Arc<ProxyState>,
    exchange: &mut Exchange,
) -> Result<Response<ProxyBody>, Failure> {
    let (forward, target, cluster) = (routed.forward, routed.target, &routed.cluster);
    let (parts, body) = request.into_parts();
    let hash = request_hash(
        &forward.hash_policy,
        &HashInput {
            headers: &parts.headers,
            path: routed.path.as_str(),
            remote: downstream.addresses.remote,
            local: downstream.addresses.local,
        },
    );
    let mut head = upstream_head(parts.method, parts.headers, &routed, downstream, state);
    target.request_headers.apply(&mut head.headers);
    routed.route.request_headers.apply(&mut head.headers);
    let body = if forward.retry.is_some() || !forward.mirrors.is_empty() {
        RequestBody::read(body, BUFFER_LIMIT)
            .await
            .map_err(|_| Failure::DownstreamDisconnected)?
    } else {
        RequestBody::Streaming(body)
    };
    crate::mirror::send_copies(&forward.mirrors, &head, &body, state, forward.timeout);
    let _in_flight = cluster.retry_budget.request();
    let attempts = Attempts {
        head,
        cluster,
        retry: forward.retry.as_ref(),
        include_attempt_count: routed.route.include_attempt_count,
        label_destination: downstream.direction == Direction::Outbound,
        hash: hash.hash,
        pinned: if cluster.spec.original_dst {
            Some(original_destination(downstream, state)?)
        } else {
            None
        },
    };
    let sent = attempts.send(body, exchange);
    let response = match forward.timeout {
        Some(timeout) => tokio::time::timeout(timeout, sent)
            .await
            .map_err(|_| Failure::UpstreamTimeout)??,
        None => sent.await?,
    };
    let (mut parts, body) = response.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    target.response_headers.apply(&mut parts.headers);
    if let Some(cookie) = hash.set_cookie {
        parts.headers.append(header::SET_COOKIE, cookie);
    }
    Ok(Response::from_parts(parts, body))
}

/// The request's authority: absolute-form URI (HTTP proxy requests, HTTP/2)
/// first, then the Host header, as RFC 9112 says.
fn authority<B>(request: &Request<B>) -> Option<String> {
    if let Some(authority) = request.uri().authority() {
        return Some(authority.as_str().to_string());
    }
    let host = request.headers().get(header::HOST)?.to_str().ok()?;
    (!host.is_empty()).then(|| host.to_string())
}

/// The request line and headers every attempt sends: rewritten path and
/// host, hop-by-hop headers gone, mesh headers set.
fn upstream_head(
    method: http::Method,
    mut headers: HeaderMap,
    routed: &Routed<'_>,
    downstream: &Downstream,
    state: &ProxyState,
) -> UpstreamHead {
    strip_hop_by_hop(&mut headers);
    let path = match &routed.forward.path_rewrite {
        Some(rewrite) => {
            let matched = routed.route.matched_len(routed.path.as_str());
            let rewritten = rewrite.apply(routed.path.as_str(), matched);
            PathAndQuery::try_from(rewritten).unwrap_or_else(|_| routed.path.clone())
        }
        None => routed.path.clone(),
    };
    let host = routed
        .forward
        .host_rewrite
        .as_deref()
        .unwrap_or(routed.authority);
    if let Ok(host) = HeaderValue::from_str(host) {
        headers.insert(header::HOST, host);
    }
    let to_mesh = routed.cluster.is_mesh_tls();
    set_mesh_headers(&mut headers, downstream, state, to_mesh);
    UpstreamHead {
        method,
        path,
        headers,
    }
}

/// `to_mesh`: the cluster is a mesh (mTLS) one, whose sidecars take peer
/// metadata; other destinations never see it.
fn set_mesh_headers(
    headers: &mut HeaderMap,
    downstream: &Downstream,
    state: &ProxyState,
    to_mesh: bool,
) {
    match downstream.direction {
        Direction::Outbound => {
            headers.remove(XFCC);
            headers.remove(peer_metadata::METADATA);
            headers.remove(peer_metadata::METADATA_ID);
            if to_mesh {
                state.peer_metadata.insert_into(headers);
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

/// Names the calling workload from its sidecar's metadata exchange
/// headers, trusted only from an mTLS peer; the app never sees them.
fn accept_peer_metadata(headers: &mut HeaderMap, downstream: &Downstream, exchange: &mut Exchange) {
    // The connection's labels already carry the verified peer identity.
    let principal = downstream
        .tls
        .then_some(exchange.labels.source.principal.as_str())
        .filter(|_| {
            downstream
                .peer
                .as_ref()
                .is_some_and(|p| p.identity.is_some())
        });
    if let Some(workload) = downstream.peer_cache.take_peer(headers, principal) {
        exchange.labels.source = workload;
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
