//! DNS clusters (Envoy's STRICT_DNS and LOGICAL_DNS, which Istio uses for
//! ServiceEntries with DNS and DNS_ROUND_ROBIN resolution): the proxy
//! resolves the clusters' names itself with the system resolver, again
//! every `dns_refresh_rate`. STRICT_DNS uses every address of every name;
//! LOGICAL_DNS the first address of its one name. A failed lookup keeps
//! the addresses last resolved (as Envoy does) and is retried sooner.

use std::net::SocketAddr;
use std::sync::Weak;
use std::time::Duration;

use envoy_types::pb::envoy::config::cluster::v3 as xds;
use envoy_types::pb::envoy::config::cluster::v3::cluster::{DiscoveryType, DnsLookupFamily};
use envoy_types::pb::envoy::config::core::v3::{address, socket_address::PortSpecifier};
use envoy_types::pb::envoy::config::endpoint::v3::lb_endpoint::HostIdentifier;

use crate::cluster::{Cluster, Endpoint};
use crate::priority::Placement;
use crate::unsupported::{Unsupported, reject_if};

/// Envoy's default `dns_refresh_rate`.
const DEFAULT_REFRESH: Duration = Duration::from_secs(5);
/// How soon a failed lookup is tried again, at most.
const FAILURE_RETRY: Duration = Duration::from_secs(2);

/// How a DNS cluster finds its endpoints.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DnsDiscovery {
    pub targets: Vec<DnsTarget>,
    pub refresh: Duration,
    pub family: Family,
    /// LOGICAL_DNS: one name, its first address.
    pub logical: bool,
}

/// One name (or literal address) to resolve, with where its endpoints go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DnsTarget {
    pub host: String,
    pub port: u16,
    pub weight: u32,
    pub placement: Placement,
}

/// `dns_lookup_family`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    V4Only,
    V6Only,
    V4Preferred,
    /// Envoy's AUTO: IPv6 when there is any, else IPv4.
    V6Preferred,
    All,
}

impl DnsDiscovery {
    /// The DNS part of a STRICT_DNS or LOGICAL_DNS cluster.
    #[allow(deprecated)] // Istio sets the Cluster-level DNS fields; see translate.
    pub fn compile(
        cluster: &xds::Cluster,
        kind: DiscoveryType,
    ) -> Result<DnsDiscovery, Unsupported> {
        reject_if(
            cluster.dns_resolution_config.is_some(),
            "dns_resolution_config",
        )?;
        reject_if(
            cluster.typed_dns_resolver_config.is_some(),
            "typed_dns_resolver_config",
        )?;
        reject_if(!cluster.dns_resolvers.is_empty(), "dns_resolvers")?;
        // The system resolver gives no TTLs: names are asked again every
        // refresh instead.
        reject_if(cluster.respect_dns_ttl, "respect_dns_ttl")?;
        reject_if(
            cluster.dns_failure_refresh_rate.is_some(),
            "dns_failure_refresh_rate",
        )?;
        reject_if(cluster.dns_jitter.is_some(), "dns_jitter")?;
        let assignment = cluster
            .load_assignment
            .as_ref()
            .ok_or(Unsupported("DNS cluster without load_assignment"))?;
        let targets = targets(assignment)?;
        let logical = kind == DiscoveryType::LogicalDns;
        reject_if(targets.is_empty(), "DNS cluster without endpoints")?;
        reject_if(
            logical && targets.len() > 1,
            "LOGICAL_DNS cluster with more than one endpoint",
        )?;
        let refresh = cluster
            .dns_refresh_rate
            .as_ref()
            .map(|d| Duration::new(d.seconds.max(0) as u64, d.nanos.max(0) as u32))
            .filter(|d| !d.is_zero())
            .unwrap_or(DEFAULT_REFRESH);
        Ok(DnsDiscovery {
            targets,
            refresh,
            family: family(cluster.dns_lookup_family)?,
            logical,
        })
    }

    /// Resolves every target now. `None` when a lookup failed, so that the
    /// caller keeps what it has.
    pub async fn resolve(&self) -> Option<Vec<Endpoint>> {
        let mut endpoints = Vec::new();
        for target in &self.targets {
            let found = tokio::net::lookup_host((target.host.as_str(), target.port)).await;
            let addresses: Vec<SocketAddr> = match found {
                Ok(addresses) => self.family.select(addresses.collect()),
                Err(error) => {
                    tracing::warn!(host = %target.host, %error, "DNS lookup failed; keeping the last addresses");
                    return None;
                }
            };
            let take = if self.logical { 1 } else { addresses.len() };
            endpoints.extend(addresses.into_iter().take(take).map(|address| Endpoint {
                address,
                weight: target.weight,
                workload: None,
                placement: target.placement,
            }));
        }
        Some(endpoints)
    }
}

impl Family {
    /// The addresses of this family, in the resolver's order, without repeats.
    fn select(self, addresses: Vec<SocketAddr>) -> Vec<SocketAddr> {
        let of = |v4: bool| -> Vec<SocketAddr> {
            addresses
                .iter()
                .copied()
                .filter(|a| a.is_ipv4() == v4)
                .collect()
        };
        let mut chosen = match self {
            Family::V4Only => of(true),
            Family::V6Only => of(false),
            Family::V4Preferred => Some(of(true))
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| of(false)),
            Family::V6Preferred => Some(of(false))
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| of(true)),
            Family::All => addresses.clone(),
        };
        let mut seen = std::collections::HashSet::new();
        chosen.retain(|a| seen.insert(*a));
        chosen
    }
}

fn family(value: i32) -> Result<Family, Unsupported> {
    Ok(match DnsLookupFamily::try_from(value) {
        Ok(DnsLookupFamily::V4Only) => Family::V4Only,
        Ok(DnsLookupFamily::V6Only) => Family::V6Only,
        Ok(DnsLookupFamily::V4Preferred) => Family::V4Preferred,
        Ok(DnsLookupFamily::Auto) => Family::V6Preferred,
        Ok(DnsLookupFamily::All) => Family::All,
        Err(_) => return Err(Unsupported("unknown dns_lookup_family")),
    })
}

fn targets(
    assignment: &envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment,
) -> Result<Vec<DnsTarget>, Unsupported> {
    let mut targets = Vec::new();
    for (index, locality) in assignment.endpoints.iter().enumerate() {
        let placement = Placement {
            priority: locality.priority,
            locality: index,
            locality_weight: locality
                .load_balancing_weight
                .as_ref()
                .map_or(0, |w| w.value),
        };
        for endpoint in &locality.lb_endpoints {
            let socket = match &endpoint.host_identifier {
                Some(HostIdentifier::Endpoint(e)) => {
                    match e.address.as_ref().and_then(|a| a.address.as_ref()) {
                        Some(address::Address::SocketAddress(socket)) => socket,
                        _ => return Err(Unsupported("DNS endpoint other than a socket address")),
                    }
                }
                _ => return Err(Unsupported("DNS endpoint without an address")),
            };
            let port = match socket.port_specifier {
                Some(PortSpecifier::PortValue(port)) => {
                    u16::try_from(port).ok().filter(|p| *p != 0)
                }
                _ => None,
            }
            .ok_or(Unsupported("DNS endpoint without a port number"))?;
            reject_if(socket.address.is_empty(), "DNS endpoint without a name")?;
            targets.push(DnsTarget {
                host: socket.address.clone(),
                port,
                weight: endpoint
                    .load_balancing_weight
                    .as_ref()
                    .map_or(1, |w| w.value.max(1)),
                placement,
            });
        }
    }
    Ok(targets)
}

/// Keeps `cluster`'s endpoints resolved until the cluster is dropped.
pub fn spawn_refresh(cluster: Weak<Cluster>, discovery: DnsDiscovery) -> tokio::task::AbortHandle {
    tokio::spawn(async move {
        loop {
            let resolved = discovery.resolve().await;
            let Some(live) = cluster.upgrade() else {
                return;
            };
            let wait = match resolved {
                Some(endpoints) => {
                    live.set_endpoints(&endpoints);
                    discovery.refresh
                }
                None => discovery.refresh.min(FAILURE_RETRY),
            };
            drop(live);
            tokio::time::sleep(wait).await;
        }
    })
    .abort_handle()
}

#[cfg(test)]
mod tests;
