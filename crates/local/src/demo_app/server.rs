//! The demo app's HTTP server (HTTP/1.1 and HTTP/2, negotiated per
//! connection): applies the configured latency and faults, makes the
//! planned calls and answers with a [`DemoReply`].

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode, header};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use super::call_graph::{PlannedCall, planned_calls};
use super::outbound::{OutboundClient, OutboundProxy};
use super::reply::DemoReply;

/// Request headers an app must copy onto its own calls so that the mesh can
/// route by user and stitch traces together, as Bookinfo's apps do.
const FORWARDED_HEADERS: [&str; 5] = [
    "end-user",
    "x-request-id",
    "traceparent",
    "tracestate",
    "b3",
];
const FORWARDED_PREFIX: &str = "x-b3-";

/// Every response's body (the gRPC authorizer's carries trailers).
pub(crate) type AppBody = UnsyncBoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

fn app_body(bytes: Bytes) -> AppBody {
    Full::new(bytes)
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// Who the app is, as reported in every reply.
#[derive(Debug, Clone)]
pub(crate) struct Identity {
    pub service: String,
    pub version: String,
    pub pod: String,
    pub namespace: String,
}

/// Configured misbehaviour, for tests of the mesh's resilience features.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Behaviour {
    pub latency: Duration,
    /// Share of requests (0..=1) answered with an injected 500.
    pub error_rate: f64,
}

/// One running demo app's shared state.
pub(crate) struct DemoApp {
    identity: Identity,
    behaviour: Behaviour,
    calls: Vec<PlannedCall>,
    outbound: OutboundClient,
}

impl DemoApp {
    pub fn new(identity: Identity, behaviour: Behaviour, proxy: Option<OutboundProxy>) -> DemoApp {
        let calls = planned_calls(&identity.service, &identity.version);
        DemoApp {
            identity,
            behaviour,
            calls,
            outbound: OutboundClient::new(proxy),
        }
    }

    async fn respond(&self, request: Request<Incoming>) -> Response<AppBody> {
        if request.uri().path() == "/health" {
            return text_response(StatusCode::OK, "ok\n");
        }
        if self.identity.service == super::ext_authz::SERVICE {
            return super::ext_authz::respond(request).await;
        }
        if !self.behaviour.latency.is_zero() {
            tokio::time::sleep(self.behaviour.latency).await;
        }
        let mut reply = self.identify(&request);
        if rand::random::<f64>() < self.behaviour.error_rate {
            reply.status = Some(StatusCode::INTERNAL_SERVER_ERROR.as_u16());
            reply.error = Some("injected fault (trellis.io/demo-error-rate)".to_owned());
            return json_response(StatusCode::INTERNAL_SERVER_ERROR, &reply);
        }
        let forwarded = forwarded_headers(request.headers());
        // Concurrent, and in planned order: join_all keeps positions.
        let calls = self
            .calls
            .iter()
            .map(|call| self.outbound.call(call, &forwarded));
        reply.calls = futures::future::join_all(calls).await;
        json_response(StatusCode::OK, &reply)
    }

    fn identify(&self, request: &Request<Incoming>) -> DemoReply {
        DemoReply {
            service: self.identity.service.clone(),
            version: Some(self.identity.version.clone()),
            pod: Some(self.identity.pod.clone()),
            namespace: Some(self.identity.namespace.clone()),
            path: Some(request.uri().path().to_owned()),
            headers: headers_as_map(request.headers()),
            ..DemoReply::default()
        }
    }
}

/// Serves `app` on every listener until `shutdown` completes.
pub(crate) async fn serve(
    app: Arc<DemoApp>,
    listeners: Vec<TcpListener>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let mut accept_loops = JoinSet::new();
    for listener in listeners {
        accept_loops.spawn(accept_loop(app.clone(), listener));
    }
    shutdown.await;
    accept_loops.shutdown().await;
}

async fn accept_loop(app: Arc<DemoApp>, listener: TcpListener) {
    loop {
        match listener.accept().await {
            Ok((stream, _peer)) => {
                tokio::spawn(serve_connection(app.clone(), stream));
            }
            Err(error) => {
                // Typically EMFILE: back off instead of spinning.
                tracing::warn!(%error, "demo app: accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn serve_connection(app: Arc<DemoApp>, stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let service = service_fn(move |request| {
        let app = app.clone();
        async move { Ok::<_, Infallible>(app.respond(request).await) }
    });
    let builder = auto::Builder::new(TokioExecutor::new());
    if let Err(error) = builder
        .serve_connection(TokioIo::new(stream), service)
        .await
    {
        tracing::debug!(%error, "demo app: connection ended with an error");
    }
}

fn forwarded_headers(received: &HeaderMap) -> HeaderMap {
    received
        .iter()
        .filter(|(name, _)| {
            FORWARDED_HEADERS.contains(&name.as_str())
                || name.as_str().starts_with(FORWARDED_PREFIX)
        })
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect()
}

/// Repeated headers are joined with ", ", as HTTP allows for lists.
fn headers_as_map(headers: &HeaderMap) -> BTreeMap<String, String> {
    let mut map: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in headers {
        let value = String::from_utf8_lossy(value.as_bytes());
        map.entry(name.as_str().to_owned())
            .and_modify(|joined| {
                joined.push_str(", ");
                joined.push_str(&value);
            })
            .or_insert_with(|| value.into_owned());
    }
    map
}

fn json_response(status: StatusCode, reply: &DemoReply) -> Response<AppBody> {
    let body = serde_json::to_vec(reply).expect("a DemoReply always serializes");
    let mut response = Response::new(app_body(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    response
}

fn text_response(status: StatusCode, text: &'static str) -> Response<AppBody> {
    let mut response = Response::new(app_body(Bytes::from_static(text.as_bytes())));
    *response.status_mut() = status;
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwards_only_routing_and_trace_headers() {
        let mut received = HeaderMap::new();
        for (name, value) in [
            ("end-user", "jason"),
            ("x-request-id", "r1"),
            ("traceparent", "00-abc-def-01"),
            ("x-b3-traceid", "t1"),
            ("cookie", "secret"),
            ("host", "productpage:9080"),
        ] {
            received.insert(name, value.parse().unwrap());
        }
        let forwarded = forwarded_headers(&received);
        let mut names: Vec<_> = forwarded.keys().map(|name| name.as_str()).collect();
        names.sort_unstable();
        assert_eq!(
            names,
            ["end-user", "traceparent", "x-b3-traceid", "x-request-id"]
        );
    }

    #[test]
    fn joins_repeated_headers() {
        let mut headers = HeaderMap::new();
        headers.append("accept", "text/html".parse().unwrap());
        headers.append("accept", "application/json".parse().unwrap());
        assert_eq!(
            headers_as_map(&headers)["accept"],
            "text/html, application/json"
        );
    }
}
