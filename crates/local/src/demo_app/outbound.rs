//! The demo app's HTTP client. With a proxy (loopback local mode) every
//! call goes to the sidecar's outbound HTTP proxy port, in absolute form
//! (`GET http://reviews:9080/reviews/0`), exactly as an app honouring
//! `HTTP_PROXY` sends it. Without one (in a pod with capture) it connects
//! to `reviews:9080` itself, resolved by the system (the pod's hosts
//! file), and iptables hands the connection to the sidecar.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;

use super::call_graph::PlannedCall;
use super::reply::DemoReply;
use crate::error_chain::error_chain;

/// Replies larger than this are reported as failures rather than buffered.
const MAX_REPLY_BYTES: usize = 1 << 20;

/// Where outbound calls go: `host:port` of an HTTP proxy, or straight to
/// the URL's host when no proxy is configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundProxy {
    authority: String,
}

/// Why an outbound proxy URL was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid outbound proxy {0:?}: expected http://HOST:PORT")]
pub struct OutboundProxyError(String);

impl std::str::FromStr for OutboundProxy {
    type Err = OutboundProxyError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = || OutboundProxyError(text.to_owned());
        let uri: Uri = text.parse().map_err(|_| invalid())?;
        if uri.scheme_str() != Some("http") || !matches!(uri.path(), "" | "/") {
            return Err(invalid());
        }
        let authority = uri.authority().ok_or_else(invalid)?;
        let port = authority.port_u16().unwrap_or(80);
        Ok(OutboundProxy {
            authority: format!("{}:{port}", authority.host()),
        })
    }
}

/// A pooled HTTP/1.1 client that makes a demo app's calls.
#[derive(Clone)]
pub(crate) struct OutboundClient {
    client: Client<ProxyConnector, Empty<Bytes>>,
}

impl OutboundClient {
    pub fn new(proxy: Option<OutboundProxy>) -> OutboundClient {
        let connector = ProxyConnector {
            proxy: proxy.map(|proxy| Arc::from(proxy.authority)),
        };
        OutboundClient {
            client: Client::builder(TokioExecutor::new()).build(connector),
        }
    }

    /// Makes `call`, retrying as planned, and returns what goes into the
    /// caller's `calls`: the callee's reply, or a failure record.
    pub async fn call(&self, call: &PlannedCall, forwarded: &HeaderMap) -> DemoReply {
        let mut outcome = self.attempt(call, forwarded).await;
        for _ in 1..call.attempts {
            if outcome.succeeded {
                break;
            }
            outcome = self.attempt(call, forwarded).await;
        }
        outcome.reply
    }

    async fn attempt(&self, call: &PlannedCall, forwarded: &HeaderMap) -> Attempt {
        let result = tokio::time::timeout(call.timeout, self.fetch(call, forwarded)).await;
        match result {
            Err(_) => Attempt::failed(DemoReply::failed_call(
                call.service,
                format!("timed out after {:?}", call.timeout),
                None,
            )),
            Ok(Err(error)) => Attempt::failed(DemoReply::failed_call(call.service, error, None)),
            Ok(Ok((status, body))) => Attempt::from_response(call.service, status, &body),
        }
    }

    async fn fetch(
        &self,
        call: &PlannedCall,
        forwarded: &HeaderMap,
    ) -> Result<(StatusCode, Bytes), String> {
        let mut request = Request::get(call.url())
            .body(Empty::new())
            .map_err(|e| e.to_string())?;
        request.headers_mut().extend(forwarded.clone());
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| error_chain(&e))?;
        let status = response.status();
        let body = Limited::new(response.into_body(), MAX_REPLY_BYTES)
            .collect()
            .await
            .map_err(|e| format!("reading reply: {e}"))?
            .to_bytes();
        Ok((status, body))
    }
}

/// One attempt's result and whether it counts as a success (200, as
/// Bookinfo's clients require).
struct Attempt {
    reply: DemoReply,
    succeeded: bool,
}

impl Attempt {
    fn failed(reply: DemoReply) -> Attempt {
        Attempt {
            reply,
            succeeded: false,
        }
    }

    fn from_response(service: &str, status: StatusCode, body: &[u8]) -> Attempt {
        match serde_json::from_slice::<DemoReply>(body) {
            Ok(mut reply) if reply.answered_by_app() => {
                if !status.is_success() {
                    reply.status = Some(status.as_u16());
                }
                Attempt {
                    reply,
                    succeeded: status == StatusCode::OK,
                }
            }
            _ => {
                let snippet = String::from_utf8_lossy(&body[..body.len().min(200)]);
                let error = format!("HTTP {status}: {}", snippet.trim());
                Attempt::failed(DemoReply::failed_call(
                    service,
                    error,
                    Some(status.as_u16()),
                ))
            }
        }
    }
}

/// Connects every request to the proxy (when set), and marks the connection
/// as proxied so hyper keeps the request URI in absolute form.
#[derive(Clone)]
struct ProxyConnector {
    proxy: Option<Arc<str>>,
}

impl tower_service::Service<Uri> for ProxyConnector {
    type Response = MeshStream;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<MeshStream>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let proxy = self.proxy.clone();
        Box::pin(async move {
            let target = match &proxy {
                Some(proxy) => proxy.to_string(),
                None => direct_target(&uri)?,
            };
            let stream = TcpStream::connect(target).await?;
            stream.set_nodelay(true)?;
            Ok(MeshStream {
                io: TokioIo::new(stream),
                proxied: proxy.is_some(),
            })
        })
    }
}

fn direct_target(uri: &Uri) -> io::Result<String> {
    let host = uri
        .host()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, format!("no host in {uri}")))?;
    Ok(format!("{host}:{}", uri.port_u16().unwrap_or(80)))
}

/// A TCP connection that tells hyper whether it leads to a proxy.
struct MeshStream {
    io: TokioIo<TcpStream>,
    proxied: bool,
}

impl Connection for MeshStream {
    fn connected(&self) -> Connected {
        Connected::new().proxy(self.proxied)
    }
}

impl hyper::rt::Read for MeshStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for MeshStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proxy_urls() {
        let proxy: OutboundProxy = "http://127.42.0.3:15001".parse().unwrap();
        assert_eq!(proxy.authority, "127.42.0.3:15001");
        let proxy: OutboundProxy = "http://proxy.local/".parse().unwrap();
        assert_eq!(proxy.authority, "proxy.local:80");
        assert!("https://127.0.0.1:15001".parse::<OutboundProxy>().is_err());
        assert!("127.0.0.1:15001".parse::<OutboundProxy>().is_err());
        assert!(
            "http://127.0.0.1:15001/path"
                .parse::<OutboundProxy>()
                .is_err()
        );
    }

    #[test]
    fn keeps_app_replies_and_records_mesh_failures() {
        let app = br#"{"service":"reviews","version":"v1","pod":"reviews-v1-0","error":"injected fault"}"#;
        let attempt = Attempt::from_response("reviews", StatusCode::INTERNAL_SERVER_ERROR, app);
        assert!(!attempt.succeeded);
        assert!(attempt.reply.answered_by_app());
        assert_eq!(attempt.reply.status, Some(500));

        let attempt = Attempt::from_response(
            "reviews",
            StatusCode::SERVICE_UNAVAILABLE,
            b"no healthy upstream",
        );
        assert!(!attempt.reply.answered_by_app());
        assert_eq!(
            attempt.reply.error.as_deref(),
            Some("HTTP 503 Service Unavailable: no healthy upstream")
        );
    }
}
