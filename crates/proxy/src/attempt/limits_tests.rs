//! Circuit breakers, outlier detection and connection reuse as attempts
//! meet them, against loopback backends.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use http::StatusCode;
use http_body_util::BodyExt;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use trellis_ca::SpiffeId;

use super::*;
use crate::body::full;
use crate::circuit_breaker::Thresholds;
use crate::cluster::{ClusterSpec, Endpoint};
use crate::identity::Identity;
use crate::load_balancer::{Algorithm, Balancing};
use crate::metric_labels::{Service, Workload};
use crate::metrics::{Reporter, RequestLabels, RequestProtocol};
use crate::outlier::OutlierConfig;

/// A loopback HTTP/1.1 server answering `status`; counts connections.
async fn backend(status: StatusCode) -> (SocketAddr, Arc<AtomicU32>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let connections = Arc::new(AtomicU32::new(0));
    let counter = connections.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            let service = service_fn(move |_: Request<Incoming>| async move {
                let mut response = Response::new(full("answer"));
                *response.status_mut() = status;
                Ok::<_, std::convert::Infallible>(response)
            });
            tokio::spawn(async move {
                let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                let _ = builder
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (address, connections)
}

fn spec(endpoints: &[SocketAddr]) -> ClusterSpec {
    ClusterSpec {
        name: "outbound|8080||backend.default.svc.cluster.local".into(),
        eds: false,
        tls: None,
        http2: false,
        connect_timeout: Duration::from_secs(1),
        static_endpoints: endpoints
            .iter()
            .map(|address| Endpoint {
                address: *address,
                weight: 1,
                workload: None,
                placement: Default::default(),
            })
            .collect(),
        dns: None,
        original_dst: false,
        source_address: None,
        keepalive: None,
        thresholds: Thresholds::UNLIMITED,
        outlier: None,
        balancing: Balancing {
            algorithm: Algorithm::RoundRobin,
            panic_threshold: 0.0,
            locality_weighted: false,
        },
        idle_timeout: Duration::from_secs(60),
        max_requests_per_connection: None,
        max_connection_duration: None,
    }
}

fn cluster(spec: ClusterSpec) -> Cluster {
    Cluster::new(
        spec,
        Identity::new(SpiffeId::new("cluster.local", "default", "test")),
    )
}

async fn send(cluster: &Cluster) -> (Result<Response<ProxyBody>, Failure>, Exchange) {
    let mut exchange = Exchange::new(RequestLabels {
        reporter: Reporter::Source,
        source: Workload::unknown(),
        destination: Workload::unknown(),
        service: Service::unknown(),
        response_code: 0,
        response_flags: "-",
        connection_security_policy: "unknown",
        request_protocol: RequestProtocol::Http,
        grpc_response_status: None,
        custom: None,
    });
    let attempts = Attempts {
        head: UpstreamHead {
            method: Method::GET,
            path: PathAndQuery::from_static("/"),
            headers: HeaderMap::new(),
        },
        cluster,
        retry: None,
        include_attempt_count: false,
        label_destination: false,
        hash: None,
        pinned: None,
    };
    let body = RequestBody::Replayable {
        data: bytes::Bytes::new(),
        trailers: None,
    };
    let result = attempts.send(body, &mut exchange).await;
    (result, exchange)
}

#[tokio::test]
async fn a_response_holds_its_connection_slot_until_its_body_is_read() {
    let (address, _) = backend(StatusCode::OK).await;
    let cluster = cluster(ClusterSpec {
        thresholds: Thresholds {
            max_connections: 1,
            max_pending_requests: 0,
            ..Thresholds::UNLIMITED
        },
        ..spec(&[address])
    });
    let (first, _) = send(&cluster).await;
    let first = first.expect("the connection was free");
    let (second, _) = send(&cluster).await;
    assert_eq!(second.unwrap_err(), Failure::UpstreamOverflow);
    first.into_body().collect().await.unwrap();
    let (third, _) = send(&cluster).await;
    assert_eq!(third.unwrap().status(), StatusCode::OK);
}

#[tokio::test]
async fn max_requests_per_connection_retires_connections() {
    for (limit, expected) in [(None, 1), (Some(1), 3)] {
        let (address, connections) = backend(StatusCode::OK).await;
        let cluster = cluster(ClusterSpec {
            max_requests_per_connection: limit,
            ..spec(&[address])
        });
        for _ in 0..3 {
            let (response, _) = send(&cluster).await;
            response.unwrap().into_body().collect().await.unwrap();
        }
        assert_eq!(
            connections.load(Ordering::SeqCst),
            expected,
            "limit {limit:?}"
        );
    }
}

#[tokio::test]
async fn max_connection_duration_retires_old_connections() {
    // A connection idle in the pool past its lifetime is never reused
    // (long enough that the first two requests always share one).
    const LIFETIME: Duration = Duration::from_secs(1);
    for (limit, expected) in [(None, 1), (Some(LIFETIME), 2)] {
        let (address, connections) = backend(StatusCode::OK).await;
        let cluster = cluster(ClusterSpec {
            max_connection_duration: limit,
            ..spec(&[address])
        });
        for _ in 0..2 {
            let (first, _) = send(&cluster).await;
            first.unwrap().into_body().collect().await.unwrap();
        }
        assert_eq!(connections.load(Ordering::SeqCst), 1, "young: reused");
        tokio::time::sleep(LIFETIME + Duration::from_millis(500)).await;
        let (late, _) = send(&cluster).await;
        late.unwrap().into_body().collect().await.unwrap();
        assert_eq!(
            connections.load(Ordering::SeqCst),
            expected,
            "limit {limit:?}"
        );
    }
}

#[tokio::test]
async fn an_ejected_endpoint_gets_no_more_requests() {
    let (good, _) = backend(StatusCode::OK).await;
    let (bad, _) = backend(StatusCode::BAD_GATEWAY).await;
    let outlier = envoy_types::pb::envoy::config::cluster::v3::OutlierDetection {
        consecutive_5xx: Some(envoy_types::pb::google::protobuf::UInt32Value { value: 2 }),
        enforcing_success_rate: Some(envoy_types::pb::google::protobuf::UInt32Value { value: 0 }),
        max_ejection_percent: Some(envoy_types::pb::google::protobuf::UInt32Value { value: 50 }),
        ..Default::default()
    };
    let cluster = cluster(ClusterSpec {
        outlier: Some(OutlierConfig::compile(&outlier).unwrap()),
        ..spec(&[good, bad])
    });
    let mut answered_by_bad = 0;
    for _ in 0..20 {
        let (_, exchange) = send(&cluster).await;
        if exchange.upstream_host == Some(bad) {
            answered_by_bad += 1;
        }
    }
    assert_eq!(answered_by_bad, 2, "two 502s eject it");
    assert_eq!(cluster.ejected(), [bad]);
}
