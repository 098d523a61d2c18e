//! `trellis iptables` flags: Istio's istio-iptables flags, short and long
//! names and environment variables alike, so an init container's command
//! line works unchanged.

use crate::config::{CaptureConfig, Cidr, Id, InboundMode, List, Port, Selection};

/// Set up (or remove) the iptables rules that send a workload's TCP
/// traffic through its sidecar, as Istio's istio-iptables does.
#[derive(Clone, Debug, clap::Args)]
pub struct IptablesArgs {
    /// Port to which all outbound TCP traffic is redirected.
    #[arg(short = 'p', long, env = "ENVOY_PORT", default_value = "15001")]
    pub envoy_port: Port,

    /// Port to which all inbound TCP traffic is redirected.
    #[arg(
        short = 'z',
        long,
        env = "INBOUND_CAPTURE_PORT",
        default_value = "15006"
    )]
    pub inbound_capture_port: Port,

    /// Port of the proxy's inbound tunnel (HBONE), never captured.
    #[arg(
        short = 'e',
        long,
        env = "INBOUND_TUNNEL_PORT",
        default_value = "15008"
    )]
    pub inbound_tunnel_port: Port,

    /// Comma-separated UIDs whose traffic is not captured: the proxy's.
    #[arg(short = 'u', long, env = "PROXY_UID", default_value = "1337")]
    pub proxy_uid: List<Id>,

    /// Comma-separated GIDs whose traffic is not captured (default: the
    /// UIDs).
    #[arg(short = 'g', long, env = "PROXY_GID")]
    pub proxy_gid: Option<List<Id>>,

    /// How inbound connections are captured: REDIRECT (nat) or TPROXY
    /// (mangle; keeps the original source address).
    #[arg(
        short = 'm',
        long,
        env = "ISTIO_INBOUND_INTERCEPTION_MODE",
        value_enum,
        default_value = "REDIRECT"
    )]
    pub istio_inbound_interception_mode: InboundMode,

    /// Inbound ports to capture: '*' for all, or a comma-separated list
    /// (empty: no inbound capture).
    #[arg(short = 'b', long, env = "ISTIO_INBOUND_PORTS", default_value = "*")]
    pub istio_inbound_ports: Selection<Port>,

    /// Inbound ports never captured when all are ('*'): the proxy's own.
    #[arg(
        short = 'd',
        long,
        env = "ISTIO_LOCAL_EXCLUDE_PORTS",
        default_value = "15090,15021,15020"
    )]
    pub istio_local_exclude_ports: List<Port>,

    /// Outbound IP ranges to capture: '*' for all, or comma-separated
    /// CIDRs (empty: no outbound capture).
    #[arg(short = 'i', long, env = "ISTIO_SERVICE_CIDR", default_value = "*")]
    pub istio_service_cidr: Selection<Cidr>,

    /// Outbound IP ranges (comma-separated CIDRs) never captured.
    #[arg(
        short = 'x',
        long,
        env = "ISTIO_SERVICE_EXCLUDE_CIDR",
        default_value = ""
    )]
    pub istio_service_exclude_cidr: List<Cidr>,

    /// Outbound ports always captured, whatever their destination.
    #[arg(short = 'q', long, env = "ISTIO_OUTBOUND_PORTS", default_value = "")]
    pub istio_outbound_ports: List<Port>,

    /// Outbound ports never captured.
    #[arg(
        short = 'o',
        long,
        env = "ISTIO_LOCAL_OUTBOUND_PORTS_EXCLUDE",
        default_value = ""
    )]
    pub istio_local_outbound_ports_exclude: List<Port>,

    /// Packet mark of TPROXY-captured connections.
    #[arg(
        short = 't',
        long,
        env = "ISTIO_INBOUND_TPROXY_MARK",
        default_value = "1337"
    )]
    pub istio_inbound_tproxy_mark: u32,

    /// Route table that delivers TPROXY-marked packets locally.
    #[arg(
        short = 'r',
        long,
        env = "ISTIO_INBOUND_TPROXY_ROUTE_TABLE",
        default_value = "133"
    )]
    pub istio_inbound_tproxy_route_table: u32,

    /// Print the rules (iptables-restore input) and change nothing.
    #[arg(short = 'n', long, conflicts_with = "cleanup")]
    pub dry_run: bool,

    /// Remove Istio's chains, the jumps to them and TPROXY's marks and
    /// route; safe to run when nothing is installed.
    #[arg(long)]
    pub cleanup: bool,
}

impl IptablesArgs {
    pub fn config(&self) -> CaptureConfig {
        let proxy_uids = self.proxy_uid.0.clone();
        let proxy_gids = match &self.proxy_gid {
            Some(gids) => gids.0.clone(),
            None => proxy_uids.clone(),
        };
        CaptureConfig {
            outbound_port: self.envoy_port,
            inbound_port: self.inbound_capture_port,
            inbound_tunnel_port: self.inbound_tunnel_port,
            proxy_uids,
            proxy_gids,
            inbound_mode: self.istio_inbound_interception_mode,
            tproxy_mark: self.istio_inbound_tproxy_mark,
            tproxy_route_table: self.istio_inbound_tproxy_route_table,
            inbound_ports: self.istio_inbound_ports.clone(),
            inbound_ports_exclude: self.istio_local_exclude_ports.0.clone(),
            outbound_ports_include: self.istio_outbound_ports.0.clone(),
            outbound_ports_exclude: self.istio_local_outbound_ports_exclude.0.clone(),
            outbound_cidrs: self.istio_service_cidr.clone(),
            outbound_cidrs_exclude: self.istio_service_exclude_cidr.0.clone(),
        }
    }
}
