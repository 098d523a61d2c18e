//! One downstream connection: pick the filter chain, terminate mTLS if the
//! chain says so (learning the peer's SPIFFE identity), then serve HTTP/1.1
//! or HTTP/2 on it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use trellis_ca::SpiffeId;

use crate::forward::{Downstream, handle};
use crate::listener::{ChainSpec, Direction, ListenerSpec, RouteSource};
use crate::metric_labels::{Shared, Workload};
use crate::metrics::{Reporter, RequestLabels};
use crate::state::ProxyState;

/// Envoy's default limit on request headers (60 KiB); beyond it: 431.
const MAX_HEADER_BYTES: usize = 60 * 1024;
const TLS_HANDSHAKE_RECORD: u8 = 0x16;
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The verified client of an mTLS connection.
#[derive(Clone, Debug)]
pub struct Peer {
    pub identity: Option<SpiffeId>,
    /// SHA-256 of the client's leaf certificate, hex (for XFCC's `Hash`).
    pub cert_hash: String,
}

pub async fn serve_connection(
    stream: TcpStream,
    remote: SocketAddr,
    spec: Arc<ListenerSpec>,
    state: Arc<ProxyState>,
) {
    let _ = stream.set_nodelay(true);
    let Ok(local) = stream.local_addr() else {
        return;
    };
    let addresses = Addresses { remote, local };
    let tls = if spec.inspects_tls() {
        let mut first = [0u8; 1];
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, stream.peek(&mut first)).await {
            Ok(Ok(1)) => first[0] == TLS_HANDSHAKE_RECORD,
            _ => return,
        }
    } else {
        false
    };
    let Some(chain) = spec.chain_for(tls) else {
        tracing::debug!(listener = %spec.name, tls, "no filter chain matches; closing");
        return;
    };
    if !chain.terminate_tls {
        serve_http(stream, addresses, None, &spec, chain, state).await;
        return;
    }
    let Some(credentials) = state.identity.credentials() else {
        tracing::warn!(listener = %spec.name, "no workload certificate yet; refusing mTLS connection");
        return;
    };
    let acceptor = tokio_rustls::TlsAcceptor::from(credentials.server.clone());
    let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(error)) => {
            tracing::info!(%remote, %error, listener = %spec.name, "mTLS handshake failed");
            return;
        }
        Err(_) => return,
    };
    let peer = stream.get_ref().1.peer_certificates().and_then(|certs| {
        let leaf = certs.first()?;
        Some(Peer {
            identity: trellis_ca::peer_identity(certs),
            cert_hash: hex(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, leaf).as_ref()),
        })
    });
    serve_http(stream, addresses, peer, &spec, chain, state).await;
}

/// Both ends of a downstream connection.
#[derive(Clone, Copy, Debug)]
pub struct Addresses {
    pub remote: SocketAddr,
    /// Where the connection was accepted.
    pub local: SocketAddr,
}

async fn serve_http<S>(
    stream: S,
    addresses: Addresses,
    peer: Option<Peer>,
    spec: &ListenerSpec,
    chain: &ChainSpec,
    state: Arc<ProxyState>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let labels = connection_labels(&state, spec.direction, peer.as_ref(), chain.terminate_tls);
    let downstream = Arc::new(Downstream {
        labels,
        peer,
        direction: spec.direction,
        routes: match &chain.hcm.routes {
            RouteSource::Inline(table) => RouteSource::Inline(table.clone()),
            RouteSource::Rds(name) => RouteSource::Rds(name.clone()),
        },
        set_client_cert: chain.hcm.set_client_cert,
        tls: chain.terminate_tls,
        fault_filter: chain.hcm.fault_filter,
        rbac: chain.hcm.rbac.clone(),
        addresses,
        access_logs: state.access_logs.loggers(&chain.hcm.access_logs),
        peer_cache: Default::default(),
    });
    let mut drain = state.drain.watch();
    let service = service_fn(move |request| handle(request, downstream.clone(), state.clone()));
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .max_buf_size(MAX_HEADER_BYTES.max(8192))
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(Duration::from_secs(30));
    builder
        .http2()
        .max_header_list_size(MAX_HEADER_BYTES as u32);
    let connection = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        () = drain.started() => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(error) = result {
        tracing::debug!(remote = %addresses.remote, %error, "downstream connection ended with an error");
    }
}

/// What every request of this connection reports before routing fills in
/// the service and, outbound, the destination.
fn connection_labels(
    state: &ProxyState,
    direction: Direction,
    peer: Option<&Peer>,
    tls: bool,
) -> RequestLabels {
    let own = &state.labels;
    let template = RequestLabels {
        reporter: Reporter::Source,
        source: own.me.clone(),
        destination: own.unknown_workload.clone(),
        service: own.unknown_service.clone(),
        response_code: 0,
        response_flags: "-",
        connection_security_policy: "unknown",
    };
    match direction {
        Direction::Outbound => template,
        Direction::Inbound => RequestLabels {
            reporter: Reporter::Destination,
            source: match peer.and_then(|p| p.identity.as_ref()) {
                Some(id) => Shared::new(Workload::with_principal(id.to_string())),
                None => own.unknown_workload.clone(),
            },
            destination: own.me.clone(),
            connection_security_policy: if tls { "mutual_tls" } else { "none" },
            ..template
        },
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
