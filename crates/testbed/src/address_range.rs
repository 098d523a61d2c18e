//! A loopback address range per test, so that tests running in parallel
//! never bind the same address.

use std::collections::HashSet;
use std::sync::{LazyLock, Mutex};

/// Ranges handed out in this process (tests of one binary run in parallel
/// threads of one process; cargo runs test binaries one at a time).
static TAKEN: LazyLock<Mutex<HashSet<u32>>> = LazyLock::new(|| Mutex::new(HashSet::new()));

/// 100 * 256 /24 blocks in 127.100.0.0-127.199.255.0, clear of the
/// addresses other software uses and of `up`'s default 127.42.0.0/16.
const BLOCKS: u32 = 100 * 256;

/// A /24 between 127.100.0.0 and 127.199.255.0 derived from `test_name`, the
/// same on every run (so a failure's addresses are reproducible), and never
/// one already handed out in this process.
pub fn address_range_for(test_name: &str) -> String {
    let mut taken = TAKEN
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let mut block = fnv1a(test_name) % BLOCKS;
    while !taken.insert(block) {
        block = (block + 1) % BLOCKS;
    }
    format!("127.{}.{}.0/24", 100 + block / 256, block % 256)
}

/// FNV-1a: stable across runs and Rust versions, unlike `DefaultHasher`.
fn fnv1a(text: &str) -> u32 {
    text.bytes().fold(0x811c_9dc5, |hash, byte| {
        (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distinct_names_and_repeated_names_get_distinct_ranges() {
        let first = address_range_for("reviews_split_90_10");
        let second = address_range_for("reviews_split_90_10");
        let third = address_range_for("control_plane_restart");
        assert_ne!(first, second);
        assert_ne!(first, third);
        for range in [&first, &second, &third] {
            let parsed: trellis_local::up::AddressRange = range.parse().unwrap();
            assert_eq!(parsed.to_string(), *range);
            let second_octet: u32 = range.split('.').nth(1).unwrap().parse().unwrap();
            assert!((100..200).contains(&second_octet), "{range}");
        }
    }
}
