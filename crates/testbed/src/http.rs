//! Small HTTP helpers for tests: GET with headers returning status and
//! JSON, and raw bytes on a socket for malformed requests.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use trellis_local::DemoReply;

/// Per request, from sending to the end of the body.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// One HTTP answer.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Reply {
    /// The body as JSON; panics (naming the body) when it is not.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    /// The body as a demo app's reply; panics when it is not one.
    pub fn demo(&self) -> DemoReply {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not a demo app reply ({e}): {}", self.text()))
    }

    /// The version of `service` that answered somewhere in the call tree,
    /// e.g. `version_of("reviews")` on a productpage reply.
    pub fn version_of(&self, service: &str) -> Option<String> {
        self.demo()
            .find(service)
            .and_then(|reply| reply.version.clone())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A pooled HTTP/1.1 client (tests send thousands of requests).
#[derive(Clone)]
pub struct HttpClient {
    client: Client<HttpConnector, Empty<Bytes>>,
}

impl Default for HttpClient {
    fn default() -> Self {
        HttpClient {
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }
}

impl HttpClient {
    pub async fn get(&self, url: &str) -> anyhow::Result<Reply> {
        self.get_with_headers(url, &[]).await
    }

    /// GET `url` with extra request headers, e.g. `[("end-user", "jason")]`.
    pub async fn get_with_headers(
        &self,
        url: &str,
        headers: &[(&str, &str)],
    ) -> anyhow::Result<Reply> {
        let mut request = Request::get(url);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(Empty::new()).context("building the request")?;
        let exchange = async {
            let response = self.client.request(request).await?;
            let (parts, body) = response.into_parts();
            let body = body.collect().await?.to_bytes();
            anyhow::Ok(Reply {
                status: parts.status.as_u16(),
                headers: parts.headers,
                body,
            })
        };
        tokio::time::timeout(REQUEST_TIMEOUT, exchange)
            .await
            .with_context(|| format!("GET {url}: no answer within {REQUEST_TIMEOUT:?}"))?
            .with_context(|| format!("GET {url}"))
    }
}

/// Sends `request` as raw bytes and returns everything read back until the
/// peer closes or goes quiet for a second: for malformed requests no HTTP
/// client would send.
pub async fn send_raw(address: SocketAddr, request: &[u8]) -> anyhow::Result<String> {
    let mut stream = TcpStream::connect(address)
        .await
        .with_context(|| format!("connecting to {address}"))?;
    stream.write_all(request).await?;
    let mut answer = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        match tokio::time::timeout(Duration::from_secs(1), stream.read(&mut buffer)).await {
            Ok(Ok(0)) | Err(_) => break,
            Ok(Ok(read)) => answer.extend_from_slice(&buffer[..read]),
            // A reset after the answer still leaves the answer.
            Ok(Err(_)) if !answer.is_empty() => break,
            Ok(Err(error)) => return Err(error).context("reading the answer"),
        }
    }
    Ok(String::from_utf8_lossy(&answer).into_owned())
}

#[cfg(test)]
mod tests {
    use tokio::net::TcpListener;

    use super::*;

    /// Answers every connection with `response` after reading a request.
    async fn canned_server(response: &'static [u8]) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (mut stream, _) = listener.accept().await.unwrap();
                let mut buffer = [0u8; 4096];
                let _ = stream.read(&mut buffer).await;
                let _ = stream.write_all(response).await;
            }
        });
        address
    }

    #[tokio::test]
    async fn reads_status_and_demo_replies() {
        let body = br#"{"service":"productpage","pod":"p-0","calls":[{"service":"reviews","version":"v2","pod":"r-0"}]}"#;
        let response = format!(
            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{}",
            body.len(),
            std::str::from_utf8(body).unwrap()
        );
        let address = canned_server(Box::leak(response.into_bytes().into_boxed_slice())).await;
        let reply = HttpClient::default()
            .get_with_headers(
                &format!("http://{address}/productpage"),
                &[("end-user", "jason")],
            )
            .await
            .unwrap();
        assert_eq!(reply.status, 200);
        assert_eq!(reply.version_of("reviews").as_deref(), Some("v2"));
        assert_eq!(reply.json()["service"], "productpage");
    }

    #[tokio::test]
    async fn sends_raw_bytes() {
        let address = canned_server(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n").await;
        let answer = send_raw(address, b"NOT HTTP\r\n\r\n").await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    }
}
