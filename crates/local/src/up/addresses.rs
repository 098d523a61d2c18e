//! Addresses for the control plane and the workloads. On Linux every
//! address in 127.0.0.0/8 binds without root, so by default each workload
//! gets its own loopback address, as a pod has its own IP, and keeps its
//! real ports. With `--netns` the range is a private network on a bridge
//! (see `netns.rs`), and also any IPv4 range.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// The range `trellis up` uses unless told otherwise.
pub const DEFAULT_ADDRESS_RANGE: &str = "127.42.0.0/16";

/// Loopback addresses that other software on the machine commonly listens
/// on (the usual localhost, systemd-resolved's stub resolver, Debian's
/// hostname address): never handed to a workload.
const RESERVED: [Ipv4Addr; 3] = [
    Ipv4Addr::new(127, 0, 0, 1),
    Ipv4Addr::new(127, 0, 0, 53),
    Ipv4Addr::new(127, 0, 1, 1),
];

const LOOPBACK_NETWORK: u32 = 0x7f00_0000;
const LOOPBACK_PREFIX: u8 = 8;
/// A /31 or /32 has no address left after the network and broadcast ones.
const LONGEST_PREFIX: u8 = 30;

/// Why an address range was rejected or ran out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressRangeError {
    #[error("invalid address range {0:?}: expected CIDR notation such as {DEFAULT_ADDRESS_RANGE}")]
    Syntax(String),
    #[error(
        "address range {0} is not inside 127.0.0.0/8: without --netns only loopback addresses bind"
    )]
    NotLoopback(String),
    #[error("address range {range} has host bits set: did you mean {suggestion}?")]
    HostBits { range: String, suggestion: String },
    #[error("address range {0} is too small: use a prefix of /{LONGEST_PREFIX} or shorter")]
    TooSmall(String),
    #[error("address range {0} has no free address left: use a larger range")]
    Exhausted(AddressRange),
}

/// A CIDR block inside 127.0.0.0/8, e.g. `127.42.0.0/16`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddressRange {
    network: u32,
    prefix: u8,
}

impl AddressRange {
    fn mask(&self) -> u32 {
        u32::MAX
            .checked_shl(32 - u32::from(self.prefix))
            .unwrap_or(0)
    }

    /// The range of `prefix` bits around `address` (host bits cleared), as
    /// a route's destination names it.
    pub fn around(address: Ipv4Addr, prefix: u8) -> AddressRange {
        let prefix = prefix.min(32);
        let mut range = AddressRange { network: 0, prefix };
        range.network = u32::from(address) & range.mask();
        range
    }

    fn broadcast(&self) -> u32 {
        self.network | !self.mask()
    }

    /// Whether `address` is inside this range.
    pub fn contains(&self, address: Ipv4Addr) -> bool {
        u32::from(address) & self.mask() == self.network
    }

    /// Whether the two ranges share any address.
    pub fn overlaps(&self, other: &AddressRange) -> bool {
        let shorter = if self.prefix <= other.prefix {
            self
        } else {
            other
        };
        shorter.contains(Ipv4Addr::from(self.network))
            && shorter.contains(Ipv4Addr::from(other.network))
    }

    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// Refuses a range outside 127.0.0.0/8 (what local mode without
    /// network namespaces can bind).
    pub fn require_loopback(&self) -> Result<(), AddressRangeError> {
        let loopback = AddressRange {
            network: LOOPBACK_NETWORK,
            prefix: LOOPBACK_PREFIX,
        };
        if loopback.contains(Ipv4Addr::from(self.network)) {
            Ok(())
        } else {
            Err(AddressRangeError::NotLoopback(self.to_string()))
        }
    }

    /// Hands out this range's addresses in order, skipping the network and
    /// broadcast addresses and the reserved ones.
    pub fn allocator(&self) -> AddressAllocator {
        AddressAllocator {
            range: *self,
            next: self.network + 1,
        }
    }
}

impl fmt::Display for AddressRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", Ipv4Addr::from(self.network), self.prefix)
    }
}

impl FromStr for AddressRange {
    type Err = AddressRangeError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let syntax = || AddressRangeError::Syntax(text.to_owned());
        let (address, prefix) = text.trim().split_once('/').ok_or_else(syntax)?;
        let address: Ipv4Addr = address.parse().map_err(|_| syntax())?;
        let prefix: u8 = prefix.parse().map_err(|_| syntax())?;
        if prefix > 32 {
            return Err(syntax());
        }
        let address = u32::from(address);
        if prefix == 0 {
            return Err(syntax());
        }
        let range = AddressRange {
            network: address,
            prefix,
        };
        if address & !range.mask() != 0 {
            let suggestion = AddressRange {
                network: address & range.mask(),
                prefix,
            };
            return Err(AddressRangeError::HostBits {
                range: text.to_owned(),
                suggestion: suggestion.to_string(),
            });
        }
        if prefix > LONGEST_PREFIX {
            return Err(AddressRangeError::TooSmall(text.to_owned()));
        }
        Ok(range)
    }
}

/// Hands out the addresses of one range, each once.
#[derive(Debug, Clone)]
pub struct AddressAllocator {
    range: AddressRange,
    next: u32,
}

impl AddressAllocator {
    pub fn allocate(&mut self) -> Result<Ipv4Addr, AddressRangeError> {
        while self.next < self.range.broadcast() {
            let candidate = Ipv4Addr::from(self.next);
            self.next += 1;
            if !RESERVED.contains(&candidate) {
                return Ok(candidate);
            }
        }
        Err(AddressRangeError::Exhausted(self.range))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(text: &str) -> AddressRange {
        text.parse().unwrap()
    }

    #[test]
    fn allocates_in_order_after_the_network_address() {
        let mut allocator = range(DEFAULT_ADDRESS_RANGE).allocator();
        assert_eq!(allocator.allocate(), Ok(Ipv4Addr::new(127, 42, 0, 1)));
        assert_eq!(allocator.allocate(), Ok(Ipv4Addr::new(127, 42, 0, 2)));
    }

    #[test]
    fn skips_reserved_addresses() {
        let mut allocator = range("127.0.0.0/16").allocator();
        let first: Vec<_> = (0..300).map(|_| allocator.allocate().unwrap()).collect();
        assert_eq!(first[0], Ipv4Addr::new(127, 0, 0, 2));
        for reserved in RESERVED {
            assert!(!first.contains(&reserved), "{reserved} was handed out");
        }
        assert!(first.contains(&Ipv4Addr::new(127, 0, 0, 54)));
        assert!(first.contains(&Ipv4Addr::new(127, 0, 1, 2)));
    }

    #[test]
    fn runs_out_without_handing_out_broadcast() {
        let mut allocator = range("127.9.9.0/30").allocator();
        assert_eq!(allocator.allocate(), Ok(Ipv4Addr::new(127, 9, 9, 1)));
        assert_eq!(allocator.allocate(), Ok(Ipv4Addr::new(127, 9, 9, 2)));
        assert_eq!(
            allocator.allocate(),
            Err(AddressRangeError::Exhausted(range("127.9.9.0/30")))
        );
    }

    #[test]
    fn rejects_bad_ranges_with_reasons() {
        let parse = |text: &str| text.parse::<AddressRange>();
        assert!(matches!(
            parse("127.42.0.0"),
            Err(AddressRangeError::Syntax(_))
        ));
        assert!(matches!(
            parse("127.42.0/16"),
            Err(AddressRangeError::Syntax(_))
        ));
        assert!(matches!(
            parse("127.42.0.0/33"),
            Err(AddressRangeError::Syntax(_))
        ));
        let loopback = |text: &str| parse(text).and_then(|range| range.require_loopback());
        assert!(matches!(
            loopback("10.0.0.0/16"),
            Err(AddressRangeError::NotLoopback(_))
        ));
        assert!(matches!(
            loopback("126.0.0.0/7"),
            Err(AddressRangeError::NotLoopback(_))
        ));
        assert_eq!(loopback(DEFAULT_ADDRESS_RANGE), Ok(()));
        assert!(matches!(
            parse("127.9.9.0/31"),
            Err(AddressRangeError::TooSmall(_))
        ));
        assert_eq!(
            parse("127.42.3.4/16"),
            Err(AddressRangeError::HostBits {
                range: "127.42.3.4/16".into(),
                suggestion: "127.42.0.0/16".into(),
            })
        );
        assert_eq!(range(" 127.0.0.0/8 ").to_string(), "127.0.0.0/8");
        assert!(matches!(
            parse("0.0.0.0/0"),
            Err(AddressRangeError::Syntax(_))
        ));
    }

    #[test]
    fn tells_containment_and_overlap() {
        let pods = range("10.42.0.0/16");
        assert!(pods.contains(Ipv4Addr::new(10, 42, 7, 1)));
        assert!(!pods.contains(Ipv4Addr::new(10, 43, 0, 1)));
        assert!(pods.overlaps(&range("10.0.0.0/8")));
        assert!(range("10.0.0.0/8").overlaps(&pods));
        assert!(pods.overlaps(&range("10.42.3.0/24")));
        assert!(!pods.overlaps(&range("10.96.0.0/16")));
    }
}
