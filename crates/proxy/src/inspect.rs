//! The listener filters that read a connection's first bytes before its
//! chain is chosen: Envoy's tls_inspector (TLS or not, the ClientHello's
//! server name and ALPN) and http_inspector (whether plaintext is HTTP).
//! They peek, so every byte is still there for the chain.
//!
//! A listener's `listener_filters_timeout` bounds the wait for those bytes
//! (Envoy's default: 15 s; zero: none). When it expires the connection is
//! closed, or, with `continue_on_listener_filters_timeout`, served as
//! plaintext of no known protocol: a server-first protocol (the server
//! speaks first, so the client sends nothing) reaches its TCP chain.

use std::time::Duration;

use tokio::net::TcpStream;

use crate::client_hello::{self, Peeked};
use crate::http_inspector::{self, Detected};
use crate::listener::ListenerSpec;

const TLS_HANDSHAKE_RECORD: u8 = 0x16;
/// A ClientHello larger than one TLS record's maximum is not inspected.
const MAX_CLIENT_HELLO: usize = 5 + 16 * 1024;
/// Peeking does not wait for more bytes than are there: retry this often.
const PEEK_RETRY: Duration = Duration::from_millis(2);

/// What the first bytes showed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FirstBytes {
    pub tls: bool,
    pub server_name: Option<String>,
    /// The ClientHello's ALPN, or the protocol sniffed from plaintext.
    pub application_protocols: Vec<String>,
}

/// `None`: the client closed before it could be told apart, or sent
/// nothing before the timeout (without continue): close the connection.
pub async fn inspect(stream: &TcpStream, spec: &ListenerSpec) -> Option<FirstBytes> {
    if !spec.inspects_tls() && !spec.http_inspector {
        return Some(FirstBytes::default());
    }
    let peeking = peek_until_known(stream, spec);
    let Some(limit) = spec.filters_timeout else {
        return peeking.await;
    };
    match tokio::time::timeout(limit, peeking).await {
        Ok(first) => first,
        Err(_) if spec.continue_on_filters_timeout => Some(FirstBytes::default()),
        Err(_) => None,
    }
}

async fn peek_until_known(stream: &TcpStream, spec: &ListenerSpec) -> Option<FirstBytes> {
    let mut buffer = vec![0u8; MAX_CLIENT_HELLO];
    loop {
        let n = stream.peek(&mut buffer).await.ok()?;
        if n == 0 {
            return None; // closed before sending anything
        }
        match classify(&buffer[..n], spec) {
            Some(first) => return Some(first),
            None => tokio::time::sleep(PEEK_RETRY).await,
        }
    }
}

/// What `bytes` (all that arrived so far) show, as far as `spec`'s
/// inspectors look; `None` until enough has arrived. Bytes that fill the
/// buffer always decide.
pub fn classify(bytes: &[u8], spec: &ListenerSpec) -> Option<FirstBytes> {
    let first = *bytes.first()?;
    if spec.inspects_tls() && first == TLS_HANDSHAKE_RECORD {
        return client_hello(bytes, spec.inspects_client_hello());
    }
    let mut plaintext = FirstBytes::default();
    if spec.http_inspector {
        let inspected = &bytes[..bytes.len().min(http_inspector::MAX_INSPECTED)];
        match http_inspector::detect(inspected) {
            Detected::Http(protocol) => plaintext.application_protocols = vec![protocol.into()],
            Detected::NotHttp => {}
            Detected::NeedMore => return None,
        }
    }
    Some(plaintext)
}

fn client_hello(bytes: &[u8], wanted: bool) -> Option<FirstBytes> {
    let tls = FirstBytes {
        tls: true,
        ..FirstBytes::default()
    };
    if !wanted {
        return Some(tls);
    }
    match client_hello::parse(bytes) {
        Peeked::Hello(hello) => Some(FirstBytes {
            tls: true,
            server_name: hello.server_name,
            application_protocols: hello.alpn,
        }),
        Peeked::NotClientHello => Some(tls),
        Peeked::Incomplete { record_len } if record_len > MAX_CLIENT_HELLO => Some(tls),
        Peeked::Incomplete { .. } if bytes.len() >= MAX_CLIENT_HELLO => Some(tls),
        Peeked::Incomplete { .. } => None,
    }
}

#[cfg(test)]
mod tests;
