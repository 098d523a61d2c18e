//! Opens upstream connections for one cluster: plain TCP, or mesh mTLS with
//! the workload's certificate, verifying the peer's SPIFFE identity.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::Uri;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use trellis_ca::SpiffeId;

use crate::identity::Identity;

/// How to secure connections to a cluster's endpoints.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpstreamTls {
    pub sni: String,
    /// Identities the server may present; empty accepts any mesh identity.
    pub peers: Vec<SpiffeId>,
    pub alpn: &'static [u8],
}

#[derive(Clone)]
pub struct MeshConnector {
    pub tls: Option<UpstreamTls>,
    pub identity: Arc<Identity>,
    pub connect_timeout: Duration,
}

pub enum UpstreamStream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl tower_service::Service<Uri> for MeshConnector {
    type Response = TokioIo<UpstreamStream>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<Self::Response>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let connector = self.clone();
        Box::pin(async move { connector.connect(uri).await.map(TokioIo::new) })
    }
}

impl MeshConnector {
    async fn connect(self, uri: Uri) -> io::Result<UpstreamStream> {
        let address: SocketAddr = uri
            .authority()
            .and_then(|a| a.as_str().parse().ok())
            .ok_or_else(|| {
                io::Error::new(io::ErrorKind::InvalidInput, "endpoint is not IP:port")
            })?;
        let tcp = tokio::time::timeout(self.connect_timeout, TcpStream::connect(address))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timeout"))??;
        tcp.set_nodelay(true)?;
        let Some(tls) = &self.tls else {
            return Ok(UpstreamStream::Plain(tcp));
        };
        let credentials = self.identity.credentials().ok_or_else(|| {
            io::Error::new(io::ErrorKind::NotConnected, "no workload certificate yet")
        })?;
        let config = credentials
            .client(&tls.peers, tls.alpn)
            .map_err(io::Error::other)?;
        let name = ServerName::try_from(tls.sni.clone())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let stream = tokio_rustls::TlsConnector::from(config)
            .connect(name, tcp)
            .await?;
        Ok(UpstreamStream::Tls(Box::new(stream)))
    }
}

impl Connection for UpstreamStream {
    fn connected(&self) -> Connected {
        match self {
            UpstreamStream::Plain(_) => Connected::new(),
            UpstreamStream::Tls(tls) => {
                let h2 = matches!(tls.get_ref().1.alpn_protocol(), Some(b"istio-h2" | b"h2"));
                if h2 {
                    Connected::new().negotiated_h2()
                } else {
                    Connected::new()
                }
            }
        }
    }
}

impl AsyncRead for UpstreamStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpstreamStream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            UpstreamStream::Tls(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for UpstreamStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            UpstreamStream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            UpstreamStream::Tls(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpstreamStream::Plain(s) => Pin::new(s).poll_flush(cx),
            UpstreamStream::Tls(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpstreamStream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            UpstreamStream::Tls(s) => Pin::new(s).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            UpstreamStream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            UpstreamStream::Tls(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            UpstreamStream::Plain(s) => s.is_write_vectored(),
            UpstreamStream::Tls(s) => s.is_write_vectored(),
        }
    }
}
