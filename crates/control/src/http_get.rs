//! Plain HTTP/1.1 calls from the CLI to the control plane's and proxies'
//! local debug and admin ports.

use std::net::SocketAddr;

use anyhow::Context;
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;

pub async fn get_json<T: serde::de::DeserializeOwned>(
    address: SocketAddr,
    path: &str,
) -> anyhow::Result<T> {
    let body = call(address, hyper::Method::GET, path).await?;
    serde_json::from_slice(&body).with_context(|| format!("{address}{path} did not answer JSON"))
}

/// The body of a successful answer to `METHOD path`; other statuses are
/// errors quoting the answer.
pub async fn call(address: SocketAddr, method: hyper::Method, path: &str) -> anyhow::Result<Bytes> {
    let stream = tokio::net::TcpStream::connect(address)
        .await
        .with_context(|| format!("connecting to {address}"))?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    let request = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header(hyper::header::HOST, address.to_string())
        .body(Empty::<Bytes>::new())?;
    let response = sender.send_request(request).await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    anyhow::ensure!(
        status.is_success(),
        "{address}{path} answered {status}: {}",
        String::from_utf8_lossy(&body).trim_end()
    );
    Ok(body)
}
