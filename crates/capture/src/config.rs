//! The capture configuration as typed values, and the parsers for the
//! comma-separated flag values Istio's istio-iptables accepts.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// How inbound connections reach the proxy (Istio's
/// `--istio-inbound-interception-mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum InboundMode {
    /// nat-table REDIRECT: the destination is rewritten to the proxy's
    /// port, so the app sees every inbound connection come from the proxy.
    #[value(name = "REDIRECT", alias = "redirect")]
    Redirect,
    /// mangle-table TPROXY: the original destination stays on the socket
    /// and the proxy can preserve the source address towards the app.
    #[value(name = "TPROXY", alias = "tproxy")]
    Tproxy,
}

/// Which ports (`-b`) or addresses (`-i`) are captured: all of them
/// (`*`) or only those listed. An empty list captures nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Selection<T> {
    All,
    Only(Vec<T>),
}

impl<T: FromStr<Err = String>> FromStr for Selection<T> {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, String> {
        if value.trim() == "*" {
            return Ok(Selection::All);
        }
        Ok(Selection::Only(parse_list(value)?))
    }
}

/// A comma-separated list of values; empty entries are skipped, as Istio
/// does, so `""` and `"80,"` are valid.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct List<T>(pub Vec<T>);

impl<T: FromStr<Err = String>> FromStr for List<T> {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, String> {
        parse_list(value).map(List)
    }
}

fn parse_list<T: FromStr<Err = String>>(value: &str) -> Result<Vec<T>, String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(T::from_str)
        .collect()
}

/// A TCP port number (1-65535).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Port(pub u16);

impl FromStr for Port {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, String> {
        match value.trim().parse::<u16>() {
            Ok(port) if port > 0 => Ok(Port(port)),
            _ => Err(format!("`{value}` is not a port number (1-65535)")),
        }
    }
}

impl fmt::Display for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A numeric user or group id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Id(pub u32);

impl FromStr for Id {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, String> {
        value
            .trim()
            .parse::<u32>()
            .map(Id)
            .map_err(|_| format!("`{value}` is not a numeric id"))
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// An IP range in CIDR form; a bare address means that one host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    /// The address as written: Istio decides "is loopback" on it, not on
    /// the masked network address.
    address: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// The one host `address`.
    pub fn host(address: IpAddr) -> Self {
        let prefix = if address.is_ipv4() { 32 } else { 128 };
        Cidr { address, prefix }
    }

    pub fn is_ipv4(&self) -> bool {
        self.address.is_ipv4()
    }

    pub fn is_loopback(&self) -> bool {
        self.address.is_loopback()
    }

    /// The network address: `address` with the host bits cleared.
    fn network(&self) -> IpAddr {
        match self.address {
            IpAddr::V4(address) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix));
                IpAddr::V4((u32::from(address) & mask.unwrap_or(0)).into())
            }
            IpAddr::V6(address) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix));
                IpAddr::V6((u128::from(address) & mask.unwrap_or(0)).into())
            }
        }
    }
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, String> {
        let invalid = || format!("`{value}` is not an IP range in CIDR form (e.g. 10.0.0.0/8)");
        let (address, prefix) = match value.trim().split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (value.trim(), None),
        };
        let address: IpAddr = address.parse().map_err(|_| invalid())?;
        let Some(prefix) = prefix else {
            return Ok(Cidr::host(address));
        };
        let prefix: u8 = prefix.parse().map_err(|_| invalid())?;
        if prefix > Cidr::host(address).prefix {
            return Err(invalid());
        }
        Ok(Cidr { address, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network(), self.prefix)
    }
}

/// Everything the rules depend on, with Istio's defaults applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaptureConfig {
    pub outbound_port: Port,
    pub inbound_port: Port,
    pub inbound_tunnel_port: Port,
    pub proxy_uids: Vec<Id>,
    pub proxy_gids: Vec<Id>,
    pub inbound_mode: InboundMode,
    pub tproxy_mark: u32,
    pub tproxy_route_table: u32,
    pub inbound_ports: Selection<Port>,
    pub inbound_ports_exclude: Vec<Port>,
    pub outbound_ports_include: Vec<Port>,
    pub outbound_ports_exclude: Vec<Port>,
    pub outbound_cidrs: Selection<Cidr>,
    pub outbound_cidrs_exclude: Vec<Cidr>,
}

impl CaptureConfig {
    /// True when the user asked to capture some loopback range: then an
    /// app's own calls over `lo` are captured too (Istio's rule).
    pub fn captures_loopback(&self) -> bool {
        match &self.outbound_cidrs {
            Selection::All => false,
            Selection::Only(cidrs) => cidrs.iter().any(Cidr::is_loopback),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs_print_their_network_address() {
        let cidr: Cidr = "10.1.2.3/8".parse().unwrap();
        assert_eq!(cidr.to_string(), "10.0.0.0/8");
        let cidr: Cidr = "2001:db8::1/32".parse().unwrap();
        assert_eq!(cidr.to_string(), "2001:db8::/32");
        assert_eq!(
            "10.1.2.3".parse::<Cidr>().unwrap().to_string(),
            "10.1.2.3/32"
        );
        assert_eq!(
            "0.0.0.0/0".parse::<Cidr>().unwrap().to_string(),
            "0.0.0.0/0"
        );
        assert_eq!("::/0".parse::<Cidr>().unwrap().to_string(), "::/0");
    }

    #[test]
    fn bad_cidrs_are_refused() {
        for bad in ["10.0.0.0/33", "::/129", "10.0.0/8", "*", "10.0.0.0/x"] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn selections_take_a_wildcard_or_a_list() {
        assert_eq!("*".parse::<Selection<Port>>(), Ok(Selection::All));
        assert_eq!(
            " 80, 443,".parse::<Selection<Port>>(),
            Ok(Selection::Only(vec![Port(80), Port(443)]))
        );
        assert_eq!("".parse::<Selection<Port>>(), Ok(Selection::Only(vec![])));
        assert!("0".parse::<Port>().is_err());
        assert!("65536".parse::<Port>().is_err());
        assert!("80,*".parse::<List<Port>>().is_err());
    }

    #[test]
    fn loopback_is_captured_only_when_listed() {
        assert!("127.0.0.1/32".parse::<Cidr>().unwrap().is_loopback());
        assert!(!"10.0.0.0/8".parse::<Cidr>().unwrap().is_loopback());
        assert!("::1".parse::<Cidr>().unwrap().is_loopback());
    }
}
