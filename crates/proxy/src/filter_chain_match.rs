//! Choosing a listener's filter chain as Envoy does: criteria are applied in
//! a fixed order (destination port, destination IP, server name, transport
//! protocol, application protocols), and at each step only the most
//! specific chains that match go on to the next; there is no backtracking.

use std::net::{IpAddr, SocketAddr};

use envoy_types::pb::envoy::config::listener::v3::FilterChainMatch;

use crate::unsupported::{Unsupported, reject_if};

/// A compiled `filter_chain_match`; empty criteria match everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChainMatch {
    pub destination_port: Option<u16>,
    pub prefix_ranges: Vec<(IpAddr, u8)>,
    /// Exact names or `*.suffix` wildcards, lower case.
    pub server_names: Vec<String>,
    pub transport: Transport,
    pub application_protocols: Vec<String>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Transport {
    #[default]
    Any,
    Tls,
    Plaintext,
}

/// What is known of a connection when its chain is chosen.
#[derive(Clone, Copy, Debug)]
pub struct ConnectionFacts<'a> {
    /// Where the client sent it (the original destination when redirected).
    pub destination: SocketAddr,
    pub tls: bool,
    pub server_name: Option<&'a str>,
    pub alpn: &'a [String],
}

impl ChainMatch {
    pub fn compile(m: Option<&FilterChainMatch>) -> Result<ChainMatch, Unsupported> {
        let Some(m) = m else {
            return Ok(ChainMatch::default());
        };
        reject_if(
            !m.source_prefix_ranges.is_empty() || !m.direct_source_prefix_ranges.is_empty(),
            "filter_chain_match.source_prefix_ranges",
        )?;
        reject_if(
            !m.source_ports.is_empty(),
            "filter_chain_match.source_ports",
        )?;
        reject_if(m.source_type != 0, "filter_chain_match.source_type")?;
        reject_if(
            !m.address_suffix.is_empty() || m.suffix_len.is_some(),
            "filter_chain_match.address_suffix",
        )?;
        let destination_port = m
            .destination_port
            .map(|p| u16::try_from(p.value))
            .transpose()
            .map_err(|_| Unsupported("filter_chain_match.destination_port out of range"))?;
        let prefix_ranges = m
            .prefix_ranges
            .iter()
            .map(|range| {
                let ip: IpAddr = range
                    .address_prefix
                    .parse()
                    .map_err(|_| Unsupported("filter_chain_match.prefix_ranges address"))?;
                let max = if ip.is_ipv4() { 32 } else { 128 };
                let len = range.prefix_len.map_or(max, |l| l.value);
                reject_if(len > max, "filter_chain_match.prefix_ranges length")?;
                Ok((ip, len as u8))
            })
            .collect::<Result<_, Unsupported>>()?;
        let transport = match m.transport_protocol.as_str() {
            "" => Transport::Any,
            "tls" => Transport::Tls,
            "raw_buffer" => Transport::Plaintext,
            _ => return Err(Unsupported("filter_chain_match.transport_protocol")),
        };
        Ok(ChainMatch {
            destination_port,
            prefix_ranges,
            server_names: m
                .server_names
                .iter()
                .map(|n| n.to_ascii_lowercase())
                .collect(),
            transport,
            application_protocols: m.application_protocols.clone(),
        })
    }

    /// Whether choosing among chains like this needs the ClientHello.
    pub fn needs_client_hello(&self) -> bool {
        !self.server_names.is_empty() || !self.application_protocols.is_empty()
    }

    pub fn needs_transport(&self) -> bool {
        self.transport != Transport::Any || self.needs_client_hello()
    }
}

/// How specifically a chain matches at one step (`None`: it does not).
type Specificity<'a> = dyn Fn(&ChainMatch) -> Option<u32> + 'a;

/// The index of the chain `facts` selects among `matches`, if any.
pub fn select<'m>(
    matches: impl IntoIterator<Item = &'m ChainMatch>,
    facts: &ConnectionFacts<'_>,
) -> Option<usize> {
    let mut candidates: Vec<(usize, &ChainMatch)> = matches.into_iter().enumerate().collect();
    let steps: [&Specificity<'_>; 5] = [
        &|m| port_specificity(m, facts),
        &|m| prefix_specificity(&m.prefix_ranges, facts.destination.ip()),
        &|m| server_name_specificity(&m.server_names, facts.server_name),
        &|m| transport_specificity(m.transport, facts.tls),
        &|m| alpn_specificity(&m.application_protocols, facts.alpn),
    ];
    for step in steps {
        let scored: Vec<_> = candidates
            .iter()
            .filter_map(|&(i, m)| Some((i, m, step(m)?)))
            .collect();
        let best = scored.iter().map(|&(_, _, score)| score).max()?;
        candidates = scored
            .into_iter()
            .filter(|&(_, _, score)| score == best)
            .map(|(i, m, _)| (i, m))
            .collect();
    }
    candidates.first().map(|&(i, _)| i)
}

fn port_specificity(m: &ChainMatch, facts: &ConnectionFacts<'_>) -> Option<u32> {
    match m.destination_port {
        None => Some(0),
        Some(port) => (port == facts.destination.port()).then_some(1),
    }
}

/// Longest matching prefix wins; no ranges matches any address, least specifically.
fn prefix_specificity(ranges: &[(IpAddr, u8)], ip: IpAddr) -> Option<u32> {
    if ranges.is_empty() {
        return Some(0);
    }
    ranges
        .iter()
        .filter(|&&(prefix, len)| in_prefix(ip, prefix, len))
        .map(|&(_, len)| u32::from(len) + 1)
        .max()
}

fn in_prefix(ip: IpAddr, prefix: IpAddr, len: u8) -> bool {
    match (ip, prefix) {
        (IpAddr::V4(ip), IpAddr::V4(prefix)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
            u32::from(ip) & mask == u32::from(prefix) & mask
        }
        (IpAddr::V6(ip), IpAddr::V6(prefix)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
            u128::from(ip) & mask == u128::from(prefix) & mask
        }
        _ => false,
    }
}

/// How specifically `patterns` (exact names, or `*.suffix` wildcards)
/// match a TLS server name: an exact name beats the longest wildcard, which
/// beats no names at all (`Some(0)`). `None`: the patterns exclude it.
/// Names are compared case-insensitively; a wildcard needs at least one
/// more label (`*.example.com` matches `a.example.com`, not `example.com`).
pub fn server_name_specificity(patterns: &[String], server_name: Option<&str>) -> Option<u32> {
    if patterns.is_empty() {
        return Some(0);
    }
    let name = server_name?.to_ascii_lowercase();
    patterns
        .iter()
        .filter_map(|pattern| {
            let pattern = pattern.to_ascii_lowercase();
            if pattern == name {
                return Some(u32::MAX);
            }
            let suffix = pattern.strip_prefix('*')?;
            let matches =
                suffix.starts_with('.') && name.len() > suffix.len() && name.ends_with(suffix);
            matches.then(|| suffix.len() as u32 + 1)
        })
        .max()
}

fn transport_specificity(wanted: Transport, tls: bool) -> Option<u32> {
    match wanted {
        Transport::Any => Some(0),
        Transport::Tls => tls.then_some(1),
        Transport::Plaintext => (!tls).then_some(1),
    }
}

fn alpn_specificity(wanted: &[String], offered: &[String]) -> Option<u32> {
    if wanted.is_empty() {
        return Some(0);
    }
    offered.iter().any(|p| wanted.contains(p)).then_some(1)
}

#[cfg(test)]
mod tests;
