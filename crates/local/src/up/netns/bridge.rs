//! The bridge in the host's namespace that joins the pods, and the choice
//! of its private range: one that no route of the host already covers
//! (another `up --netns` included: its bridge brings a route).

use std::net::Ipv4Addr;

use super::NetnsError;
use super::command::ip;
use crate::up::addresses::AddressRange;

/// Tried in order when no `--address-range` is given: 10.42.0.0/16, then
/// 10.43.0.0/16, ... below the default Service range (10.96.0.0/16).
const CANDIDATE_SECOND_OCTETS: std::ops::Range<u8> = 42..96;

/// The host's IPv4 routes' destinations (the default route left out),
/// from `ip -4 route show table all`.
pub(crate) fn host_routes() -> Result<Vec<AddressRange>, NetnsError> {
    Ok(parse_routes(&ip(&["-4", "route", "show", "table", "all"])?))
}

/// Each route line's destination: `10.0.0.0/8 dev ...`, `local 10.0.0.5
/// dev ...` (a route type first), `192.0.2.1 via ...` (a single host).
fn parse_routes(text: &str) -> Vec<AddressRange> {
    let mut ranges = Vec::new();
    for line in text.lines() {
        let mut words = line.split_whitespace().take(2);
        let destination = words.find_map(|word| {
            let (address, prefix) = word.split_once('/').unwrap_or((word, "32"));
            Some((
                address.parse::<Ipv4Addr>().ok()?,
                prefix.parse::<u8>().ok()?,
            ))
        });
        if let Some((address, prefix)) = destination {
            ranges.push(AddressRange::around(address, prefix));
        }
    }
    ranges
}

/// `given` if no host route overlaps it, else an error naming the route;
/// without one, the first candidate clear of the host's routes and of
/// `avoid` (the Service range).
pub(crate) fn choose_range(
    given: Option<AddressRange>,
    avoid: &AddressRange,
    routes: &[AddressRange],
) -> Result<AddressRange, NetnsError> {
    let clash = |range: &AddressRange| routes.iter().find(|route| route.overlaps(range)).copied();
    if let Some(range) = given {
        if range.overlaps(avoid) {
            return Err(NetnsError::RangeOverlap {
                range,
                other: format!("the Service range {avoid}"),
            });
        }
        return match clash(&range) {
            Some(route) => Err(NetnsError::RangeOverlap {
                range,
                other: format!("the host's route to {route}"),
            }),
            None => Ok(range),
        };
    }
    CANDIDATE_SECOND_OCTETS
        .map(|octet| AddressRange::around(Ipv4Addr::new(10, octet, 0, 0), 16))
        .find(|range| !range.overlaps(avoid) && clash(range).is_none())
        .ok_or(NetnsError::NoFreeRange)
}

/// Checks that the Service range is clear of the host's routes (a VIP
/// the host routes elsewhere would be ambiguous to read).
pub(crate) fn check_service_range(
    range: &AddressRange,
    routes: &[AddressRange],
) -> Result<(), NetnsError> {
    match routes.iter().find(|route| route.overlaps(range)) {
        Some(route) => Err(NetnsError::RangeOverlap {
            range: *range,
            other: format!("the host's route to {route}"),
        }),
        None => Ok(()),
    }
}

/// Creates the bridge `name` with `address` on it, up.
pub(crate) fn create(name: &str, address: Ipv4Addr, prefix: u8) -> Result<(), NetnsError> {
    ip(&["link", "add", name, "type", "bridge"])?;
    let cidr = format!("{address}/{prefix}");
    ip(&["addr", "add", &cidr, "dev", name])?;
    ip(&["link", "set", name, "up"])?;
    Ok(())
}

/// Deletes the bridge `name` if it exists.
pub(crate) fn delete(name: &str) -> Result<(), NetnsError> {
    if std::path::Path::new("/sys/class/net").join(name).exists() {
        ip(&["link", "del", name])?;
    }
    Ok(())
}

/// Names of the host's bridges.
pub(crate) fn existing_bridges() -> Result<Vec<String>, NetnsError> {
    let listed = ip(&["-o", "link", "show", "type", "bridge"])?;
    Ok(listed
        .lines()
        .filter_map(|line| line.split(':').nth(1))
        .map(|name| name.trim().split('@').next().unwrap_or_default().to_owned())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(text: &str) -> AddressRange {
        text.parse().unwrap()
    }

    #[test]
    fn reads_route_destinations() {
        let text = "default via 192.0.2.1 dev eth0\n\
                    192.0.2.0/24 dev eth0 proto kernel scope link src 192.0.2.2\n\
                    local 10.42.0.1 dev trellis-ab12cd table local proto kernel\n\
                    broadcast 127.255.255.255 dev lo table local\n\
                    blackhole 10.1.0.0/16\n";
        let routes = parse_routes(text);
        assert_eq!(
            routes,
            [
                range("192.0.2.0/24"),
                AddressRange::around(Ipv4Addr::new(10, 42, 0, 1), 32),
                AddressRange::around(Ipv4Addr::new(127, 255, 255, 255), 32),
                range("10.1.0.0/16"),
            ]
        );
    }

    #[test]
    fn picks_a_range_no_route_covers() {
        let services = range("10.96.0.0/16");
        let routes = [range("10.42.0.0/16"), range("10.43.128.0/24")];
        assert_eq!(
            choose_range(None, &services, &routes).unwrap(),
            range("10.44.0.0/16")
        );
        assert_eq!(
            choose_range(None, &services, &[]).unwrap(),
            range("10.42.0.0/16")
        );
        let everything = [range("10.0.0.0/8")];
        assert!(matches!(
            choose_range(None, &services, &everything),
            Err(NetnsError::NoFreeRange)
        ));
    }

    #[test]
    fn refuses_a_given_range_that_clashes() {
        let services = range("10.96.0.0/16");
        let routes = [range("192.168.0.0/16")];
        let error = choose_range(Some(range("192.168.4.0/24")), &services, &routes).unwrap_err();
        assert!(error.to_string().contains("192.168.0.0/16"), "{error}");
        let error = choose_range(Some(range("10.96.0.0/12")), &services, &routes).unwrap_err();
        assert!(error.to_string().contains("Service range"), "{error}");
        assert_eq!(
            choose_range(Some(range("172.31.0.0/16")), &services, &routes).unwrap(),
            range("172.31.0.0/16")
        );
        assert!(check_service_range(&services, &[range("10.96.1.0/24")]).is_err());
    }
}
