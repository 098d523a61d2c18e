//! TCP keepalive on upstream connections (`upstream_connection_options.
//! tcp_keepalive`): SO_KEEPALIVE with the OS defaults, overridden by the
//! probes, idle time and interval the cluster sets.

use std::io;

use envoy_types::pb::envoy::config::cluster::v3::UpstreamConnectionOptions;
use nix::sys::socket::{setsockopt, sockopt};
use tokio::net::TcpStream;

use crate::unsupported::{Unsupported, reject_if};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpKeepalive {
    pub probes: Option<u32>,
    /// Seconds of idleness before the first probe.
    pub time: Option<u32>,
    /// Seconds between probes.
    pub interval: Option<u32>,
}

impl TcpKeepalive {
    pub fn compile(
        options: Option<&UpstreamConnectionOptions>,
    ) -> Result<Option<TcpKeepalive>, Unsupported> {
        let Some(options) = options else {
            return Ok(None);
        };
        reject_if(
            options.set_local_interface_name_on_upstream_connections,
            "upstream_connection_options.set_local_interface_name_on_upstream_connections",
        )?;
        reject_if(
            options.happy_eyeballs_config.is_some(),
            "upstream_connection_options.happy_eyeballs_config",
        )?;
        Ok(options.tcp_keepalive.as_ref().map(|k| TcpKeepalive {
            probes: k.keepalive_probes.as_ref().map(|v| v.value),
            time: k.keepalive_time.as_ref().map(|v| v.value),
            interval: k.keepalive_interval.as_ref().map(|v| v.value),
        }))
    }

    pub fn apply(&self, stream: &TcpStream) -> io::Result<()> {
        setsockopt(stream, sockopt::KeepAlive, &true)?;
        if let Some(time) = self.time {
            setsockopt(stream, sockopt::TcpKeepIdle, &time)?;
        }
        if let Some(interval) = self.interval {
            setsockopt(stream, sockopt::TcpKeepInterval, &interval)?;
        }
        if let Some(probes) = self.probes {
            setsockopt(stream, sockopt::TcpKeepCount, &probes)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use envoy_types::pb::envoy::config::core::v3::TcpKeepalive as XdsKeepalive;
    use envoy_types::pb::google::protobuf::UInt32Value;
    use nix::sys::socket::getsockopt;

    use super::*;

    #[tokio::test]
    async fn the_configured_keepalive_is_set_on_the_socket() {
        let options = UpstreamConnectionOptions {
            tcp_keepalive: Some(XdsKeepalive {
                keepalive_probes: Some(UInt32Value { value: 4 }),
                keepalive_time: Some(UInt32Value { value: 600 }),
                keepalive_interval: None,
            }),
            ..Default::default()
        };
        let keepalive = TcpKeepalive::compile(Some(&options)).unwrap().unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let stream = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        keepalive.apply(&stream).unwrap();
        assert!(getsockopt(&stream, sockopt::KeepAlive).unwrap());
        assert_eq!(getsockopt(&stream, sockopt::TcpKeepIdle).unwrap(), 600);
        assert_eq!(getsockopt(&stream, sockopt::TcpKeepCount).unwrap(), 4);
    }
}
