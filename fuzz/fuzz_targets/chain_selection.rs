//! Choosing a filter chain for a redirected connection: an arbitrary
//! original destination and first bytes against Istio's virtualInbound
//! shape, or against any listener config the bytes decode to (which must
//! be compiled or refused, never panic).
//!
//! Input: one mode byte, 18 bytes of destination (IPv6 or IPv4-mapped
//! address, port), then either the first bytes (built-in listener) or a
//! two-byte length, a Listener protobuf and the first bytes.
#![no_main]

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use envoy_types::pb::envoy::config::core::v3::CidrRange;
use envoy_types::pb::envoy::config::listener::v3::{
    Filter, FilterChain, FilterChainMatch, Listener, ListenerFilter, filter,
};
use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::{
    TcpProxy, tcp_proxy::ClusterSpecifier,
};
use envoy_types::pb::google::protobuf::UInt32Value;
use envoy_types::util::pack_any;
use libfuzzer_sys::fuzz_target;
use prost::Message;
use trellis_proxy::fuzzing::choose_chain;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let Some((destination, rest)) = rest.split_first_chunk::<18>() else {
        return;
    };
    let address: [u8; 16] = destination[..16].try_into().unwrap();
    let ip = Ipv6Addr::from(address);
    let ip = ip.to_ipv4_mapped().map_or(IpAddr::V6(ip), IpAddr::V4);
    let destination = SocketAddr::new(ip, u16::from_be_bytes([destination[16], destination[17]]));
    if mode & 1 == 0 {
        let listener = virtual_inbound();
        if let Some(index) = choose_chain(&listener, rest, destination) {
            assert!(index < listener.filter_chains.len());
        }
        return;
    }
    let Some((length, rest)) = rest.split_first_chunk::<2>() else {
        return;
    };
    let length = usize::from(u16::from_be_bytes(*length)).min(rest.len());
    let (config, first_bytes) = rest.split_at(length);
    if let Ok(listener) = Listener::decode(config) {
        choose_chain(&listener, first_bytes, destination);
    }
});

/// Chains like a capture-mode sidecar's: per-port TLS, plaintext and
/// sniffed-HTTP chains, an address range, server names and passthrough.
fn virtual_inbound() -> Listener {
    let tcp = Filter {
        name: "envoy.filters.network.tcp_proxy".into(),
        config_type: Some(filter::ConfigType::TypedConfig(pack_any(TcpProxy {
            stat_prefix: "inbound".into(),
            cluster_specifier: Some(ClusterSpecifier::Cluster(
                "InboundPassthroughCluster".into(),
            )),
            ..Default::default()
        }))),
    };
    let chain = |port: Option<u32>, transport: &str, alpn: &[&str], names: &[&str]| FilterChain {
        filter_chain_match: Some(FilterChainMatch {
            destination_port: port.map(|value| UInt32Value { value }),
            transport_protocol: transport.into(),
            application_protocols: alpn.iter().map(|a| a.to_string()).collect(),
            server_names: names.iter().map(|n| n.to_string()).collect(),
            prefix_ranges: if port == Some(8443) {
                vec![CidrRange {
                    address_prefix: "10.0.0.0".into(),
                    prefix_len: Some(UInt32Value { value: 8 }),
                }]
            } else {
                Vec::new()
            },
            ..Default::default()
        }),
        filters: vec![tcp.clone()],
        ..Default::default()
    };
    let filter = |name: &str| ListenerFilter {
        name: format!("envoy.filters.listener.{name}"),
        ..Default::default()
    };
    Listener {
        name: "virtualInbound".into(),
        address: Some(envoy_types::pb::envoy::config::core::v3::Address {
            address: Some(
                envoy_types::pb::envoy::config::core::v3::address::Address::SocketAddress(
                    envoy_types::pb::envoy::config::core::v3::SocketAddress {
                        address: "0.0.0.0".into(),
                        port_specifier: Some(
                            envoy_types::pb::envoy::config::core::v3::socket_address::PortSpecifier::PortValue(15006),
                        ),
                        ..Default::default()
                    },
                ),
            ),
        }),
        filter_chains: vec![
            chain(Some(15006), "", &[], &[]),
            chain(Some(9100), "tls", &["istio-http/1.1", "istio-h2"], &[]),
            chain(Some(9100), "raw_buffer", &["http/1.0", "http/1.1", "h2c"], &[]),
            chain(Some(9100), "tls", &[], &[]),
            chain(Some(9100), "raw_buffer", &[], &[]),
            chain(Some(8443), "tls", &[], &["*.example.com", "api.internal"]),
            chain(None, "tls", &["istio"], &[]),
            chain(None, "raw_buffer", &[], &[]),
        ],
        listener_filters: vec![filter("original_dst"), filter("tls_inspector"), filter("http_inspector")],
        ..Default::default()
    }
}
