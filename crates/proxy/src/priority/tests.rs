use std::collections::BTreeMap;
use std::sync::Arc;

use super::*;
use crate::metric_labels::Workload;

fn endpoint(index: usize) -> LiveEndpoint {
    let address = SocketAddr::from(([127, 0, 0, 1], 9000 + index as u16));
    LiveEndpoint {
        address,
        authority: address.to_string().parse().unwrap(),
        workload: Workload::unknown(),
        weight: 1,
        active: Arc::default(),
    }
}

/// Endpoints placed at (priority, locality, locality weight).
fn levels(placed: &[(u32, usize, u32)], algorithm: Algorithm, weighted: bool) -> Levels {
    let endpoints: Vec<LiveEndpoint> = (0..placed.len()).map(endpoint).collect();
    let placements: Vec<Placement> = placed
        .iter()
        .map(|(priority, locality, weight)| Placement {
            priority: *priority,
            locality: *locality,
            locality_weight: *weight,
        })
        .collect();
    Levels::build(&endpoints, &placements, &algorithm, weighted)
}

/// How many of `picks` each endpoint port got.
fn spread(levels: &Levels, ejected: &[usize], panic: f64, picks: usize) -> BTreeMap<u16, usize> {
    let ejected: Vec<SocketAddr> = ejected.iter().map(|i| endpoint(*i).address).collect();
    let mut counts = BTreeMap::new();
    for _ in 0..picks {
        if let Some(picked) = levels.pick(&ejected, panic, &ALGORITHM, None) {
            *counts.entry(picked.address.port() - 9000).or_default() += 1;
        }
    }
    counts
}

/// Round robin, so that spreads within one group are exact.
const ALGORITHM: Algorithm = Algorithm::RoundRobin;

#[test]
fn envoys_priority_load_table() {
    // Envoy's documented examples: (P0, P1) healthy shares -> load to P0.
    let p0 = |up0, up1| priority_loads(&[(up0, 100), (up1, 100)])[0].round();
    assert_eq!(p0(100, 100), 100.0);
    assert_eq!(p0(72, 72), 100.0);
    assert_eq!(p0(71, 71), 99.0);
    assert_eq!(p0(50, 60), 70.0);
    assert_eq!(p0(25, 100), 35.0);
    assert_eq!(p0(25, 25), 50.0, "both partly healthy: scaled to 100%");
    assert_eq!(priority_loads(&[(0, 3), (0, 2)]), [100.0, 0.0]);
    let loads = priority_loads(&[(0, 1), (1, 1), (1, 1)]);
    assert_eq!(loads, [0.0, 100.0, 0.0], "the next level takes it all");
}

#[test]
fn the_lowest_healthy_priority_takes_the_traffic() {
    let levels = levels(&[(0, 0, 1), (1, 1, 1), (1, 1, 1)], ALGORITHM, false);
    assert_eq!(spread(&levels, &[], 0.0, 100), BTreeMap::from([(0, 100)]));
    // Its one endpoint ejected, priority 0 is 0% healthy: all fail over.
    assert_eq!(
        spread(&levels, &[0], 0.0, 100),
        BTreeMap::from([(1, 50), (2, 50)])
    );
    // Everything ejected and no panic: nothing is usable.
    assert!(spread(&levels, &[0, 1, 2], 0.0, 10).is_empty());
    // With Envoy's 50% panic threshold, priority 0 serves in panic.
    assert_eq!(
        spread(&levels, &[0, 1, 2], 50.0, 10),
        BTreeMap::from([(0, 10)])
    );
}

#[test]
fn a_partly_healthy_priority_spills_over_by_the_overprovisioning_factor() {
    // Priority 0: 2 of 4 healthy = 70% of the load; 30% to priority 1.
    let placed = [(0, 0, 1), (0, 0, 1), (0, 0, 1), (0, 0, 1), (1, 1, 1)];
    let levels = levels(&placed, ALGORITHM, false);
    let counts = spread(&levels, &[0, 1], 0.0, 1000);
    let spilled = counts.get(&4).copied().unwrap_or(0);
    // n=1000, p=0.3: 300 +- 75 is beyond five standard deviations.
    assert!((225..=375).contains(&spilled), "{counts:?}");
    assert_eq!(counts.get(&0), None);
}

#[test]
fn locality_weights_share_a_priority_by_weight_and_availability() {
    // Localities weighted 3:1 in priority 0.
    let placed = [(0, 0, 3), (0, 1, 1)];
    let weighted = levels(&placed, ALGORITHM, true);
    let counts = spread(&weighted, &[], 0.0, 1000);
    // n=1000, p=0.75: 750 +- 70 is beyond five standard deviations.
    assert!((680..=820).contains(&counts[&0]), "{counts:?}");
    // Ignored unless the cluster weighs localities: round robin alternates.
    let plain = levels(&placed, ALGORITHM, false);
    assert_eq!(
        spread(&plain, &[], 0.0, 100),
        BTreeMap::from([(0, 50), (1, 50)])
    );
    // A locality whose only endpoint is ejected is unavailable.
    assert_eq!(
        spread(&weighted, &[0], 0.0, 100),
        BTreeMap::from([(1, 100)])
    );
    // A locality of weight 0 gets nothing.
    let zero = levels(&[(0, 0, 0), (0, 1, 1)], ALGORITHM, true);
    assert_eq!(spread(&zero, &[], 0.0, 50), BTreeMap::from([(1, 50)]));
}

#[test]
fn hashing_keeps_a_key_on_one_endpoint_across_priorities() {
    let ring = Algorithm::RingHash {
        minimum: 1024,
        maximum: 1 << 20,
    };
    let levels = levels(&[(0, 0, 1), (0, 0, 1), (1, 1, 1)], ring, true);
    for key in 0..50u64 {
        let first = levels.pick(&[], 0.0, &ring, Some(key)).unwrap();
        let again = levels.pick(&[], 0.0, &ring, Some(key)).unwrap();
        assert_eq!(first.address, again.address);
        assert_ne!(first.address.port(), 9002, "priority 1 is not needed");
    }
}
