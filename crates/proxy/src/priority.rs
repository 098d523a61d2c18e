//! Envoy's priority levels and locality weights, in front of the load
//! balancer ([`crate::load_balancer`]).
//!
//! Endpoints are grouped by EDS priority, and within a priority by
//! locality when the cluster weighs localities
//! (`locality_weighted_lb_config`). A request first picks a priority:
//! each level's health is its share of usable (not ejected) endpoints
//! times the overprovisioning factor 1.4, capped at 100%; the lowest
//! levels take load up to their health and the rest spills to the next
//! (a level 72% healthy keeps all the traffic; 50% healthy keeps 70%).
//! When the levels together are less than 100% healthy, their shares are
//! scaled up to sum to 100%; when none is healthy, priority 0 takes it
//! all. A level is in panic (every endpoint usable) when its own healthy
//! share is below the panic threshold. Then a locality, at random by its
//! weight times its availability (its health, capped at 100%), and then
//! an endpoint by the cluster's algorithm. Hash-based algorithms pick the
//! priority from the hash and ignore locality weights, as Envoy does.

use std::net::SocketAddr;
use std::sync::atomic::AtomicUsize;

use crate::cluster::LiveEndpoint;
use crate::load_balancer::{Algorithm, Candidates, Table};

/// Envoy's default overprovisioning factor (140%).
const OVERPROVISIONING: f64 = 1.4;

/// Where an endpoint sits: its EDS priority and locality.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Placement {
    pub priority: u32,
    /// Index of the endpoint's `LocalityLbEndpoints` in its assignment.
    pub locality: usize,
    /// That locality's `load_balancing_weight` (0 when unset).
    pub locality_weight: u32,
}

/// Endpoints of one locality (or of a whole priority when localities are
/// not weighed), with what the algorithm precomputed for them.
#[derive(Debug)]
struct Group {
    endpoints: Vec<LiveEndpoint>,
    table: Table,
    weight: u32,
    next: AtomicUsize,
}

#[derive(Debug)]
struct Level {
    groups: Vec<Group>,
}

/// A cluster's endpoints by priority, lowest (most preferred) first.
#[derive(Debug, Default)]
pub struct Levels {
    levels: Vec<Level>,
}

impl Levels {
    /// Groups `endpoints` (placed by `placements`, in the same order).
    pub fn build(
        endpoints: &[LiveEndpoint],
        placements: &[Placement],
        algorithm: &Algorithm,
        locality_weighted: bool,
    ) -> Levels {
        let by_locality = locality_weighted && !algorithm.hashes();
        let mut keys: Vec<(u32, usize)> = placements
            .iter()
            .map(|p| (p.priority, if by_locality { p.locality } else { 0 }))
            .collect();
        keys.sort_unstable();
        keys.dedup();
        let mut levels: Vec<Level> = Vec::new();
        let mut last_priority = None;
        for (priority, locality) in keys {
            let members: Vec<(LiveEndpoint, &Placement)> = endpoints
                .iter()
                .zip(placements)
                .filter(|(_, p)| p.priority == priority && (!by_locality || p.locality == locality))
                .map(|(e, p)| (e.clone(), p))
                .collect();
            let weight = if by_locality {
                members[0].1.locality_weight
            } else {
                1
            };
            let endpoints: Vec<LiveEndpoint> = members.into_iter().map(|(e, _)| e).collect();
            let group = Group {
                table: algorithm.table(&endpoints),
                endpoints,
                weight,
                next: AtomicUsize::new(0),
            };
            if last_priority != Some(priority) {
                levels.push(Level { groups: Vec::new() });
                last_priority = Some(priority);
            }
            levels.last_mut().expect("just pushed").groups.push(group);
        }
        Levels { levels }
    }

    /// An endpoint for a request (`hash`: its consistent-hash key), or
    /// `None` when nothing usable is left.
    pub fn pick(
        &self,
        ejected: &[SocketAddr],
        panic_threshold: f64,
        algorithm: &Algorithm,
        hash: Option<u64>,
    ) -> Option<LiveEndpoint> {
        let is_ejected = |e: &LiveEndpoint| ejected.contains(&e.address);
        let healthy: Vec<(usize, usize)> = self
            .levels
            .iter()
            .map(|level| {
                let endpoints = level.groups.iter().flat_map(|g| &g.endpoints);
                let total = endpoints.clone().count();
                (endpoints.filter(|e| !is_ejected(e)).count(), total)
            })
            .collect();
        // Percent in [0, 100): the hash decides for hashing algorithms, so
        // one key stays on one priority.
        let roll = match hash {
            Some(hash) => (hash % 10_000) as f64 / 100.0,
            None => rand::random_range(0.0..100.0),
        };
        let index = choose_level(&priority_loads(&healthy), roll);
        let level = self.levels.get(index)?;
        let (up, total) = healthy[index];
        let panic = (up as f64) * 100.0 < panic_threshold * total as f64;
        let group = choose_group(level, panic, &is_ejected)?;
        let usable = |i: usize| panic || !is_ejected(&group.endpoints[i]);
        let candidates = Candidates {
            endpoints: &group.endpoints,
            table: &group.table,
            usable: &usable,
        };
        let index = algorithm.pick(&candidates, &group.next, hash)?;
        Some(group.endpoints[index].clone())
    }
}

/// The health of a level, in percent: its usable share times the
/// overprovisioning factor, capped at 100.
fn health(up: usize, total: usize) -> f64 {
    if total == 0 {
        return 0.0;
    }
    (OVERPROVISIONING * 100.0 * up as f64 / total as f64).min(100.0)
}

/// The percentage of requests each level takes, given (usable, total)
/// endpoints per level.
pub fn priority_loads(healthy: &[(usize, usize)]) -> Vec<f64> {
    let health: Vec<f64> = healthy.iter().map(|(up, n)| health(*up, *n)).collect();
    let sum: f64 = health.iter().sum();
    let mut loads = vec![0.0; health.len()];
    if sum <= 0.0 {
        if let Some(first) = loads.first_mut() {
            *first = 100.0;
        }
        return loads;
    }
    // Scaled so that partly healthy levels still carry all the traffic.
    let scale = 100.0 / sum.min(100.0);
    let mut remaining = 100.0;
    for (load, level) in loads.iter_mut().zip(&health) {
        *load = (level * scale).min(remaining);
        remaining -= *load;
    }
    loads
}

/// The level whose cumulative load first exceeds `roll` (percent).
fn choose_level(loads: &[f64], roll: f64) -> usize {
    let mut cumulative = 0.0;
    for (index, load) in loads.iter().enumerate() {
        cumulative += load;
        if roll < cumulative {
            return index;
        }
    }
    // Rounding left `roll` past the end: the last level with any load.
    loads.iter().rposition(|l| *l > 0.0).unwrap_or(0)
}

/// A locality of `level` at random by weight times availability (plain
/// weight in panic); the only group when localities are not weighed.
fn choose_group<'a>(
    level: &'a Level,
    panic: bool,
    is_ejected: &dyn Fn(&LiveEndpoint) -> bool,
) -> Option<&'a Group> {
    if let [only] = level.groups.as_slice() {
        return Some(only);
    }
    let effective: Vec<f64> = level
        .groups
        .iter()
        .map(|group| {
            let up = group.endpoints.iter().filter(|e| !is_ejected(e)).count();
            let availability = if panic {
                100.0
            } else {
                health(up, group.endpoints.len())
            };
            f64::from(group.weight) * availability
        })
        .collect();
    let total: f64 = effective.iter().sum();
    if total <= 0.0 {
        return None;
    }
    let mut roll = rand::random_range(0.0..total);
    for (group, weight) in level.groups.iter().zip(&effective) {
        if roll < *weight {
            return Some(group);
        }
        roll -= weight;
    }
    level
        .groups
        .iter()
        .zip(&effective)
        .rfind(|(_, w)| **w > 0.0)
        .map(|(g, _)| g)
}

#[cfg(test)]
mod tests;
