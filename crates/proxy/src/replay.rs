//! Request bodies that can be sent more than once (to retry, or to a
//! mirror): bodies up to [`BUFFER_LIMIT`] are read whole first, as Envoy
//! buffers up to its connection buffer limit; longer or endless ones are
//! streamed through once and neither retried nor mirrored.

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use http::HeaderMap;
use http_body::{Body, Frame};
use http_body_util::{BodyExt, BodyStream, StreamBody};

use crate::body::{ProxyBody, full};

/// Envoy's default per-connection buffer limit.
pub const BUFFER_LIMIT: usize = 64 * 1024;

pub enum RequestBody {
    Replayable {
        data: Bytes,
        trailers: Option<HeaderMap>,
    },
    /// Too long to keep: what was read so far, then the rest, streamed.
    Streaming(ProxyBody),
}

impl RequestBody {
    /// Reads `body` up to `limit` bytes; an error means the client reset.
    pub async fn read(mut body: ProxyBody, limit: usize) -> Result<RequestBody, hyper::Error> {
        if body.is_end_stream() {
            return Ok(RequestBody::Replayable {
                data: Bytes::new(),
                trailers: None,
            });
        }
        if body.size_hint().lower() > limit as u64 {
            return Ok(RequestBody::Streaming(body));
        }
        let mut data = BytesMut::new();
        while let Some(frame) = body.frame().await {
            let frame = frame?;
            if frame.is_trailers() {
                let trailers = frame.into_trailers().ok();
                return Ok(RequestBody::Replayable {
                    data: data.freeze(),
                    trailers,
                });
            }
            if let Ok(chunk) = frame.into_data() {
                data.extend_from_slice(&chunk);
            }
            if data.len() > limit {
                let read = futures::stream::once(async move { Ok(Frame::data(data.freeze())) });
                let rest = BodyStream::new(body);
                let stream = StreamBody::new(read.chain(rest));
                return Ok(RequestBody::Streaming(BodyExt::boxed(stream)));
            }
        }
        Ok(RequestBody::Replayable {
            data: data.freeze(),
            trailers: None,
        })
    }

    pub fn is_replayable(&self) -> bool {
        matches!(self, RequestBody::Replayable { .. })
    }

    /// A body for one more send; `None` when the body was streamed away.
    pub fn replay(&self) -> Option<ProxyBody> {
        match self {
            RequestBody::Replayable { data, trailers } => Some(buffered(data, trailers.as_ref())),
            RequestBody::Streaming(_) => None,
        }
    }

    /// The body for the last (or only) send.
    pub fn into_body(self) -> ProxyBody {
        match self {
            RequestBody::Replayable { data, trailers } => buffered(&data, trailers.as_ref()),
            RequestBody::Streaming(body) => body,
        }
    }
}

fn buffered(data: &Bytes, trailers: Option<&HeaderMap>) -> ProxyBody {
    let Some(trailers) = trailers else {
        return full(data.clone());
    };
    let frames = [Frame::data(data.clone()), Frame::trailers(trailers.clone())];
    BodyExt::boxed(StreamBody::new(futures::stream::iter(
        frames.map(Ok::<_, hyper::Error>),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn replayable_bodies_replay_with_their_trailers() {
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-timeout", "1S".parse().unwrap());
        let body = RequestBody::Replayable {
            data: Bytes::from_static(b"payload"),
            trailers: Some(trailers),
        };
        assert!(body.is_replayable());
        for _ in 0..2 {
            let collected = body.replay().unwrap().collect().await.unwrap();
            assert_eq!(collected.trailers().unwrap()["grpc-timeout"], "1S");
            assert_eq!(collected.to_bytes(), "payload");
        }
        let last = body.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(last, "payload");
    }
}
