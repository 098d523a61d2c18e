//! Upstream connections from a chosen source address (Envoy's
//! `upstream_bind_config`). A capture-mode sidecar reaches its own app from
//! 127.0.0.6, the source Istio's iptables rules let through instead of
//! redirecting the proxy's connection back to itself.

use std::io;
use std::net::{IpAddr, SocketAddr};

use envoy_types::pb::envoy::config::core::v3::{Address, BindConfig, address};
use tokio::net::{TcpSocket, TcpStream};

use crate::unsupported::{Unsupported, reject_if};
use crate::xds_address::socket_address;

/// The source address a cluster binds its connections to, if any. Only a
/// source IP is implemented (port 0: the kernel picks the port).
pub fn source_address(bind: Option<&BindConfig>) -> Result<Option<IpAddr>, Unsupported> {
    let Some(bind) = bind else {
        return Ok(None);
    };
    reject_if(
        bind.freebind.is_some() || !bind.socket_options.is_empty(),
        "upstream_bind_config other than source_address",
    )?;
    reject_if(
        !bind.extra_source_addresses.is_empty()
            || has_additional_addresses(bind)
            || bind.local_address_selector.is_some(),
        "upstream_bind_config with several source addresses",
    )?;
    let address = bind
        .source_address
        .as_ref()
        .ok_or(Unsupported("upstream_bind_config without source_address"))?;
    let address = socket_address(&Address {
        address: Some(address::Address::SocketAddress(address.clone())),
    })?;
    reject_if(address.port() != 0, "upstream_bind_config source port")?;
    Ok(Some(address.ip()))
}

/// The deprecated form of `extra_source_addresses`, still on the wire.
#[allow(deprecated)]
fn has_additional_addresses(bind: &BindConfig) -> bool {
    !bind.additional_source_addresses.is_empty()
}

/// Connects to `address`, from `source` when given.
pub async fn connect(address: SocketAddr, source: Option<IpAddr>) -> io::Result<TcpStream> {
    let Some(source) = source else {
        return TcpStream::connect(address).await;
    };
    let socket = match address {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.bind(SocketAddr::new(source, 0))?;
    socket.connect(address).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::envoy::config::core::v3::{SocketAddress, socket_address::PortSpecifier};

    fn bind(ip: &str, port: u32) -> BindConfig {
        BindConfig {
            source_address: Some(SocketAddress {
                address: ip.into(),
                port_specifier: Some(PortSpecifier::PortValue(port)),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn compiles_a_source_ip_and_rejects_the_rest() {
        assert_eq!(source_address(None), Ok(None));
        assert_eq!(
            source_address(Some(&bind("127.0.0.6", 0))),
            Ok(Some("127.0.0.6".parse().unwrap()))
        );
        assert!(source_address(Some(&bind("127.0.0.6", 4000))).is_err());
        assert!(source_address(Some(&BindConfig::default())).is_err());
    }

    #[tokio::test]
    async fn connects_from_the_source_address() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let target = listener.local_addr().unwrap();
        let source: IpAddr = "127.0.0.6".parse().unwrap();
        let (client, accepted) = tokio::join!(connect(target, Some(source)), listener.accept());
        let _client = client.unwrap();
        assert_eq!(accepted.unwrap().1.ip(), source);
    }
}
