//! What the proxy records about each request once it is over: the metrics
//! and a line per access log. The recording rides in the response body so
//! that it ends when the last byte is sent (or the client goes away).

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use http::{HeaderValue, Request, Response, Version};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;

use crate::access_log::{LogEntry, RequestHead};
use crate::attributes::{Attributes, RequestFacts, ResponseFacts};
use crate::body::ProxyBody;
use crate::cluster::Cluster;
use crate::forward::Downstream;
use crate::grpc_messages::MessageCounter;
use crate::jwt::VerifiedJwt;
use crate::listener::Direction;
use crate::metrics::{BodySizes, RequestLabels, RequestProtocol};
use crate::response_flags::{Flag, ResponseFlags};
use crate::state::ProxyState;

/// What is learnt about a request while it is handled.
pub struct Exchange {
    pub labels: RequestLabels,
    pub flags: ResponseFlags,
    /// Envoy's `RESPONSE_CODE_DETAILS`: why the response has its code.
    pub details: &'static str,
    pub route_name: Option<String>,
    pub cluster: Option<Arc<Cluster>>,
    /// The endpoint of the last attempt.
    pub upstream_host: Option<SocketAddr>,
    /// The token the JWT filter verified (dynamic metadata for the log).
    pub jwt: Option<VerifiedJwt>,
}

impl Exchange {
    pub fn new(labels: RequestLabels) -> Exchange {
        Exchange {
            labels,
            flags: ResponseFlags::default(),
            details: "",
            route_name: None,
            cluster: None,
            upstream_host: None,
            jwt: None,
        }
    }
}

/// Counts a request when it ends: answered, or abandoned by the client
/// mid-way (its future dropped), which Envoy counts with response code 0
/// and flag DC.
pub struct Recording {
    pub exchange: Exchange,
    pub response_code: Option<u16>,
    state: Arc<ProxyState>,
    downstream: Arc<Downstream>,
    started: Instant,
    start_time: SystemTime,
    protocol: &'static str,
    /// Per access logger: the request's headers its format names.
    request_headers: Vec<Vec<Option<HeaderValue>>>,
    response_headers: Vec<Vec<Option<HeaderValue>>>,
    bytes_received: Arc<AtomicU64>,
    bytes_sent: u64,
    grpc_status: Option<u8>,
    /// gRPC messages the client sent (its body counts them).
    request_messages: Arc<AtomicU64>,
    response_messages: MessageCounter,
    /// Kept only when an expression (tag override, log filter) reads them.
    request_facts: Option<RequestFacts>,
    response_facts: Option<ResponseFacts>,
}

impl Recording {
    /// Starts recording `request`, whose body is now counted.
    pub fn start(
        request: Request<hyper::body::Incoming>,
        authority: Option<&str>,
        downstream: Arc<Downstream>,
        state: Arc<ProxyState>,
    ) -> (Recording, Request<ProxyBody>) {
        let head = RequestHead {
            method: request.method().as_str(),
            path: request.uri().path_and_query().map_or("/", |p| p.as_str()),
            authority,
            scheme: if downstream.tls { "https" } else { "http" },
        };
        let request_headers = downstream
            .access_logs
            .iter()
            .map(|log| log.format.capture_request(&head, request.headers()))
            .collect();
        let bytes_received = Arc::new(AtomicU64::new(0));
        let protocol = protocol(request.version());
        let mut labels = downstream.labels.clone();
        labels.request_protocol = RequestProtocol::of(request.headers());
        let request_facts = downstream.attribute_roots.request.then(|| RequestFacts {
            method: head.method.to_string(),
            path: head.path.to_string(),
            host: head.authority.unwrap_or_default().to_string(),
            scheme: head.scheme,
            protocol,
            headers: request.headers().clone(),
        });
        let counter = bytes_received.clone();
        let request_messages = Arc::new(AtomicU64::new(0));
        let mut messages = (labels.request_protocol == RequestProtocol::Grpc)
            .then(|| (MessageCounter::default(), request_messages.clone()));
        let request = request.map(|body| {
            body.map_frame(move |frame| {
                if let Some(data) = frame.data_ref() {
                    counter.fetch_add(data.len() as u64, Ordering::Relaxed);
                    if let Some((counter, total)) = &mut messages {
                        counter.feed(data);
                        total.store(counter.messages(), Ordering::Relaxed);
                    }
                }
                frame
            })
            .boxed()
        });
        let recording = Recording {
            exchange: Exchange::new(labels),
            response_code: None,
            state,
            downstream,
            started: Instant::now(),
            start_time: SystemTime::now(),
            protocol,
            request_headers,
            response_headers: Vec::new(),
            bytes_received,
            bytes_sent: 0,
            grpc_status: None,
            request_messages,
            response_messages: MessageCounter::default(),
            request_facts,
            response_facts: None,
        };
        (recording, request)
    }

    /// Finishes with `response`: the recording ends with its body.
    pub fn respond(mut self, response: Response<ProxyBody>) -> Response<ProxyBody> {
        self.response_code = Some(response.status().as_u16());
        if self.exchange.labels.request_protocol == RequestProtocol::Grpc {
            // A trailers-only answer carries its status in the headers.
            self.grpc_status = grpc_status(response.headers());
        }
        self.response_headers = self
            .downstream
            .access_logs
            .iter()
            .map(|log| log.format.capture_response(response.headers()))
            .collect();
        if self.downstream.attribute_roots.response_headers {
            self.response_facts = Some(ResponseFacts {
                headers: response.headers().clone(),
            });
        }
        response.map(|body| {
            RecordedBody {
                body,
                recording: self,
            }
            .boxed()
        })
    }

    /// What CEL expressions read of this request, now that it is over.
    fn attributes(&self) -> Attributes<'_> {
        let exchange = &self.exchange;
        let peer_uri_san = self
            .downstream
            .peer
            .as_ref()
            .and_then(|peer| peer.identity.as_ref())
            .map(|_| exchange.labels.source.principal.as_str())
            .filter(|p| !p.is_empty());
        Attributes {
            request: self.request_facts.as_ref(),
            request_time: Some(self.start_time),
            duration: Some(self.started.elapsed()),
            request_size: self.bytes_received.load(Ordering::Relaxed),
            response_code: self.response_code,
            response_code_details: exchange.details,
            response_flags: exchange.labels.response_flags,
            grpc_status: self.grpc_status,
            response: self.response_facts.as_ref(),
            response_size: self.bytes_sent,
            source: Some(self.downstream.addresses.remote),
            destination: Some(self.downstream.addresses.local),
            upstream: exchange.upstream_host,
            mtls: self.downstream.peer.is_some(),
            requested_server_name: self.downstream.server_name.as_deref(),
            peer_uri_san,
            route_name: exchange.route_name.as_deref(),
            cluster_name: exchange.cluster.as_deref().map(|c| c.spec.name.as_str()),
        }
    }

    fn write_access_logs(&self) {
        let exchange = &self.exchange;
        let downstream_peer = self
            .downstream
            .peer
            .as_ref()
            .and_then(|p| p.uri_san.as_deref());
        let cluster = exchange.cluster.as_deref();
        let upstream_peer = cluster
            .filter(|c| c.is_mesh_tls() && self.downstream.direction == Direction::Outbound)
            .map(|_| exchange.labels.destination.principal.as_str());
        let no_headers = Vec::new();
        let filtered = self
            .downstream
            .access_logs
            .iter()
            .any(|l| l.filter.is_some());
        let attributes = filtered.then(|| self.attributes());
        for (index, logger) in self.downstream.access_logs.iter().enumerate() {
            if let (Some(filter), Some(attributes)) = (&logger.filter, &attributes)
                && !filter.matches(attributes)
            {
                continue;
            }
            logger.write(&LogEntry {
                start: self.start_time,
                duration: self.started.elapsed(),
                protocol: self.protocol,
                response_code: exchange.labels.response_code,
                response_flags: exchange.labels.response_flags,
                response_code_details: exchange.details,
                connection_termination_details: None,
                bytes_received: self.bytes_received.load(Ordering::Relaxed),
                bytes_sent: self.bytes_sent,
                upstream_host: exchange.upstream_host,
                upstream_cluster: cluster.map(|c| c.spec.name.as_str()),
                upstream_peer,
                downstream_local: self.downstream.addresses.local,
                downstream_remote: self.downstream.addresses.remote,
                downstream_peer,
                route_name: exchange.route_name.as_deref(),
                request_headers: self.request_headers.get(index).unwrap_or(&no_headers),
                response_headers: self.response_headers.get(index).unwrap_or(&no_headers),
                jwt: exchange.jwt.as_ref(),
            });
        }
    }
}

impl Drop for Recording {
    fn drop(&mut self) {
        if self.response_code.is_none() {
            self.exchange.flags.set(Flag::DownstreamDisconnected);
            self.exchange.details = "downstream_remote_disconnect";
        }
        let labels = &mut self.exchange.labels;
        labels.response_flags = self.exchange.flags.as_str();
        labels.response_code = self.response_code.unwrap_or(0);
        labels.grpc_response_status = self.grpc_status;
        let sizes = BodySizes {
            request: self.bytes_received.load(Ordering::Relaxed),
            response: self.bytes_sent,
            request_messages: self.request_messages.load(Ordering::Relaxed),
            response_messages: self.response_messages.messages(),
        };
        if let Some(stats) = &self.downstream.stats {
            self.state.metrics.record(
                &self.exchange.labels,
                self.started.elapsed(),
                sizes,
                &self.downstream.series,
                stats,
                || self.attributes(),
            );
        }
        if !self.downstream.access_logs.is_empty() {
            self.write_access_logs();
        }
    }
}

/// `grpc-status`, when it is a status code (0-16 today; any small number
/// is kept so new codes still show).
fn grpc_status(headers: &http::HeaderMap) -> Option<u8> {
    headers
        .get("grpc-status")?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

fn protocol(version: Version) -> &'static str {
    match version {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_2 => "HTTP/2",
        Version::HTTP_3 => "HTTP/3",
        _ => "HTTP/1.1",
    }
}

/// A response body that counts what it sends and ends the recording when
/// it is dropped.
struct RecordedBody {
    body: ProxyBody,
    recording: Recording,
}

impl Body for RecordedBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.body).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            if let Some(data) = frame.data_ref() {
                this.recording.bytes_sent += data.len() as u64;
                if this.recording.exchange.labels.request_protocol == RequestProtocol::Grpc {
                    this.recording.response_messages.feed(data);
                }
            } else if let Some(trailers) = frame.trailers_ref()
                && this.recording.exchange.labels.request_protocol == RequestProtocol::Grpc
            {
                this.recording.grpc_status = grpc_status(trailers).or(this.recording.grpc_status);
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
