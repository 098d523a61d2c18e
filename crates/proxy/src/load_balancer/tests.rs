use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use super::*;
use crate::metric_labels::Workload;

fn endpoints(weights: &[u32]) -> Vec<LiveEndpoint> {
    weights
        .iter()
        .enumerate()
        .map(|(index, weight)| {
            let address = SocketAddr::from(([127, 0, 0, 1], 9000 + index as u16));
            LiveEndpoint {
                address,
                authority: address.to_string().parse().unwrap(),
                workload: Workload::unknown(),
                weight: *weight,
                active: Arc::default(),
            }
        })
        .collect()
}

/// How many of `picks` each endpoint got.
fn spread(
    algorithm: Algorithm,
    endpoints: &[LiveEndpoint],
    usable: &dyn Fn(usize) -> bool,
    picks: usize,
) -> Vec<usize> {
    let table = algorithm.table(endpoints);
    let candidates = Candidates {
        endpoints,
        table: &table,
        usable,
    };
    let next = AtomicUsize::new(0);
    let mut counts = vec![0; endpoints.len()];
    for request in 0..picks {
        let hash = Some(hash_of(request));
        counts[algorithm.pick(&candidates, &next, hash).unwrap()] += 1;
    }
    counts
}

#[test]
fn weighted_round_robin_serves_in_proportion_and_interleaved() {
    let endpoints = endpoints(&[3, 1]);
    let table = Algorithm::RoundRobin.table(&endpoints);
    let Table::Schedule(order) = &table else {
        panic!("a schedule")
    };
    assert_eq!(order, &[0, 0, 1, 0]);
    assert_eq!(
        spread(Algorithm::RoundRobin, &endpoints, &|_| true, 400),
        [300, 100]
    );
}

#[test]
fn every_algorithm_skips_endpoints_that_are_not_usable() {
    let endpoints = endpoints(&[1, 1, 1]);
    let algorithms = [
        Algorithm::RoundRobin,
        Algorithm::Random,
        Algorithm::LeastRequest { choices: 2 },
        Algorithm::RingHash {
            minimum: 1024,
            maximum: DEFAULT_MAX_RING,
        },
        Algorithm::Maglev { table_size: 65537 },
    ];
    for algorithm in algorithms {
        let counts = spread(algorithm, &endpoints, &|i| i != 1, 300);
        assert_eq!(counts[1], 0, "{algorithm:?}");
        assert_eq!(counts[0] + counts[2], 300, "{algorithm:?}");
        let table = algorithm.table(&endpoints);
        let none = Candidates {
            endpoints: &endpoints,
            table: &table,
            usable: &|_| false,
        };
        assert_eq!(algorithm.pick(&none, &AtomicUsize::new(0), Some(1)), None);
    }
}

#[test]
fn consistent_hashes_keep_a_key_on_one_endpoint_and_spread_keys_by_weight() {
    let endpoints = endpoints(&[1, 3]);
    for algorithm in [
        Algorithm::RingHash {
            minimum: 1024,
            maximum: DEFAULT_MAX_RING,
        },
        Algorithm::Maglev { table_size: 65537 },
    ] {
        let table = algorithm.table(&endpoints);
        let candidates = Candidates {
            endpoints: &endpoints,
            table: &table,
            usable: &|_| true,
        };
        let next = AtomicUsize::new(0);
        let key = Some(hash_of("alice"));
        let first = algorithm.pick(&candidates, &next, key);
        assert!((0..20).all(|_| algorithm.pick(&candidates, &next, key) == first));
        // 4000 keys, weight 3 of 4: 3000 expected; far outside binomial noise.
        let counts = spread(algorithm, &endpoints, &|_| true, 4000);
        assert!(
            (2600..3400).contains(&counts[1]),
            "{algorithm:?}: {counts:?}"
        );
    }
}

#[test]
fn least_request_prefers_the_less_loaded_endpoint() {
    let endpoints = endpoints(&[1, 1]);
    endpoints[0]
        .active
        .store(10, std::sync::atomic::Ordering::Relaxed);
    let counts = spread(
        Algorithm::LeastRequest { choices: 2 },
        &endpoints,
        &|_| true,
        1000,
    );
    // Only a draw of endpoint 0 twice (probability 1/4) picks it.
    assert!(counts[0] < 350, "{counts:?}");
}

#[test]
fn lb_policies_compile_as_envoy_names_them() {
    let cluster = |policy: LbPolicy| xds::Cluster {
        lb_policy: policy as i32,
        ..Default::default()
    };
    let compiled = |policy| Balancing::compile(&cluster(policy)).map(|b| b.algorithm);
    assert_eq!(compiled(LbPolicy::Random), Ok(Algorithm::Random));
    assert_eq!(
        compiled(LbPolicy::LeastRequest),
        Ok(Algorithm::LeastRequest { choices: 2 })
    );
    assert!(matches!(
        compiled(LbPolicy::RingHash),
        Ok(Algorithm::RingHash { minimum: 1024, .. })
    ));
    assert!(compiled(LbPolicy::ClusterProvided).is_err());
}
