//! Sending a routed request to its cluster: one attempt, or several under
//! the route's retry policy, each admitted by the cluster's circuit
//! breakers and sent to an endpoint picked afresh (avoiding the ones
//! already tried when the policy says so), with the per-try timeout, the
//! backoff between attempts, and retries bounded by both the cluster's
//! retry budget and its `max_retries` circuit breaker. Every attempt's
//! outcome feeds the cluster's outlier detection.

use std::net::SocketAddr;

use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::uri::PathAndQuery;
use http::{Method, Request, Response, Uri, Version};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::capture_connection;

use crate::body::ProxyBody;
use crate::cluster::{Cluster, LiveEndpoint};
use crate::connector::{count_use, limit_lifetime};
use crate::forward::{Exchange, Failure};
use crate::in_use::{ActiveRequest, GuardedBody, InUse};
use crate::replay::RequestBody;
use crate::response_flags::Flag;
use crate::retry::{Outcome, RetryPolicy};

const ATTEMPT_COUNT: HeaderName = HeaderName::from_static("x-envoy-attempt-count");
const RATE_LIMITED: HeaderName = HeaderName::from_static("x-envoy-ratelimited");

/// What every attempt sends: the request line and headers, final but for
/// the endpoint and the attempt count.
pub struct UpstreamHead {
    pub method: Method,
    pub path: PathAndQuery,
    pub headers: HeaderMap,
}

impl UpstreamHead {
    pub fn request(
        &self,
        endpoint: &LiveEndpoint,
        http2: bool,
        attempt: Option<u32>,
        body: ProxyBody,
    ) -> Request<ProxyBody> {
        let mut request = Request::new(body);
        *request.method_mut() = self.method.clone();
        *request.uri_mut() = Uri::builder()
            .scheme("http")
            .authority(endpoint.authority.clone())
            .path_and_query(self.path.clone())
            .build()
            .unwrap_or_else(|_| Uri::from_static("/"));
        *request.version_mut() = if http2 {
            Version::HTTP_2
        } else {
            Version::HTTP_11
        };
        *request.headers_mut() = self.headers.clone();
        if let Some(attempt) = attempt {
            request
                .headers_mut()
                .insert(ATTEMPT_COUNT, HeaderValue::from(attempt));
        }
        request
    }
}

/// One request's way to its cluster.
pub struct Attempts<'a> {
    pub head: UpstreamHead,
    pub cluster: &'a Cluster,
    pub retry: Option<&'a RetryPolicy>,
    pub include_attempt_count: bool,
    /// Record each attempt's endpoint as the metrics' destination.
    pub label_destination: bool,
    /// The request's consistent-hash key, if its route hashes.
    pub hash: Option<u64>,
    /// The endpoint of every attempt, in place of the cluster's own: an
    /// ORIGINAL_DST cluster's (the downstream's original destination).
    pub pinned: Option<LiveEndpoint>,
}

impl Attempts<'_> {
    pub async fn send(
        &self,
        body: RequestBody,
        exchange: &mut Exchange,
    ) -> Result<Response<ProxyBody>, Failure> {
        let policy = self.retry.filter(|_| body.is_replayable());
        let mut body = Some(body);
        let mut tried: Vec<SocketAddr> = Vec::new();
        let mut _retry_slots = None;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let admission = self
                .cluster
                .breakers
                .admit(self.cluster.spec.http2)
                .await
                .map_err(|_| Failure::UpstreamOverflow)?;
            let endpoint = self.endpoint(&tried, policy)?;
            tried.push(endpoint.address);
            exchange.upstream_host = Some(endpoint.address);
            if self.label_destination {
                exchange.labels.destination = endpoint.workload.clone();
            }
            let last_possible = policy.is_none_or(|p| attempt > p.num_retries);
            let attempt_body = if last_possible {
                body.take().map(RequestBody::into_body)
            } else {
                body.as_ref().and_then(RequestBody::replay)
            }
            .expect("a body remains until the last possible attempt");
            let count = self.include_attempt_count.then_some(attempt);
            let request =
                self.head
                    .request(&endpoint, self.cluster.spec.http2, count, attempt_body);
            let held = InUse::new(admission, ActiveRequest::start(&endpoint.active));
            let (outcome, result) = self.try_once(request, policy, &endpoint).await;
            let result = result
                .map(|response| response.map(|incoming| GuardedBody::new(incoming, held).boxed()));
            let Some(policy) = policy.filter(|p| p.should_retry(outcome)) else {
                return result;
            };
            if last_possible {
                exchange.flags.set(Flag::RetryLimitExceeded);
                return result;
            }
            let budget = self.cluster.retry_budget.retry();
            let breaker = self.cluster.breakers.retry();
            let (Some(budget), Some(breaker)) = (budget, breaker) else {
                exchange.flags.set(Flag::UpstreamOverflow);
                return result;
            };
            drop(result); // the failed attempt's response is not used
            _retry_slots = Some((budget, breaker));
            tokio::time::sleep(policy.backoff(attempt)).await;
        }
    }

    /// An endpoint, trying a few times for one not used before.
    fn endpoint(
        &self,
        tried: &[SocketAddr],
        policy: Option<&RetryPolicy>,
    ) -> Result<LiveEndpoint, Failure> {
        if let Some(pinned) = &self.pinned {
            return Ok(pinned.clone());
        }
        let picks = policy.map_or(1, |p| p.host_selection_attempts);
        let pick = || self.cluster.pick_for(self.hash);
        let mut endpoint = pick().ok_or(Failure::NoHealthyUpstream)?;
        for _ in 1..picks {
            if !tried.contains(&endpoint.address) {
                break;
            }
            endpoint = pick().ok_or(Failure::NoHealthyUpstream)?;
        }
        Ok(endpoint)
    }

    async fn try_once(
        &self,
        mut request: Request<ProxyBody>,
        policy: Option<&RetryPolicy>,
        endpoint: &LiveEndpoint,
    ) -> (Outcome, Result<Response<Incoming>, Failure>) {
        let captured = capture_connection(&mut request);
        let (outcome, result) = self.exchange(request, policy, endpoint).await;
        self.cluster.record_outcome(endpoint.address, outcome);
        if let (Ok(_), Some(max)) = (&result, self.cluster.spec.max_requests_per_connection) {
            count_use(&captured, max);
        }
        if let Some(max) = self.cluster.spec.max_connection_duration {
            limit_lifetime(captured, max);
        }
        (outcome, result)
    }

    async fn exchange(
        &self,
        request: Request<ProxyBody>,
        policy: Option<&RetryPolicy>,
        endpoint: &LiveEndpoint,
    ) -> (Outcome, Result<Response<Incoming>, Failure>) {
        let sent = self.cluster.client.request(request);
        let result = match policy.and_then(|p| p.per_try_timeout) {
            Some(limit) => match tokio::time::timeout(limit, sent).await {
                Ok(result) => result,
                Err(_) => return (Outcome::PerTryTimeout, Err(Failure::UpstreamTimeout)),
            },
            None => sent.await,
        };
        match result {
            Ok(response) => (outcome_of(&response), Ok(response)),
            Err(error) => {
                tracing::debug!(cluster = %self.cluster.spec.name, endpoint = %endpoint.address, %error, "upstream request failed");
                if error.is_connect() {
                    (Outcome::ConnectFailure, Err(Failure::UpstreamUnreachable))
                } else if refused_stream(&error) {
                    (Outcome::RefusedStream, Err(Failure::UpstreamReset))
                } else {
                    (Outcome::Reset, Err(Failure::UpstreamReset))
                }
            }
        }
    }
}

fn outcome_of(response: &Response<Incoming>) -> Outcome {
    let headers = response.headers();
    Outcome::Response {
        status: response.status().as_u16(),
        grpc_status: headers
            .get("grpc-status")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok()),
        rate_limited: headers.contains_key(RATE_LIMITED),
    }
}

/// An HTTP/2 REFUSED_STREAM: the server did not process the request.
fn refused_stream(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(error);
    while let Some(current) = source {
        if let Some(h2) = current.downcast_ref::<h2::Error>() {
            return h2.reason() == Some(h2::Reason::REFUSED_STREAM);
        }
        source = current.source();
    }
    false
}

#[cfg(test)]
mod limits_tests;

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::Duration;

    use envoy_types::pb::envoy::config::route::v3 as xds;
    use envoy_types::pb::google::protobuf::{Duration as XdsDuration, UInt32Value};
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
    use crate::response_flags::ResponseFlags;

    /// A loopback server answering 503 to the first `failures` requests
    /// (500 ms late when `slow`), then 200 with the attempt count it saw.
    async fn backend(failures: u32, slow: bool) -> (SocketAddr, Arc<AtomicU32>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let seen = Arc::new(AtomicU32::new(0));
        let counter = seen.clone();
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let counter = counter.clone();
                let service = service_fn(move |request: Request<Incoming>| {
                    let number = counter.fetch_add(1, Ordering::SeqCst) + 1;
                    async move {
                        let attempt = request.headers()[ATTEMPT_COUNT].clone();
                        if number <= failures {
                            if slow {
                                tokio::time::sleep(Duration::from_millis(500)).await;
                            }
                            let mut response = Response::new(full("busy"));
                            *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
                            return Ok::<_, std::convert::Infallible>(response);
                        }
                        Ok(Response::new(full(attempt.as_bytes().to_vec())))
                    }
                });
                tokio::spawn(async move {
                    let builder =
                        hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                    let _ = builder
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        (address, seen)
    }

    fn cluster(address: SocketAddr) -> Cluster {
        let spec = ClusterSpec {
            name: "outbound|8080||backend.default.svc.cluster.local".into(),
            eds: false,
            tls: None,
            http2: false,
            connect_timeout: Duration::from_secs(1),
            static_endpoints: vec![Endpoint {
                address,
                weight: 1,
                workload: None,
                placement: Default::default(),
            }],
            dns: None,
            original_dst: false,
            source_address: None,
            keepalive: None,
            thresholds: Thresholds::UNLIMITED,
            outlier: None,
            balancing: Balancing {
                algorithm: Algorithm::RoundRobin,
                panic_threshold: 50.0,
                locality_weighted: false,
            },
            idle_timeout: Duration::from_secs(60),
            max_requests_per_connection: None,
            max_connection_duration: None,
        };
        Cluster::new(
            spec,
            Identity::new(SpiffeId::new("cluster.local", "default", "test")),
        )
    }

    fn policy(retries: u32) -> RetryPolicy {
        RetryPolicy::compile(&xds::RetryPolicy {
            retry_on: "retriable-status-codes".into(),
            retriable_status_codes: vec![503],
            num_retries: Some(UInt32Value { value: retries }),
            ..Default::default()
        })
        .unwrap()
    }

    fn exchange() -> Exchange {
        Exchange::new(RequestLabels {
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
        })
    }

    async fn send(
        cluster: &Cluster,
        retry: &RetryPolicy,
        exchange: &mut Exchange,
    ) -> Result<Response<ProxyBody>, Failure> {
        let attempts = Attempts {
            head: UpstreamHead {
                method: Method::POST,
                path: PathAndQuery::from_static("/"),
                headers: HeaderMap::new(),
            },
            cluster,
            retry: Some(retry),
            include_attempt_count: true,
            label_destination: true,
            hash: None,
            pinned: None,
        };
        let body = RequestBody::Replayable {
            data: bytes::Bytes::from_static(b"payload"),
            trailers: None,
        };
        attempts.send(body, exchange).await
    }

    #[tokio::test]
    async fn a_pinned_endpoint_takes_the_place_of_the_clusters() {
        let (address, seen) = backend(0, false).await;
        let unused = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let cluster = cluster(unused.local_addr().unwrap());
        drop(unused);
        let pinned = LiveEndpoint {
            address,
            authority: address.to_string().parse().unwrap(),
            workload: Workload::unknown(),
            weight: 1,
            active: Arc::default(),
        };
        let attempts = Attempts {
            head: UpstreamHead {
                method: Method::GET,
                path: PathAndQuery::from_static("/"),
                headers: HeaderMap::new(),
            },
            cluster: &cluster,
            retry: None,
            include_attempt_count: true,
            label_destination: true,
            hash: None,
            pinned: Some(pinned),
        };
        let mut exchange = exchange();
        let body = RequestBody::Replayable {
            data: bytes::Bytes::new(),
            trailers: None,
        };
        let response = attempts.send(body, &mut exchange).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(seen.load(Ordering::SeqCst), 1);
        assert_eq!(exchange.upstream_host, Some(address));
    }

    #[tokio::test]
    async fn retries_until_success_and_numbers_the_attempts() {
        let (address, seen) = backend(2, false).await;
        let cluster = cluster(address);
        let mut exchange = exchange();
        let response = send(&cluster, &policy(2), &mut exchange).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, "3", "the third attempt says so");
        assert_eq!(seen.load(Ordering::SeqCst), 3);
        assert_eq!(exchange.flags, ResponseFlags::default());
    }

    #[tokio::test]
    async fn never_more_than_the_configured_attempts() {
        let (address, seen) = backend(u32::MAX, false).await;
        let cluster = cluster(address);
        let mut exchange = exchange();
        let response = send(&cluster, &policy(3), &mut exchange).await.unwrap();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(seen.load(Ordering::SeqCst), 4, "1 try + 3 retries");
        assert_eq!(exchange.flags.as_str(), "URX");
    }

    #[tokio::test]
    async fn per_try_timeouts_end_attempts_that_hang() {
        let (address, seen) = backend(u32::MAX, true).await;
        let cluster = cluster(address);
        let mut exchange = exchange();
        let policy = RetryPolicy::compile(&xds::RetryPolicy {
            retry_on: "gateway-error".into(),
            num_retries: Some(UInt32Value { value: 1 }),
            per_try_timeout: Some(XdsDuration {
                seconds: 0,
                nanos: 100_000_000,
            }),
            ..Default::default()
        })
        .unwrap();
        let outcome = send(&cluster, &policy, &mut exchange).await;
        assert_eq!(outcome.unwrap_err(), Failure::UpstreamTimeout);
        assert_eq!(seen.load(Ordering::SeqCst), 2);
        assert_eq!(exchange.flags.as_str(), "URX");
    }

    #[tokio::test]
    async fn an_exhausted_retry_budget_stops_retrying() {
        let (address, seen) = backend(u32::MAX, false).await;
        let cluster = cluster(address);
        let held: Vec<_> = std::iter::from_fn(|| cluster.retry_budget.retry()).collect();
        assert_eq!(held.len(), 3);
        let mut exchange = exchange();
        let response = send(&cluster, &policy(3), &mut exchange).await.unwrap();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(seen.load(Ordering::SeqCst), 1);
        assert_eq!(exchange.flags.as_str(), "UO");
    }
}
