//! Demo apps wired together through a fake outbound proxy on loopback: the
//! call tree, header forwarding, retries and fault injection.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

use super::server::{self, Behaviour, DemoApp, Identity};
use super::{DemoReply, OutboundProxy, parse_error_rate};

/// Starts a demo app on 127.0.0.1 and returns its address.
async fn start_app(
    service: &str,
    version: &str,
    proxy: Option<SocketAddr>,
    behaviour: Behaviour,
) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let identity = Identity {
        service: service.into(),
        version: version.into(),
        pod: format!("{service}-{version}-0"),
        namespace: "default".into(),
    };
    let proxy = proxy.map(|proxy| format!("http://{proxy}").parse::<OutboundProxy>().unwrap());
    let app = Arc::new(DemoApp::new(identity, behaviour, proxy));
    tokio::spawn(server::serve(app, vec![listener], std::future::pending()));
    address
}

/// A forward proxy standing in for the sidecar: routes absolute-form
/// requests by authority to `routes` and records each request target.
struct FakeProxy {
    address: SocketAddr,
    targets: Arc<Mutex<Vec<String>>>,
}

impl FakeProxy {
    async fn start(routes: HashMap<String, SocketAddr>) -> FakeProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let targets = Arc::new(Mutex::new(Vec::new()));
        let state = (Arc::new(routes), targets.clone(), http_client());
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let (routes, targets, client) = state.clone();
                let service = service_fn(move |request: Request<Incoming>| {
                    targets.lock().unwrap().push(request.uri().to_string());
                    forward(routes.clone(), client.clone(), request)
                });
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service),
                );
            }
        });
        FakeProxy { address, targets }
    }

    fn targets(&self) -> Vec<String> {
        self.targets.lock().unwrap().clone()
    }
}

async fn forward(
    routes: Arc<HashMap<String, SocketAddr>>,
    client: Client<HttpConnector, Empty<Bytes>>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let authority = request.uri().authority().map(|a| a.to_string());
    let Some(upstream) = authority.and_then(|authority| routes.get(&authority).copied()) else {
        let mut response = Response::new(Full::new(Bytes::from_static(b"no healthy upstream")));
        *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
        return Ok(response);
    };
    let mut upstream_request = Request::get(format!("http://{upstream}{}", request.uri().path()))
        .body(Empty::new())
        .unwrap();
    *upstream_request.headers_mut() = request.headers().clone();
    let response = client.request(upstream_request).await.unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    Ok(response)
}

fn http_client() -> Client<HttpConnector, Empty<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

async fn get(address: SocketAddr, path: &str, headers: &[(&str, &str)]) -> (StatusCode, DemoReply) {
    let mut request = Request::get(format!("http://{address}{path}"));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = http_client()
        .request(request.body(Empty::new()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&body).unwrap())
}

/// productpage -> details, reviews v2 -> ratings, all through one proxy.
async fn bookinfo(reviews_behaviour: Behaviour) -> (SocketAddr, FakeProxy) {
    let calm = Behaviour::default();
    let details = start_app("details", "v1", None, calm).await;
    let ratings = start_app("ratings", "v1", None, calm).await;
    let routes = HashMap::from([
        ("details:9080".to_owned(), details),
        ("ratings:9080".to_owned(), ratings),
    ]);
    let partial = FakeProxy::start(routes.clone()).await;
    let reviews = start_app("reviews", "v2", Some(partial.address), reviews_behaviour).await;
    let mut routes = routes;
    routes.insert("reviews:9080".to_owned(), reviews);
    let proxy = FakeProxy::start(routes).await;
    let productpage = start_app("productpage", "v1", Some(proxy.address), calm).await;
    (productpage, proxy)
}

#[tokio::test]
async fn nests_the_bookinfo_call_tree_and_forwards_headers() {
    let (productpage, proxy) = bookinfo(Behaviour::default()).await;
    let headers = [
        ("end-user", "jason"),
        ("x-request-id", "req-1"),
        ("x-b3-traceid", "t1"),
        ("cookie", "c"),
    ];
    let (status, reply) = get(productpage, "/productpage", &headers).await;

    assert_eq!(status, StatusCode::OK);
    assert_eq!(reply.service, "productpage");
    assert_eq!(reply.path.as_deref(), Some("/productpage"));
    assert_eq!(reply.headers["end-user"], "jason");
    let services: Vec<_> = reply
        .calls
        .iter()
        .map(|call| call.service.as_str())
        .collect();
    assert_eq!(services, ["details", "reviews"]);
    let reviews = reply.call("reviews").unwrap();
    assert_eq!(reviews.version.as_deref(), Some("v2"));
    let ratings = reviews.call("ratings").unwrap();
    assert_eq!(ratings.pod.as_deref(), Some("ratings-v1-0"));
    assert!(ratings.calls.is_empty());
    for callee in [reviews, ratings, reply.call("details").unwrap()] {
        assert_eq!(callee.headers["end-user"], "jason");
        assert_eq!(callee.headers["x-request-id"], "req-1");
        assert_eq!(callee.headers["x-b3-traceid"], "t1");
        assert!(!callee.headers.contains_key("cookie"));
    }
    let mut targets = proxy.targets();
    targets.sort();
    assert_eq!(
        targets,
        [
            "http://details:9080/details/0",
            "http://reviews:9080/reviews/0"
        ]
    );
}

#[tokio::test]
async fn records_undelivered_calls_and_still_answers() {
    let proxy = FakeProxy::start(HashMap::new()).await;
    let productpage = start_app(
        "productpage",
        "v1",
        Some(proxy.address),
        Behaviour::default(),
    )
    .await;
    let (status, reply) = get(productpage, "/productpage", &[]).await;

    assert_eq!(status, StatusCode::OK);
    let undelivered = reply.undelivered_calls();
    assert_eq!(undelivered.len(), 2);
    assert_eq!(undelivered[1].service, "reviews");
    assert_eq!(undelivered[1].status, Some(503));
    // details once; reviews twice (Bookinfo's single retry).
    assert_eq!(proxy.targets().len(), 3);
}

#[tokio::test]
async fn injects_faults_and_latency() {
    let faulty = Behaviour {
        latency: Duration::from_millis(100),
        error_rate: 1.0,
    };
    let (productpage, proxy) = bookinfo(faulty).await;
    let started = std::time::Instant::now();
    let (status, reply) = get(productpage, "/productpage", &[]).await;

    assert_eq!(status, StatusCode::OK);
    let reviews = reply.call("reviews").unwrap();
    assert!(
        reviews.answered_by_app(),
        "the fault comes from the app: {reviews:?}"
    );
    assert_eq!(reviews.status, Some(500));
    assert!(reviews.calls.is_empty());
    assert!(reply.undelivered_calls().is_empty());
    // Retried once, each attempt delayed.
    let reviews_attempts = proxy
        .targets()
        .iter()
        .filter(|t| t.contains("reviews"))
        .count();
    assert_eq!(reviews_attempts, 2);
    assert!(started.elapsed() >= Duration::from_millis(200));
}

#[tokio::test]
async fn answers_health_checks_without_faults() {
    let behaviour = Behaviour {
        latency: Duration::ZERO,
        error_rate: 1.0,
    };
    let app = start_app("ratings", "v1", None, behaviour).await;
    let response = http_client()
        .request(
            Request::get(format!("http://{app}/health"))
                .body(Empty::new())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn speaks_http2_too() {
    let app = start_app("details", "v1", None, Behaviour::default()).await;
    let client: Client<HttpConnector, Empty<Bytes>> = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http();
    let response = client
        .request(
            Request::get(format!("http://{app}/details/0"))
                .body(Empty::new())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.version(), http::Version::HTTP_2);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let reply: DemoReply = serde_json::from_slice(&body).unwrap();
    assert_eq!(reply.path.as_deref(), Some("/details/0"));
}

#[test]
fn validates_error_rates() {
    assert_eq!(parse_error_rate("0.25"), Ok(0.25));
    assert_eq!(parse_error_rate("1"), Ok(1.0));
    assert!(parse_error_rate("1.5").is_err());
    assert!(parse_error_rate("-0.1").is_err());
    assert!(parse_error_rate("NaN").is_err());
    assert!(parse_error_rate("often").is_err());
}
