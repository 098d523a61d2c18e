//! Choosing an endpoint of a cluster: Envoy's ROUND_ROBIN, LEAST_REQUEST
//! (power of two choices by default), RANDOM, RING_HASH and MAGLEV, each
//! honouring endpoint weights and skipping endpoints outlier detection
//! ejected, unless so few are healthy that the cluster is in panic (below
//! `healthy_panic_threshold`, Envoy's default 50%), when all are used.
//!
//! Hash tables (ring or Maglev) are built over every endpoint when the
//! endpoints change; a request whose slot holds an ejected endpoint walks
//! on to the next healthy one, which is where a table built without the
//! ejected endpoints would have sent it (exactly so for the ring). A
//! request without a hash (no hash policy, or its key is absent) gets a
//! random endpoint, as in Envoy.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::atomic::{AtomicUsize, Ordering};

use envoy_types::pb::envoy::config::cluster::v3 as xds;
use envoy_types::pb::envoy::config::cluster::v3::cluster::common_lb_config::LocalityConfigSpecifier;
use envoy_types::pb::envoy::config::cluster::v3::cluster::{LbConfig, LbPolicy};

use crate::cluster::LiveEndpoint;
use crate::unsupported::{Unsupported, reject_if};

const DEFAULT_PANIC_THRESHOLD: f64 = 50.0;
const DEFAULT_CHOICES: u32 = 2;
const DEFAULT_MIN_RING: u64 = 1024;
const DEFAULT_MAX_RING: u64 = 8 * 1024 * 1024;
const DEFAULT_MAGLEV_TABLE: u64 = 65537;
/// The longest weighted round-robin schedule; larger weights are scaled down.
const MAX_SCHEDULE: u64 = 65536;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Algorithm {
    RoundRobin,
    LeastRequest { choices: u32 },
    Random,
    RingHash { minimum: u64, maximum: u64 },
    Maglev { table_size: u64 },
}

/// How a cluster balances: the algorithm, its panic threshold (percent),
/// and whether locality weights count (`locality_weighted_lb_config`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Balancing {
    pub algorithm: Algorithm,
    pub panic_threshold: f64,
    pub locality_weighted: bool,
}

impl Balancing {
    /// An ORIGINAL_DST cluster has no endpoints to balance: each
    /// connection says where it goes.
    pub const ORIGINAL_DESTINATION: Balancing = Balancing {
        algorithm: Algorithm::RoundRobin,
        panic_threshold: DEFAULT_PANIC_THRESHOLD,
        locality_weighted: false,
    };

    pub fn compile(cluster: &xds::Cluster) -> Result<Balancing, Unsupported> {
        reject_if(
            cluster.lb_subset_config.is_some(),
            "cluster.lb_subset_config",
        )?;
        reject_if(
            cluster.load_balancing_policy.is_some(),
            "cluster.load_balancing_policy",
        )?;
        let algorithm = algorithm(cluster.lb_policy, cluster.lb_config.as_ref())?;
        let common = cluster.common_lb_config.as_ref();
        let mut locality_weighted = false;
        if let Some(common) = common {
            locality_weighted = match common.locality_config_specifier {
                None => false,
                Some(LocalityConfigSpecifier::LocalityWeightedLbConfig(_)) => true,
                Some(LocalityConfigSpecifier::ZoneAwareLbConfig(_)) => {
                    return Err(Unsupported("cluster.common_lb_config.zone_aware_lb_config"));
                }
            };
            reject_if(
                common.consistent_hashing_lb_config.is_some(),
                "cluster.common_lb_config.consistent_hashing_lb_config",
            )?;
            reject_if(
                common.override_host_status.is_some(),
                "cluster.common_lb_config.override_host_status",
            )?;
        }
        let panic_threshold = common
            .and_then(|c| c.healthy_panic_threshold.as_ref())
            .map_or(DEFAULT_PANIC_THRESHOLD, |p| p.value.clamp(0.0, 100.0));
        Ok(Balancing {
            algorithm,
            panic_threshold,
            locality_weighted,
        })
    }
}

fn algorithm(policy: i32, config: Option<&LbConfig>) -> Result<Algorithm, Unsupported> {
    let policy =
        LbPolicy::try_from(policy).map_err(|_| Unsupported("unknown cluster.lb_policy"))?;
    match (policy, config) {
        (LbPolicy::RoundRobin, None) => Ok(Algorithm::RoundRobin),
        (LbPolicy::RoundRobin, Some(LbConfig::RoundRobinLbConfig(c)))
            if c.slow_start_config.is_none() =>
        {
            Ok(Algorithm::RoundRobin)
        }
        (LbPolicy::Random, None) => Ok(Algorithm::Random),
        (LbPolicy::LeastRequest, None) => Ok(Algorithm::LeastRequest {
            choices: DEFAULT_CHOICES,
        }),
        (LbPolicy::LeastRequest, Some(LbConfig::LeastRequestLbConfig(c))) => {
            reject_if(
                c.slow_start_config.is_some(),
                "least request slow_start_config",
            )?;
            reject_if(
                c.active_request_bias.is_some(),
                "least request active_request_bias",
            )?;
            let choices = c
                .choice_count
                .as_ref()
                .map_or(DEFAULT_CHOICES, |n| n.value.max(2));
            Ok(Algorithm::LeastRequest { choices })
        }
        (LbPolicy::RingHash, None) => Ok(Algorithm::RingHash {
            minimum: DEFAULT_MIN_RING,
            maximum: DEFAULT_MAX_RING,
        }),
        (LbPolicy::RingHash, Some(LbConfig::RingHashLbConfig(c))) => {
            reject_if(
                c.hash_function != 0,
                "ring hash function other than XX_HASH",
            )?;
            let maximum = c
                .maximum_ring_size
                .as_ref()
                .map_or(DEFAULT_MAX_RING, |n| n.value);
            let minimum = c
                .minimum_ring_size
                .as_ref()
                .map_or(DEFAULT_MIN_RING, |n| n.value);
            reject_if(
                minimum > maximum || maximum > DEFAULT_MAX_RING,
                "ring hash sizes",
            )?;
            Ok(Algorithm::RingHash { minimum, maximum })
        }
        (LbPolicy::Maglev, None) => Ok(Algorithm::Maglev {
            table_size: DEFAULT_MAGLEV_TABLE,
        }),
        (LbPolicy::Maglev, Some(LbConfig::MaglevLbConfig(c))) => {
            let table_size = c
                .table_size
                .as_ref()
                .map_or(DEFAULT_MAGLEV_TABLE, |n| n.value);
            reject_if(!(2..=5_000_011).contains(&table_size), "maglev table_size")?;
            Ok(Algorithm::Maglev { table_size })
        }
        _ => Err(Unsupported(
            "cluster.lb_policy other than ROUND_ROBIN, LEAST_REQUEST, RANDOM, RING_HASH or MAGLEV (or its lb_config)",
        )),
    }
}

/// What a set of endpoints precomputes for its algorithm.
#[derive(Debug, Default)]
pub enum Table {
    #[default]
    None,
    /// Weighted round robin: endpoint indices in serving order.
    Schedule(Vec<usize>),
    /// Sorted (hash, endpoint index).
    Ring(Vec<(u64, usize)>),
    /// Endpoint index per slot.
    Maglev(Vec<usize>),
}

pub fn hash_of(value: impl Hash) -> u64 {
    let mut hasher = DefaultHasher::new();
    value.hash(&mut hasher);
    hasher.finish()
}

impl Algorithm {
    /// Whether requests are placed by their hash (ring or Maglev).
    pub fn hashes(&self) -> bool {
        matches!(self, Algorithm::RingHash { .. } | Algorithm::Maglev { .. })
    }

    pub fn table(&self, endpoints: &[LiveEndpoint]) -> Table {
        let weights: Vec<u64> = endpoints
            .iter()
            .map(|e| u64::from(e.weight.max(1)))
            .collect();
        if weights.is_empty() {
            return Table::None;
        }
        match *self {
            Algorithm::RoundRobin if weights.iter().any(|w| *w != weights[0]) => {
                Table::Schedule(schedule(&weights))
            }
            Algorithm::RingHash { minimum, maximum } => {
                Table::Ring(ring(endpoints, &weights, minimum, maximum))
            }
            Algorithm::Maglev { table_size } => {
                Table::Maglev(maglev(endpoints, &weights, table_size))
            }
            _ => Table::None,
        }
    }
}

/// Smooth weighted round robin (as nginx), over weights scaled to fit.
fn schedule(weights: &[u64]) -> Vec<usize> {
    let total: u64 = weights.iter().sum();
    let scale = total.div_ceil(MAX_SCHEDULE).max(1);
    let weights: Vec<i64> = weights.iter().map(|w| (w / scale).max(1) as i64).collect();
    let total: i64 = weights.iter().sum();
    let mut current = vec![0i64; weights.len()];
    (0..total)
        .map(|_| {
            for (c, w) in current.iter_mut().zip(&weights) {
                *c += w;
            }
            let best = (0..current.len())
                .max_by_key(|i| (current[*i], usize::MAX - i))
                .unwrap_or(0);
            current[best] -= total;
            best
        })
        .collect()
}

/// Envoy's ring: each endpoint gets points in proportion to its weight,
/// the lightest at least `minimum / endpoints`, the ring at most `maximum`.
fn ring(
    endpoints: &[LiveEndpoint],
    weights: &[u64],
    minimum: u64,
    maximum: u64,
) -> Vec<(u64, usize)> {
    let total: u64 = weights.iter().sum();
    let lightest = *weights.iter().min().unwrap_or(&1) as f64 / total as f64;
    let scale = ((lightest * minimum as f64).ceil() / lightest).min(maximum as f64);
    let mut ring = Vec::new();
    for (index, endpoint) in endpoints.iter().enumerate() {
        let points = ((weights[index] as f64 / total as f64) * scale)
            .ceil()
            .max(1.0) as u64;
        for point in 0..points {
            ring.push((hash_of((endpoint.address, point)), index));
        }
    }
    ring.sort_unstable();
    ring
}

/// Maglev's permutation fill, weighted as Envoy does: an endpoint of half
/// the heaviest weight takes a slot every second round.
fn maglev(endpoints: &[LiveEndpoint], weights: &[u64], size: u64) -> Vec<usize> {
    let heaviest = *weights.iter().max().unwrap_or(&1);
    let permutations: Vec<(u64, u64)> = endpoints
        .iter()
        .map(|e| {
            let offset = hash_of((e.address, "offset")) % size;
            let skip = hash_of((e.address, "skip")) % (size - 1) + 1;
            (offset, skip)
        })
        .collect();
    let mut next = vec![0u64; endpoints.len()];
    let mut target = vec![0u64; endpoints.len()];
    let mut table = vec![usize::MAX; size as usize];
    let mut filled = 0;
    for round in 0u64.. {
        for index in 0..endpoints.len() {
            if round * weights[index] < target[index] {
                continue;
            }
            target[index] += heaviest;
            let (offset, skip) = permutations[index];
            let mut slot = ((offset + next[index] * skip) % size) as usize;
            while table[slot] != usize::MAX {
                next[index] += 1;
                slot = ((offset + next[index] * skip) % size) as usize;
            }
            table[slot] = index;
            next[index] += 1;
            filled += 1;
            if filled == table.len() {
                return table;
            }
        }
    }
    table
}

/// One pick's view of the endpoints.
pub struct Candidates<'a> {
    pub endpoints: &'a [LiveEndpoint],
    pub table: &'a Table,
    /// Whether each endpoint may be used (outlier detection, panic mode).
    pub usable: &'a dyn Fn(usize) -> bool,
}

impl Algorithm {
    /// An endpoint index, or `None` when no endpoint is usable.
    pub fn pick(
        &self,
        candidates: &Candidates<'_>,
        next: &AtomicUsize,
        hash: Option<u64>,
    ) -> Option<usize> {
        let count = candidates.endpoints.len();
        let usable = candidates.usable;
        let from = |start: usize| (0..count).map(|k| (start + k) % count).find(|i| usable(*i));
        match (self, candidates.table, hash) {
            (Algorithm::RoundRobin, Table::Schedule(order), _) => {
                let start = next.fetch_add(1, Ordering::Relaxed) % order.len();
                (0..order.len())
                    .map(|k| order[(start + k) % order.len()])
                    .find(|i| usable(*i))
            }
            (Algorithm::RoundRobin, _, _) => {
                from(next.fetch_add(1, Ordering::Relaxed) % count.max(1))
            }
            (Algorithm::LeastRequest { choices }, _, _) => least_request(candidates, *choices),
            (_, Table::Ring(ring), Some(hash)) => {
                let start = ring.partition_point(|(point, _)| *point < hash);
                (0..ring.len())
                    .map(|k| ring[(start + k) % ring.len()].1)
                    .find(|i| usable(*i))
            }
            (_, Table::Maglev(table), Some(hash)) => {
                let start = (hash % table.len() as u64) as usize;
                (0..table.len())
                    .map(|k| table[(start + k) % table.len()])
                    .find(|i| usable(*i))
            }
            _ => weighted_random(candidates),
        }
    }
}

fn weighted_random(candidates: &Candidates<'_>) -> Option<usize> {
    let usable: Vec<usize> = (0..candidates.endpoints.len())
        .filter(|i| (candidates.usable)(*i))
        .collect();
    let weight = |i: usize| u64::from(candidates.endpoints[i].weight.max(1));
    let total: u64 = usable.iter().map(|i| weight(*i)).sum();
    if total == 0 {
        return None;
    }
    let mut roll = rand::random_range(0..total);
    for index in usable {
        if roll < weight(index) {
            return Some(index);
        }
        roll -= weight(index);
    }
    None
}

/// The least loaded (active requests per unit of weight) of `choices`
/// endpoints drawn at random.
fn least_request(candidates: &Candidates<'_>, choices: u32) -> Option<usize> {
    let mut best = weighted_random(candidates)?;
    for _ in 1..choices {
        let Some(other) = weighted_random(candidates) else {
            break;
        };
        let load = |i: usize| {
            let endpoint = &candidates.endpoints[i];
            (
                endpoint.active.load(Ordering::Relaxed) as u128,
                u128::from(endpoint.weight.max(1)),
            )
        };
        let ((best_active, best_weight), (other_active, other_weight)) = (load(best), load(other));
        if other_active * best_weight < best_active * other_weight {
            best = other;
        }
    }
    Some(best)
}

#[cfg(test)]
mod tests;
