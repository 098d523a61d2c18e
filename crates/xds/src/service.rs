//! The ADS gRPC service, routed by hand rather than through tonic's
//! generated server. tonic encodes all of a stream's responses into one
//! buffer that keeps the capacity of the largest response for as long as
//! the stream lives: with a proxy's whole config in one response, that is
//! megabytes held per idle proxy, the control plane's largest cost at
//! scale. Here each response is encoded into its own allocation, freed once
//! h2 has written it. Requests are decoded by tonic as usual.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use envoy_types::pb::envoy::service::discovery::v3::{DeltaDiscoveryRequest, DiscoveryRequest};
use futures::Stream;
use http_body::Frame;
use prost::Message;
use tonic::codec::Codec;
use tonic::codegen::{BoxFuture, Bytes, Service, StdError, http};
use tonic::server::NamedService;
use tonic::{Code, Status, Streaming};
use tonic_prost::ProstCodec;

use crate::auth::AuthenticateCaller;
use crate::server::{AdsServer, ResourceGenerator};
use crate::throttle::Responses;

const SERVICE_NAME: &str = "envoy.service.discovery.v3.AggregatedDiscoveryService";
const SOTW_PATH: &str =
    "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources";
const DELTA_PATH: &str =
    "/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources";

/// Requests are small (names, nonces, a node); anything larger is refused.
const MAX_REQUEST_BYTES: usize = 16 << 20;

/// `tonic::transport::Server::add_service` takes this.
pub struct AdsService<G> {
    server: Arc<AdsServer<G>>,
    /// Set on ports that serve only authenticated proxies (15012).
    authenticator: Option<Arc<dyn AuthenticateCaller>>,
}

impl<G> Clone for AdsService<G> {
    fn clone(&self) -> Self {
        AdsService {
            server: self.server.clone(),
            authenticator: self.authenticator.clone(),
        }
    }
}

impl<G> NamedService for AdsService<G> {
    const NAME: &'static str = SERVICE_NAME;
}

impl<G: ResourceGenerator> AdsService<G> {
    pub(crate) fn new(server: AdsServer<G>) -> Self {
        AdsService {
            server: Arc::new(server),
            authenticator: None,
        }
    }

    /// The same streams, but each call is authenticated first and served
    /// only for a node of the caller's identity; a call that fails is
    /// answered with its status and no stream.
    pub fn authenticated(&self, authenticator: Arc<dyn AuthenticateCaller>) -> Self {
        AdsService {
            server: self.server.clone(),
            authenticator: Some(authenticator),
        }
    }
}

impl<G, B> Service<http::Request<B>> for AdsService<G>
where
    G: ResourceGenerator,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let caller = match &self.authenticator {
            Some(authenticator) => {
                match authenticator.authenticate(request.headers(), request.extensions()) {
                    Ok(caller) => Some(caller),
                    Err(status) => {
                        tracing::warn!(%status, "refused an unauthenticated xDS call");
                        return Box::pin(async move { Ok(status_only(status)) });
                    }
                }
            }
            None => None,
        };
        let response = match request.uri().path() {
            SOTW_PATH => {
                let requests = decode::<DiscoveryRequest, B>(request.into_body());
                grpc_response(GrpcBody::new(self.server.open_sotw(requests, caller)))
            }
            DELTA_PATH => {
                let requests = decode::<DeltaDiscoveryRequest, B>(request.into_body());
                grpc_response(GrpcBody::new(self.server.open_delta(requests, caller)))
            }
            _ => status_only(Status::unimplemented("no such method")),
        };
        Box::pin(async move { Ok(response) })
    }
}

fn decode<T, B>(body: B) -> Streaming<T>
where
    T: Message + Default + Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    let decoder = ProstCodec::<T, T>::default().decoder();
    Streaming::new_request(decoder, body, None, Some(MAX_REQUEST_BYTES))
}

fn grpc_response<M: Message + Send + 'static>(
    body: GrpcBody<M>,
) -> http::Response<tonic::body::Body> {
    let mut response = http::Response::new(tonic::body::Body::new(body));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        tonic::metadata::GRPC_CONTENT_TYPE,
    );
    response
}

/// A call that fails before any message: the status in the headers.
fn status_only(status: Status) -> http::Response<tonic::body::Body> {
    let mut response = http::Response::new(tonic::body::Body::default());
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        tonic::metadata::GRPC_CONTENT_TYPE,
    );
    let _ = status.add_header(headers);
    response
}

/// A stream's responses as gRPC messages, then the status as trailers.
struct GrpcBody<M> {
    responses: Responses<Result<M, Status>>,
    ended: bool,
}

impl<M> GrpcBody<M> {
    fn new(responses: Responses<Result<M, Status>>) -> Self {
        GrpcBody {
            responses,
            ended: false,
        }
    }
}

impl<M: Message + Send + 'static> http_body::Body for GrpcBody<M> {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        if self.ended {
            return Poll::Ready(None);
        }
        let next = match futures::ready!(Pin::new(&mut self.responses).poll_next(cx)) {
            Some(Ok(message)) => return Poll::Ready(Some(Ok(Frame::data(frame(&message))))),
            Some(Err(status)) => status,
            None => Status::new(Code::Ok, ""),
        };
        self.ended = true;
        let mut trailers = http::HeaderMap::new();
        if let Err(unwritable) = next.add_header(&mut trailers) {
            // A message that cannot be a header value: keep the code.
            let _ = Status::new(unwritable.code(), "").add_header(&mut trailers);
        }
        Poll::Ready(Some(Ok(Frame::trailers(trailers))))
    }

    fn is_end_stream(&self) -> bool {
        self.ended
    }
}

/// gRPC's length-prefixed message: uncompressed flag, big-endian length,
/// the message, in one allocation of exactly that size.
fn frame(message: &impl Message) -> Bytes {
    let length = message.encoded_len();
    let mut buffer = Vec::with_capacity(5 + length);
    buffer.push(0);
    buffer.extend_from_slice(&(length as u32).to_be_bytes());
    message
        .encode(&mut buffer)
        .expect("a Vec with room for the whole message");
    Bytes::from(buffer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::envoy::service::discovery::v3::DiscoveryResponse;

    #[test]
    fn a_frame_is_flag_length_message() {
        let response = DiscoveryResponse {
            version_info: "7".into(),
            nonce: "1".into(),
            ..Default::default()
        };
        let framed = frame(&response);
        assert_eq!(framed[0], 0);
        let length = u32::from_be_bytes(framed[1..5].try_into().unwrap()) as usize;
        assert_eq!(length, framed.len() - 5);
        assert_eq!(DiscoveryResponse::decode(&framed[5..]).unwrap(), response);
    }
}
