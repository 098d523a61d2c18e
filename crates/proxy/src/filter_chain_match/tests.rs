use super::*;

fn facts<'a>(
    destination: &str,
    tls: bool,
    sni: Option<&'a str>,
    alpn: &'a [String],
) -> ConnectionFacts<'a> {
    ConnectionFacts {
        destination: destination.parse().unwrap(),
        tls,
        server_name: sni,
        alpn,
    }
}

fn port(port: u16, transport: Transport) -> ChainMatch {
    ChainMatch {
        destination_port: Some(port),
        transport,
        ..Default::default()
    }
}

#[test]
fn destination_port_is_decided_before_transport() {
    let chains = [
        ChainMatch::default(),
        port(9080, Transport::Tls),
        port(9080, Transport::Plaintext),
        ChainMatch {
            transport: Transport::Plaintext,
            ..Default::default()
        },
    ];
    assert_eq!(
        select(&chains, &facts("10.0.0.1:9080", true, None, &[])),
        Some(1)
    );
    assert_eq!(
        select(&chains, &facts("10.0.0.1:9080", false, None, &[])),
        Some(2)
    );
    assert_eq!(
        select(&chains, &facts("10.0.0.1:7000", false, None, &[])),
        Some(3)
    );
    assert_eq!(
        select(&chains, &facts("10.0.0.1:7000", true, None, &[])),
        Some(0)
    );
}

#[test]
fn no_backtracking_once_a_more_specific_port_matches() {
    // Envoy: the port-9080 chain is the only candidate, and it wants TLS.
    let chains = [ChainMatch::default(), port(9080, Transport::Tls)];
    assert_eq!(
        select(&chains, &facts("10.0.0.1:9080", false, None, &[])),
        None
    );
}

#[test]
fn longest_prefix_wins() {
    let range = |ip: &str, len| ChainMatch {
        prefix_ranges: vec![(ip.parse().unwrap(), len)],
        ..Default::default()
    };
    let chains = [
        range("10.0.0.0", 8),
        range("10.96.0.10", 32),
        ChainMatch::default(),
    ];
    assert_eq!(
        select(&chains, &facts("10.96.0.10:80", false, None, &[])),
        Some(1)
    );
    assert_eq!(
        select(&chains, &facts("10.96.0.11:80", false, None, &[])),
        Some(0)
    );
    assert_eq!(
        select(&chains, &facts("192.168.1.1:80", false, None, &[])),
        Some(2)
    );
    assert_eq!(
        select(&chains, &facts("[::1]:80", false, None, &[])),
        Some(2)
    );
}

#[test]
fn server_names_exact_then_longest_wildcard() {
    let names = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let patterns = names(&["*.example.com", "*.api.example.com", "www.example.com"]);
    assert_eq!(
        server_name_specificity(&patterns, Some("www.example.com")),
        Some(u32::MAX)
    );
    let wildcard = server_name_specificity(&patterns, Some("a.example.com")).unwrap();
    let longer = server_name_specificity(&patterns, Some("v1.api.example.com")).unwrap();
    assert!(longer > wildcard && wildcard > 0);
    assert_eq!(
        server_name_specificity(&patterns, Some("example.com")),
        None
    );
    assert_eq!(
        server_name_specificity(&patterns, Some("WWW.Example.COM")),
        Some(u32::MAX)
    );
    assert_eq!(server_name_specificity(&patterns, None), None);
    assert_eq!(server_name_specificity(&[], None), Some(0));
}

#[test]
fn application_protocols_refine_tls_chains() {
    let mesh = ChainMatch {
        transport: Transport::Tls,
        application_protocols: vec!["istio-http/1.1".into(), "istio".into()],
        ..Default::default()
    };
    let other_tls = ChainMatch {
        transport: Transport::Tls,
        ..Default::default()
    };
    let chains = [other_tls, mesh];
    let offered = ["istio-http/1.1".to_string()];
    assert_eq!(
        select(&chains, &facts("10.0.0.1:1", true, None, &offered)),
        Some(1)
    );
    let h2 = ["h2".to_string()];
    assert_eq!(
        select(&chains, &facts("10.0.0.1:1", true, None, &h2)),
        Some(0)
    );
}

#[test]
fn compile_rejects_what_it_cannot_match() {
    use envoy_types::pb::envoy::config::core::v3::CidrRange;
    let source = FilterChainMatch {
        source_prefix_ranges: vec![CidrRange::default()],
        ..Default::default()
    };
    assert!(ChainMatch::compile(Some(&source)).is_err());
    let bad_len = FilterChainMatch {
        prefix_ranges: vec![CidrRange {
            address_prefix: "10.0.0.0".into(),
            prefix_len: Some(envoy_types::pb::google::protobuf::UInt32Value { value: 33 }),
        }],
        ..Default::default()
    };
    assert!(ChainMatch::compile(Some(&bad_len)).is_err());
    let unknown = FilterChainMatch {
        transport_protocol: "quic".into(),
        ..Default::default()
    };
    assert!(ChainMatch::compile(Some(&unknown)).is_err());
}
