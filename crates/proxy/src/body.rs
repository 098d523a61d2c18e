//! The body type that flows through the proxy in both directions.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, combinators::BoxBody};

pub type ProxyBody = BoxBody<Bytes, hyper::Error>;

pub fn full(content: impl Into<Bytes>) -> ProxyBody {
    Full::new(content.into())
        .map_err(|never| match never {})
        .boxed()
}
