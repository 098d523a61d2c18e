use std::net::{Ipv4Addr, TcpListener as StdListener};

use super::*;
use crate::listener::Direction;

fn spec(name: &str, address: &str, bind_to_port: bool) -> ListenerSpec {
    ListenerSpec {
        name: name.into(),
        address: address.parse().unwrap(),
        direction: Direction::Outbound,
        chains: Vec::new(),
        use_original_dst: false,
        original_dst_filter: false,
        bind_to_port,
        http_inspector: false,
        filters_timeout: None,
        continue_on_filters_timeout: false,
        digest: 0,
    }
}

/// A loopback port nothing listens on right now.
fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn hands_off_to_the_exact_address_then_the_wildcard_on_the_port() {
    let listeners = Listeners::new(Weak::new());
    listeners
        .update(vec![
            spec("0.0.0.0_9080", "0.0.0.0:9080", false),
            spec("10.96.0.12_9080", "10.96.0.12:9080", false),
        ])
        .unwrap();
    let name_for = |destination: &str| {
        listeners
            .for_destination(destination.parse().unwrap())
            .map(|spec| spec.name.clone())
    };
    assert_eq!(
        name_for("10.96.0.12:9080").as_deref(),
        Some("10.96.0.12_9080")
    );
    assert_eq!(name_for("10.96.0.99:9080").as_deref(), Some("0.0.0.0_9080"));
    assert_eq!(name_for("10.96.0.12:5432"), None);
    assert_eq!(
        name_for("[fd00::1]:9080"),
        None,
        "no IPv6 wildcard listener"
    );
}

#[tokio::test]
async fn own_ports_are_those_bound_at_the_proxys_addresses() {
    let port = free_port();
    let listeners = Listeners::new(Weak::new());
    let own = format!("0.0.0.0:{port}");
    listeners
        .update(vec![
            spec("virtualOutbound", &own, true),
            spec("0.0.0.0_9080", "0.0.0.0:9080", false),
        ])
        .unwrap();
    let me: IpAddr = Ipv4Addr::new(10, 213, 0, 2).into();
    let at = |ip: &str, port: u16| SocketAddr::new(ip.parse().unwrap(), port);
    assert!(listeners.is_own(at("10.213.0.2", port), me));
    assert!(listeners.is_own(at("127.0.0.1", port), me));
    assert!(
        !listeners.is_own(at("10.213.0.3", port), me),
        "a peer's port"
    );
    assert!(!listeners.is_own(at("10.213.0.2", 9080), me), "not bound");
}

#[tokio::test]
async fn a_listener_that_stops_binding_releases_its_port() {
    let port = free_port();
    let address = format!("127.0.0.1:{port}");
    let listeners = Listeners::new(Weak::new());
    listeners.update(vec![spec("l", &address, true)]).unwrap();
    assert!(port_in_use(port));
    listeners.update(vec![spec("l", &address, false)]).unwrap();
    let mut released = false;
    for _ in 0..100 {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        if !port_in_use(port) {
            released = true;
            break;
        }
    }
    assert!(released, "the old socket is still bound");
    assert!(
        listeners
            .for_destination(address.parse().unwrap())
            .is_some()
    );
}

/// Binding, not connecting: a connection would end the accept loop of a
/// listener set without a proxy state.
fn port_in_use(port: u16) -> bool {
    StdListener::bind(("127.0.0.1", port)).is_err()
}

#[tokio::test]
async fn replacing_or_dropping_a_listener_is_signalled_and_resending_it_is_not() {
    let listeners = Listeners::new(Weak::new());
    let mut replacements = listeners.replacements();
    let with_digest = |name: &str, digest| ListenerSpec {
        digest,
        ..spec(name, "0.0.0.0:9080", false)
    };
    listeners.update(vec![with_digest("a", 1)]).unwrap();
    assert!(
        !replacements.has_changed().unwrap(),
        "a new listener replaces nothing"
    );
    listeners.update(vec![with_digest("a", 1)]).unwrap();
    assert!(
        !replacements.has_changed().unwrap(),
        "the same config again"
    );
    listeners.update(vec![with_digest("a", 2)]).unwrap();
    assert!(replacements.has_changed().unwrap());
    replacements.mark_unchanged();
    assert_eq!(listeners.digest_of("a"), Some(2));
    listeners.update(Vec::new()).unwrap();
    assert!(replacements.has_changed().unwrap(), "dropped");
    assert_eq!(listeners.digest_of("a"), None);
}
