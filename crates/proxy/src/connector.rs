//! Opens upstream connections for one cluster: plain TCP, mesh mTLS with
//! the workload's certificate, verifying the peer's SPIFFE identity, or TLS
//! originated to a server outside the mesh (see tls_origination.rs).

use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper::Uri;
use hyper_util::client::legacy::connect::{CaptureConnection, Connected, Connection};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use trellis_ca::SpiffeId;

use crate::identity::Identity;
use crate::keepalive::TcpKeepalive;

/// How to secure connections to a cluster's endpoints.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpstreamTls {
    pub sni: String,
    /// Identities the server may present; empty accepts any mesh identity.
    pub peers: Vec<SpiffeId>,
    pub alpn: &'static [u8],
    /// Set for TLS to a server outside the mesh, with the user's CA and
    /// certificates instead of the workload's (and `peers` empty).
    pub origination: Option<crate::tls_origination::Origination>,
}

#[derive(Clone)]
pub struct MeshConnector {
    pub tls: Option<UpstreamTls>,
    pub identity: Arc<Identity>,
    pub connect_timeout: Duration,
    /// Connect from this address (`upstream_bind_config`).
    pub source_address: Option<IpAddr>,
    pub keepalive: Option<TcpKeepalive>,
}

pub enum UpstreamStream {
    Plain(TcpStream, ConnectionUses),
    Tls(
        Box<tokio_rustls::client::TlsStream<TcpStream>>,
        ConnectionUses,
    ),
}

/// How many requests a connection has carried and when it was opened,
/// attached to the pool's record of it so `max_requests_per_connection`
/// and `max_connection_duration` can retire it.
#[derive(Clone, Debug)]
pub struct ConnectionUses {
    requests: Arc<AtomicU32>,
    opened: Instant,
    /// Whether the connection's lifetime timer runs already.
    timed: Arc<AtomicBool>,
    /// Signalled when the connection is dropped, ending its timer early.
    closed: Arc<Notify>,
}

impl ConnectionUses {
    fn new() -> ConnectionUses {
        ConnectionUses {
            requests: Arc::default(),
            opened: Instant::now(),
            timed: Arc::default(),
            closed: Arc::default(),
        }
    }
}

/// The usage record of the connection `captured` saw, if it saw one.
fn uses_of(captured: &CaptureConnection) -> Option<ConnectionUses> {
    let metadata = captured.connection_metadata();
    let mut extensions = http::Extensions::new();
    metadata.as_ref()?.get_extras(&mut extensions);
    extensions.get::<ConnectionUses>().cloned()
}

/// Counts a request on the connection `captured` saw and, once it has
/// carried `max` requests, takes the connection out of the pool (hyper
/// closes it when its current request is over).
pub fn count_use(captured: &CaptureConnection, max: u32) {
    if let Some(uses) = uses_of(captured)
        && uses.requests.fetch_add(1, Ordering::AcqRel) + 1 >= max
    {
        poison(captured);
    }
}

fn poison(captured: &CaptureConnection) {
    if let Some(connected) = captured.connection_metadata().as_ref() {
        connected.poison();
    }
}

/// Retires the connection `captured` saw once it is `max` old (Envoy's
/// `max_connection_duration`): from then on the pool never hands it out,
/// so an idle one is closed and a busy one closes after its request. One
/// timer per connection, armed on its first request, ended early when the
/// connection closes.
pub fn limit_lifetime(captured: CaptureConnection, max: Duration) {
    let Some(uses) = uses_of(&captured) else {
        return;
    };
    if uses.timed.swap(true, Ordering::AcqRel) {
        return;
    }
    let deadline = tokio::time::Instant::from_std(uses.opened + max);
    tokio::spawn(async move {
        tokio::select! {
            () = tokio::time::sleep_until(deadline) => poison(&captured),
            () = uses.closed.notified() => {}
        }
    });
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
        let tcp = tokio::time::timeout(
            self.connect_timeout,
            crate::upstream_bind::connect(address, self.source_address),
        )
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timeout"))??;
        tcp.set_nodelay(true)?;
        if let Some(keepalive) = &self.keepalive {
            keepalive.apply(&tcp)?;
        }
        let Some(tls) = &self.tls else {
            return Ok(UpstreamStream::Plain(tcp, ConnectionUses::new()));
        };
        let config = match &tls.origination {
            Some(origination) => origination.client_config().map_err(io::Error::other)?,
            None => self.mesh_client_config(tls)?,
        };
        let name = ServerName::try_from(tls.sni.clone())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let stream = tokio_rustls::TlsConnector::from(config)
            .connect(name, tcp)
            .await?;
        Ok(UpstreamStream::Tls(Box::new(stream), ConnectionUses::new()))
    }
}

impl MeshConnector {
    fn mesh_client_config(&self, tls: &UpstreamTls) -> io::Result<Arc<rustls::ClientConfig>> {
        let credentials = self.identity.credentials().ok_or_else(|| {
            io::Error::new(io::ErrorKind::NotConnected, "no workload certificate yet")
        })?;
        credentials
            .client(&tls.peers, tls.alpn)
            .map_err(io::Error::other)
    }
}

impl Connection for UpstreamStream {
    fn connected(&self) -> Connected {
        match self {
            UpstreamStream::Plain(_, uses) => Connected::new().extra(uses.clone()),
            UpstreamStream::Tls(tls, uses) => {
                let connected = Connected::new().extra(uses.clone());
                let h2 = matches!(tls.get_ref().1.alpn_protocol(), Some(b"istio-h2" | b"h2"));
                if h2 {
                    connected.negotiated_h2()
                } else {
                    connected
                }
            }
        }
    }
}

impl Drop for UpstreamStream {
    fn drop(&mut self) {
        let (UpstreamStream::Plain(_, uses) | UpstreamStream::Tls(_, uses)) = self;
        // notify_one keeps a permit should the timer not wait yet.
        uses.closed.notify_one();
    }
}

impl AsyncRead for UpstreamStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpstreamStream::Plain(s, _) => Pin::new(s).poll_read(cx, buf),
            UpstreamStream::Tls(s, _) => Pin::new(s).poll_read(cx, buf),
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
            UpstreamStream::Plain(s, _) => Pin::new(s).poll_write(cx, buf),
            UpstreamStream::Tls(s, _) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpstreamStream::Plain(s, _) => Pin::new(s).poll_flush(cx),
            UpstreamStream::Tls(s, _) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpstreamStream::Plain(s, _) => Pin::new(s).poll_shutdown(cx),
            UpstreamStream::Tls(s, _) => Pin::new(s).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            UpstreamStream::Plain(s, _) => Pin::new(s).poll_write_vectored(cx, bufs),
            UpstreamStream::Tls(s, _) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            UpstreamStream::Plain(s, _) => s.is_write_vectored(),
            UpstreamStream::Tls(s, _) => s.is_write_vectored(),
        }
    }
}
