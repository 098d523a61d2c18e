//! What Istio's metrics cost a proxy per distinct peer workload (label
//! cardinality): the heap an inbound sidecar's metrics hold after
//! requests from 1, 10, 100 and 1,000 source workloads, each answered 200
//! and 503, against the goal of under 2 MB at 100 peers.
//!
//!   cargo bench -p trellis-proxy --features bench-support --bench telemetry_cardinality
//!
//! A counting allocator measures the heap, which is what grows with label
//! cardinality; the process's RSS adds allocator slack on top.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use trellis_proxy::bench_support::InboundMetrics;

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: `ptr` came from `alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const GOAL_AT_100_PEERS: isize = 2 << 20;

fn main() {
    println!("peers  heap held by the metrics  per peer  scrape size");
    let mut at_100 = 0;
    for peers in [1, 10, 100, 1000] {
        let before = LIVE.load(Ordering::Relaxed);
        let metrics = InboundMetrics::default();
        metrics.count(peers, &[200, 503], 10);
        let held = LIVE.load(Ordering::Relaxed) - before;
        let scrape = metrics.exposition_bytes();
        println!(
            "{peers:>5}  {:>10.1} KiB              {:>6.1} KiB  {:>8.1} KiB",
            held as f64 / 1024.0,
            held as f64 / 1024.0 / peers as f64,
            scrape as f64 / 1024.0
        );
        if peers == 100 {
            at_100 = held;
        }
        drop(metrics);
    }
    let verdict = if at_100 < GOAL_AT_100_PEERS {
        "meets"
    } else {
        "misses"
    };
    println!(
        "at 100 peers: {:.2} MiB, which {verdict} the goal of < 2 MiB",
        at_100 as f64 / (1 << 20) as f64
    );
}
