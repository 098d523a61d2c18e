//! One downstream connection: find its listener (by original destination
//! when redirected), pick the filter chain, terminate mTLS if the chain
//! says so (learning the peer's SPIFFE identity), then serve HTTP/1.1 or
//! HTTP/2 on it, or proxy its bytes.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use trellis_ca::SpiffeId;

use crate::config_follower::{ChainFacts, ConfigFollower, HttpConnection};
use crate::filter_chain_match::ConnectionFacts;
use crate::forward::handle;
use crate::inspect::inspect;
use crate::listener::{ChainSpec, Direction, HcmSpec, ListenerSpec, NetworkFilter};
use crate::metric_labels::{Shared, Workload};
use crate::metrics::{Reporter, RequestLabels, RequestProtocol};
use crate::original_dst::original_destination;
use crate::state::ProxyState;

/// Envoy's default limit on request headers (60 KiB); beyond it: 431.
const MAX_HEADER_BYTES: usize = 60 * 1024;
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The verified client of an mTLS connection.
#[derive(Clone, Debug)]
pub struct Peer {
    pub identity: Option<SpiffeId>,
    /// `identity` as a URI, formatted once per connection for the logs.
    pub uri_san: Option<String>,
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
    let Some((spec, local)) = destination_listener(&stream, spec, &state) else {
        return;
    };
    let addresses = Addresses { remote, local };
    let Some(first) = inspect(&stream, &spec).await else {
        return;
    };
    let facts = ConnectionFacts {
        destination: local,
        tls: first.tls,
        server_name: first.server_name.as_deref(),
        alpn: &first.application_protocols,
    };
    let chain_facts = ChainFacts {
        destination: local,
        tls: first.tls,
        server_name: first.server_name.clone(),
        alpn: first.application_protocols.clone(),
    };
    let Some(chain) = spec.select_chain(&facts) else {
        tracing::debug!(listener = %spec.name, destination = %local, tls = facts.tls, "no filter chain matches; closing");
        return;
    };
    if !chain.terminate_tls {
        serve_chain(stream, addresses, None, chain_facts, &spec, chain, state).await;
        return;
    }
    let Some(acceptor) = tls_acceptor(&spec, chain, &state) else {
        return;
    };
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
        let identity = trellis_ca::peer_identity(certs);
        Some(Peer {
            uri_san: identity.as_ref().map(ToString::to_string),
            identity,
            cert_hash: hex(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, leaf).as_ref()),
        })
    });
    serve_chain(stream, addresses, peer, chain_facts, &spec, chain, state).await;
}

/// The chain's certificate: a gateway credential, else the workload's.
fn tls_acceptor(
    spec: &ListenerSpec,
    chain: &ChainSpec,
    state: &ProxyState,
) -> Option<tokio_rustls::TlsAcceptor> {
    if let Some(credential) = &chain.credential {
        return match state.credentials.server_config(credential) {
            Ok(config) => Some(tokio_rustls::TlsAcceptor::from(config)),
            Err(error) => {
                tracing::warn!(listener = %spec.name, %error, "refusing TLS connection");
                None
            }
        };
    }
    let Some(credentials) = state.identity.credentials() else {
        tracing::warn!(listener = %spec.name, "no workload certificate yet; refusing mTLS connection");
        return None;
    };
    Some(tokio_rustls::TlsAcceptor::from(credentials.server.clone()))
}

/// The listener that serves this connection and the destination its chains
/// see. A redirected connection's destination is its original one; a
/// `use_original_dst` listener hands it to the listener for that address,
/// keeping it only when none exists (Envoy's semantics).
fn destination_listener(
    stream: &TcpStream,
    spec: Arc<ListenerSpec>,
    state: &ProxyState,
) -> Option<(Arc<ListenerSpec>, SocketAddr)> {
    let local = stream.local_addr().ok()?;
    if !spec.use_original_dst && !spec.original_dst_filter {
        return Some((spec, local));
    }
    let destination = match original_destination(stream) {
        Ok(original) => original.unwrap_or(local),
        Err(error) => {
            tracing::warn!(%error, listener = %spec.name, "cannot read the original destination");
            return None;
        }
    };
    if !spec.use_original_dst {
        return Some((spec, destination));
    }
    match state.listeners.for_destination(destination) {
        Some(target) if target.name != spec.name => Some((target, destination)),
        _ => Some((spec, destination)),
    }
}

async fn serve_chain<S>(
    stream: S,
    addresses: Addresses,
    peer: Option<Peer>,
    facts: ChainFacts,
    spec: &ListenerSpec,
    chain: &ChainSpec,
    state: Arc<ProxyState>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    match &chain.network {
        NetworkFilter::Http(hcm) => {
            let connection = HttpConnection {
                addresses,
                peer,
                server_name: facts.server_name.clone(),
                tls: chain.terminate_tls,
                facts,
            };
            serve_http(stream, connection, spec, hcm, state).await
        }
        NetworkFilter::Tcp(tcp) => {
            let labels =
                connection_labels(&state, spec.direction, peer.as_ref(), chain.terminate_tls);
            let downstream = crate::tcp_proxy::Downstream {
                addresses,
                principal: peer.as_ref().and_then(|p| p.uri_san.as_deref()),
                server_name: facts.server_name.as_deref(),
            };
            crate::tcp_proxy::serve(stream, tcp, downstream, labels, state).await
        }
    }
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
    connection: HttpConnection,
    spec: &ListenerSpec,
    hcm: &HcmSpec,
    state: Arc<ProxyState>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let remote = connection.addresses.remote;
    let follower = Arc::new(ConfigFollower::new(state.clone(), spec, hcm, connection));
    let mut drain = state.drain.watch();
    let service = service_fn(move |request| {
        let current = follower.current();
        let state = state.clone();
        async move {
            match current {
                Ok(downstream) => match handle(request, downstream, state).await {
                    Ok(response) => Ok(response),
                    Err(never) => match never {},
                },
                Err(gone) => Err(gone),
            }
        }
    });
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
        tracing::debug!(%remote, %error, "downstream connection ended with an error");
    }
}

/// What every request of this connection reports before routing fills in
/// the service and, outbound, the destination.
pub(crate) fn connection_labels(
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
        request_protocol: RequestProtocol::Http,
        grpc_response_status: None,
        custom: None,
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
