//! Open HTTP connections follow their listener's config: when LDS replaces
//! the listener, the next request of a connection runs under the chain the
//! new config selects for that connection (same destination, TLS, server
//! name and ALPN), so that a new AuthorizationPolicy or PeerAuthentication
//! applies to keep-alive connections at once, without closing them. When
//! the new config has no HTTP chain for the connection (STRICT now refuses
//! its plaintext, or the listener is gone), the connection is closed.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use tokio::sync::watch;

use crate::connection::{Addresses, Peer, connection_labels};
use crate::filter_chain_match::ConnectionFacts;
use crate::forward::Downstream;
use crate::listener::{HcmSpec, ListenerSpec, NetworkFilter, RouteSource};
use crate::state::ProxyState;

/// What chose the connection's chain, kept to choose again.
#[derive(Clone, Debug)]
pub struct ChainFacts {
    pub destination: SocketAddr,
    pub tls: bool,
    pub server_name: Option<String>,
    pub alpn: Vec<String>,
}

/// What an HTTP connection's requests learn of it.
#[derive(Clone)]
pub struct HttpConnection {
    pub addresses: Addresses,
    pub peer: Option<Peer>,
    /// The ClientHello's server name, for RBAC's `requested_server_name`.
    pub server_name: Option<String>,
    /// The chain terminated TLS.
    pub tls: bool,
    pub facts: ChainFacts,
}

/// The connection no longer has an HTTP chain in its listener's config.
#[derive(Debug, thiserror::Error)]
#[error("the listener's new config has no HTTP chain for this connection")]
pub struct ChainGone;

pub struct ConfigFollower {
    state: Arc<ProxyState>,
    listener: String,
    connection: HttpConnection,
    replacements: Mutex<watch::Receiver<u64>>,
    current: ArcSwap<Downstream>,
}

impl ConfigFollower {
    pub fn new(
        state: Arc<ProxyState>,
        spec: &ListenerSpec,
        hcm: &HcmSpec,
        connection: HttpConnection,
    ) -> ConfigFollower {
        let mut replacements = state.listeners.replacements();
        // Replaced between accept and now: choose again on the first request.
        if state.listeners.digest_of(&spec.name) != Some(spec.digest) {
            replacements.mark_changed();
        }
        let current = ArcSwap::from_pointee(downstream(&state, spec, hcm, &connection));
        ConfigFollower {
            state,
            listener: spec.name.clone(),
            connection,
            replacements: Mutex::new(replacements),
            current,
        }
    }

    /// The config the next request runs under.
    pub fn current(&self) -> Result<Arc<Downstream>, ChainGone> {
        let mut replacements = self.replacements.lock().unwrap_or_else(|e| e.into_inner());
        if replacements.has_changed().unwrap_or(false) {
            replacements.mark_unchanged();
            let spec = self
                .state
                .listeners
                .spec_of(&self.listener)
                .ok_or(ChainGone)?;
            let facts = &self.connection.facts;
            let chain = spec
                .select_chain(&ConnectionFacts {
                    destination: facts.destination,
                    tls: facts.tls,
                    server_name: facts.server_name.as_deref(),
                    alpn: &facts.alpn,
                })
                .ok_or(ChainGone)?;
            let NetworkFilter::Http(hcm) = &chain.network else {
                return Err(ChainGone);
            };
            if chain.terminate_tls != self.connection.tls {
                return Err(ChainGone);
            }
            let next = downstream(&self.state, &spec, hcm, &self.connection);
            self.current.store(Arc::new(next));
        }
        Ok(self.current.load_full())
    }
}

fn downstream(
    state: &ProxyState,
    spec: &ListenerSpec,
    hcm: &HcmSpec,
    connection: &HttpConnection,
) -> Downstream {
    let HttpConnection {
        addresses,
        peer,
        server_name,
        tls,
        facts: _,
    } = connection.clone();
    Downstream {
        labels: connection_labels(state, spec.direction, peer.as_ref(), tls),
        peer,
        direction: spec.direction,
        routes: match &hcm.routes {
            RouteSource::Inline(table) => RouteSource::Inline(table.clone()),
            RouteSource::Rds(name) => RouteSource::Rds(name.clone()),
        },
        set_client_cert: hcm.set_client_cert,
        tls,
        fault_filter: hcm.fault_filter,
        cors_filter: hcm.cors_filter,
        jwt: hcm.jwt.clone(),
        authz: hcm.authz.clone(),
        addresses,
        server_name,
        access_logs: state.access_logs.loggers(&hcm.access_logs),
        stats: hcm.stats.clone(),
        attribute_roots: hcm.attribute_roots(),
        tracing: hcm.tracing.clone(),
        path_normalization: hcm.path_normalization,
        peer_cache: Default::default(),
        series: Default::default(),
    }
}
