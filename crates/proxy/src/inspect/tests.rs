//! Inspecting first bytes: pure classification, then over real sockets
//! (timeouts, bytes that arrive late).

use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::{Address, SocketAddress, address, socket_address};
use envoy_types::pb::envoy::config::listener::v3::{
    Filter, FilterChain, FilterChainMatch, Listener, ListenerFilter, filter,
};
use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::{
    TcpProxy, tcp_proxy::ClusterSpecifier,
};
use envoy_types::util::pack_any;
use tokio::io::AsyncWriteExt as _;
use tokio::net::{TcpListener, TcpStream};

use super::*;

/// A listener with the given listener filters, an HTTP-sniffing chain and
/// a TLS chain (so that both inspectors have work).
fn listener(filters: &[&str], timeout_ms: Option<u64>, continue_on_timeout: bool) -> ListenerSpec {
    let tcp_proxy = Filter {
        name: "envoy.filters.network.tcp_proxy".into(),
        config_type: Some(filter::ConfigType::TypedConfig(pack_any(TcpProxy {
            stat_prefix: "x".into(),
            cluster_specifier: Some(ClusterSpecifier::Cluster("x".into())),
            ..Default::default()
        }))),
    };
    let chain = |transport: &str, alpn: &[&str]| FilterChain {
        filter_chain_match: Some(FilterChainMatch {
            transport_protocol: transport.into(),
            application_protocols: alpn.iter().map(|a| a.to_string()).collect(),
            ..Default::default()
        }),
        filters: vec![tcp_proxy.clone()],
        ..Default::default()
    };
    let config = Listener {
        name: "virtualInbound".into(),
        address: Some(Address {
            address: Some(address::Address::SocketAddress(SocketAddress {
                address: "127.0.0.1".into(),
                port_specifier: Some(socket_address::PortSpecifier::PortValue(15006)),
                ..Default::default()
            })),
        }),
        filter_chains: vec![
            chain("tls", &["istio"]),
            chain("raw_buffer", &["http/1.1", "h2c"]),
            chain("raw_buffer", &[]),
        ],
        listener_filters: filters
            .iter()
            .map(|name| ListenerFilter {
                name: format!("envoy.filters.listener.{name}"),
                ..Default::default()
            })
            .collect(),
        listener_filters_timeout: timeout_ms.map(|ms| {
            envoy_types::pb::google::protobuf::Duration {
                seconds: 0,
                nanos: (ms * 1_000_000) as i32,
            }
        }),
        continue_on_listener_filters_timeout: continue_on_timeout,
        ..Default::default()
    };
    ListenerSpec::compile(&config).unwrap()
}

fn plaintext(protocols: &[&str]) -> FirstBytes {
    FirstBytes {
        application_protocols: protocols.iter().map(|p| p.to_string()).collect(),
        ..FirstBytes::default()
    }
}

#[test]
fn classifies_plaintext_only_when_the_http_inspector_is_there() {
    let sniffing = listener(&["tls_inspector", "http_inspector"], None, false);
    let request = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    assert_eq!(classify(request, &sniffing), Some(plaintext(&["http/1.1"])));
    assert_eq!(classify(b"GET /a", &sniffing), None, "more bytes will tell");
    assert_eq!(classify(b"\x00\x01binary", &sniffing), Some(plaintext(&[])));
    let tls_only = listener(&["tls_inspector"], None, false);
    assert_eq!(classify(request, &tls_only), Some(plaintext(&[])));
    assert_eq!(classify(b"GET /a", &tls_only), Some(plaintext(&[])));
    let record = classify(b"\x16\x03\x01\x00\x05\x02\x00\x00\x01\x00", &sniffing).unwrap();
    assert!(
        record.tls,
        "a handshake record that is no ClientHello is still TLS"
    );
}

async fn connected() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (client, accepted) = tokio::join!(TcpStream::connect(address), listener.accept());
    (client.unwrap(), accepted.unwrap().0)
}

#[tokio::test]
async fn waits_for_a_request_line_sent_in_pieces() {
    let spec = listener(&["http_inspector"], Some(5_000), false);
    let (mut client, server) = connected().await;
    let sending = async {
        for piece in [&b"GE"[..], b"T /pa", b"th HTTP/1", b".0\r\n"] {
            client.write_all(piece).await.unwrap();
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let (first, ()) = tokio::join!(inspect(&server, &spec), sending);
    assert_eq!(first, Some(plaintext(&["http/1.0"])));
}

#[tokio::test]
async fn a_silent_client_is_closed_or_served_as_opaque_after_the_timeout() {
    let closing = listener(&["http_inspector"], Some(50), false);
    let (_client, server) = connected().await;
    assert_eq!(inspect(&server, &closing).await, None);
    let continuing = listener(&["http_inspector"], Some(50), true);
    let (_client, server) = connected().await;
    assert_eq!(inspect(&server, &continuing).await, Some(plaintext(&[])));
}

#[test]
fn timeouts_follow_envoys_defaults() {
    assert_eq!(
        listener(&[], None, false).filters_timeout,
        Some(Duration::from_secs(15))
    );
    assert_eq!(
        listener(&[], Some(0), false).filters_timeout,
        None,
        "zero: none"
    );
}
