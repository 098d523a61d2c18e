//! Envoy `Address` to `SocketAddr`.

use std::net::SocketAddr;

use envoy_types::pb::envoy::config::core::v3::{Address, address, socket_address::PortSpecifier};

use crate::unsupported::Unsupported;

pub fn socket_address(address: &Address) -> Result<SocketAddr, Unsupported> {
    let Some(address::Address::SocketAddress(socket)) = &address.address else {
        return Err(Unsupported("address other than a socket address"));
    };
    let ip = socket
        .address
        .parse()
        .map_err(|_| Unsupported("socket address that is not an IP"))?;
    let port = match socket.port_specifier {
        Some(PortSpecifier::PortValue(port)) => {
            u16::try_from(port).map_err(|_| Unsupported("port out of range"))?
        }
        _ => return Err(Unsupported("named ports")),
    };
    Ok(SocketAddr::new(ip, port))
}
