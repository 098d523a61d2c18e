//! Entry points for the fuzz targets in `fuzz/` (feature `fuzzing`): what
//! the proxy reads from peers it does not trust (a connection's first
//! bytes, its original destination) and from the control plane (listener
//! config). Not an API: nothing else may depend on it.

use std::net::SocketAddr;

use envoy_types::pb::envoy::config::listener::v3::Listener;

pub use crate::client_hello::{ClientHello, Peeked, parse as parse_client_hello};
pub use crate::http_inspector::{Detected, MAX_INSPECTED, detect as detect_http};

use crate::filter_chain_match::ConnectionFacts;
use crate::inspect::classify;
use crate::listener::ListenerSpec;

/// Compiles `listener` (refusing it must not panic), then, if it
/// compiles, picks the chain for a connection to `destination` whose first
/// bytes are `first_bytes`, as the proxy does for a redirected connection.
/// Returns the chosen chain's index, if any.
pub fn choose_chain(
    listener: &Listener,
    first_bytes: &[u8],
    destination: SocketAddr,
) -> Option<usize> {
    let spec = ListenerSpec::compile(listener).ok()?;
    let first = classify(first_bytes, &spec).unwrap_or_default();
    let facts = ConnectionFacts {
        destination,
        tls: first.tls,
        server_name: first.server_name.as_deref(),
        alpn: &first.application_protocols,
    };
    let chosen = spec.select_chain(&facts)?;
    let index = spec.chains.iter().position(|c| std::ptr::eq(c, chosen));
    assert!(index.is_some(), "a chosen chain is one of the listener's");
    index
}
