//! The address a redirected connection was originally sent to, as iptables
//! REDIRECT records it (SO_ORIGINAL_DST / IP6T_SO_ORIGINAL_DST).

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use nix::sys::socket::{getsockopt, sockopt};
use tokio::net::TcpStream;

/// The original destination of `stream`, or `None` if the connection was
/// not redirected (the kernel has no NAT record of it): its destination
/// then is the listener itself.
pub fn original_destination(stream: &TcpStream) -> io::Result<Option<SocketAddr>> {
    let local = stream.local_addr()?;
    let result = match local {
        SocketAddr::V4(_) => getsockopt(stream, sockopt::OriginalDst).map(|sin| {
            let ip = Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
            SocketAddr::new(IpAddr::V4(ip), u16::from_be(sin.sin_port))
        }),
        SocketAddr::V6(_) => getsockopt(stream, sockopt::Ip6tOriginalDst).map(|sin6| {
            let ip = Ipv6Addr::from(sin6.sin6_addr.s6_addr);
            SocketAddr::new(IpAddr::V6(ip), u16::from_be(sin6.sin6_port))
        }),
    };
    match result {
        Ok(address) => Ok(Some(address)),
        // ENOENT: no conntrack entry; ENOPROTOOPT: no NAT support in this
        // namespace. Either way the connection was not redirected.
        Err(nix::errno::Errno::ENOENT | nix::errno::Errno::ENOPROTOOPT) => Ok(None),
        Err(errno) => Err(io::Error::from(errno)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_direct_connection_has_no_original_destination() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (client, accepted) = tokio::join!(TcpStream::connect(address), listener.accept());
        let _client = client.unwrap();
        let (server, _) = accepted.unwrap();
        // Without a NAT record the kernel reports none (or, with conntrack
        // loaded, the address that was really connected to).
        match original_destination(&server).unwrap() {
            None => {}
            Some(original) => assert_eq!(original, address),
        }
    }
}
