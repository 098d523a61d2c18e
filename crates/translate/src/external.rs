//! Clusters of ServiceEntry hosts, as Istio builds them: the entry's
//! resolution picks the cluster type (STATIC: EDS, DNS: STRICT_DNS,
//! DNS_ROUND_ROBIN: LOGICAL_DNS, NONE: ORIGINAL_DST passthrough), and a
//! DestinationRule's SIMPLE or MUTUAL `tls` originates TLS to the host with
//! the user's CA and certificates instead of the mesh's.

use std::time::Duration;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::cluster::v3::cluster::{
    ClusterDiscoveryType, DiscoveryType, DnsLookupFamily, LbPolicy,
};
use envoy_types::pb::envoy::config::core::v3::{
    Address, DataSource, SocketAddress, TransportSocket, address, data_source::Specifier,
    socket_address::PortSpecifier,
};
use envoy_types::pb::envoy::config::endpoint::v3::{
    ClusterLoadAssignment, Endpoint, LbEndpoint, LocalityLbEndpoints, lb_endpoint::HostIdentifier,
};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    CertificateValidationContext, CommonTlsContext, SdsSecretConfig, SubjectAltNameMatcher,
    TlsCertificate, UpstreamTlsContext, common_tls_context::ValidationContextType,
    subject_alt_name_matcher::SanType,
};
use envoy_types::pb::envoy::r#type::matcher::v3::{StringMatcher, string_matcher::MatchPattern};
use trellis_api::{ClientTlsSettings, ServiceEntryResolution, TlsMode};
use trellis_config::{EntryDetails, MeshService, MeshServicePort, Snapshot, TargetPort};

use crate::build::{duration, tls_socket, uint32};

/// Istio's default `dnsRefreshRate` (mesh config).
const DNS_REFRESH_RATE: Duration = Duration::from_secs(60);
/// Where Istio points an originating sidecar that names no CA: the
/// system's roots (`VERIFY_CERTIFICATE_AT_CLIENT`).
pub const SYSTEM_ROOTS: &str = "/etc/ssl/certs/ca-certificates.crt";
/// Istio's SDS prefix for a `credentialName`.
const CREDENTIAL_PREFIX: &str = "kubernetes://";

/// Turns an EDS cluster for a ServiceEntry host into the type its
/// resolution asks for; other clusters are left as they are.
// Envoy deprecates the DNS fields for its DnsCluster extension; Istio (and
// every Envoy) still reads these, so they stay the portable choice.
#[allow(deprecated)]
pub fn apply_resolution(
    cluster: &mut Cluster,
    snapshot: &Snapshot,
    service: &MeshService,
    port: &MeshServicePort,
) {
    let Some(entry) = &service.entry else {
        return;
    };
    let discovery = match entry.resolution {
        ServiceEntryResolution::Static => return,
        ServiceEntryResolution::Dns => DiscoveryType::StrictDns,
        ServiceEntryResolution::DnsRoundRobin => DiscoveryType::LogicalDns,
        ServiceEntryResolution::None => DiscoveryType::OriginalDst,
    };
    cluster.cluster_discovery_type = Some(ClusterDiscoveryType::Type(discovery as i32));
    cluster.eds_cluster_config = None;
    if discovery == DiscoveryType::OriginalDst {
        cluster.lb_policy = LbPolicy::ClusterProvided as i32;
        return;
    }
    let mut targets = dns_targets(snapshot, service, entry, port);
    if discovery == DiscoveryType::LogicalDns {
        // Envoy's LOGICAL_DNS takes exactly one name.
        targets.truncate(1);
    }
    cluster.dns_refresh_rate = Some(duration(DNS_REFRESH_RATE));
    cluster.dns_lookup_family = DnsLookupFamily::V4Only as i32;
    cluster.load_assignment = Some(ClusterLoadAssignment {
        cluster_name: cluster.name.clone(),
        endpoints: vec![LocalityLbEndpoints {
            lb_endpoints: targets.into_iter().map(dns_endpoint).collect(),
            load_balancing_weight: Some(uint32(1)),
            ..Default::default()
        }],
        ..Default::default()
    });
}

/// The names (or addresses) a DNS cluster resolves: the entry's
/// endpoints, the selected WorkloadEntries, else the host itself.
fn dns_targets(
    snapshot: &Snapshot,
    service: &MeshService,
    entry: &EntryDetails,
    port: &MeshServicePort,
) -> Vec<(String, u16, u32)> {
    if !entry.endpoints.is_empty() {
        return entry
            .endpoints
            .iter()
            .map(|e| (e.address.clone(), e.port_for(port), e.weight))
            .collect();
    }
    if !service.selector.is_empty() {
        return snapshot
            .registry
            .endpoints(service, port)
            .into_iter()
            .map(|e| (e.address.ip().to_string(), e.address.port(), 1))
            .collect();
    }
    let target = match port.target_port {
        TargetPort::Number(number) => number,
        TargetPort::Named(_) => port.port,
    };
    vec![(service.hostname.clone(), target, 1)]
}

fn dns_endpoint((host, port, weight): (String, u16, u32)) -> LbEndpoint {
    LbEndpoint {
        host_identifier: Some(HostIdentifier::Endpoint(Endpoint {
            address: Some(Address {
                address: Some(address::Address::SocketAddress(SocketAddress {
                    address: host,
                    port_specifier: Some(PortSpecifier::PortValue(port.into())),
                    ..Default::default()
                })),
            }),
            ..Default::default()
        })),
        load_balancing_weight: Some(uint32(weight)),
        ..Default::default()
    }
}

/// The transport socket that originates TLS for a DestinationRule's
/// SIMPLE or MUTUAL settings to `host` (`None` for other modes); an
/// HTTP/2 cluster offers ALPN `h2`, as Istio's does.
pub fn origination_socket(
    tls: &ClientTlsSettings,
    host: &str,
    h2: bool,
) -> Option<TransportSocket> {
    if !matches!(tls.mode, TlsMode::Simple | TlsMode::Mutual) {
        return None;
    }
    let mut common = CommonTlsContext {
        validation_context_type: validation(tls),
        alpn_protocols: if h2 { vec!["h2".into()] } else { Vec::new() },
        ..Default::default()
    };
    if tls.mode == TlsMode::Mutual {
        match (
            &tls.credential_name,
            &tls.client_certificate,
            &tls.private_key,
        ) {
            (Some(name), _, _) => common.tls_certificate_sds_secret_configs = vec![sds(name, "")],
            (None, Some(chain), Some(key)) => {
                common.tls_certificates = vec![TlsCertificate {
                    certificate_chain: Some(file(chain)),
                    private_key: Some(file(key)),
                    ..Default::default()
                }];
            }
            // Validation requires both files without a credential.
            _ => {}
        }
    }
    let sni = tls.sni.clone().unwrap_or_else(|| host.to_string());
    Some(tls_socket(UpstreamTlsContext {
        common_tls_context: Some(common),
        sni,
        ..Default::default()
    }))
}

/// The CA that verifies the server, and the names it may present;
/// nothing at all with `insecureSkipVerify`.
fn validation(tls: &ClientTlsSettings) -> Option<ValidationContextType> {
    if tls.insecure_skip_verify == Some(true) {
        return None;
    }
    if let Some(name) = tls.credential_name.as_deref() {
        return Some(ValidationContextType::ValidationContextSdsSecretConfig(
            sds(name, "-cacert"),
        ));
    }
    let ca = tls.ca_certificates.as_deref().unwrap_or(SYSTEM_ROOTS);
    let sans = tls
        .subject_alt_names
        .iter()
        .map(|name| SubjectAltNameMatcher {
            san_type: SanType::Dns as i32,
            matcher: Some(StringMatcher {
                match_pattern: Some(MatchPattern::Exact(name.clone())),
                ..Default::default()
            }),
            ..Default::default()
        })
        .collect();
    Some(ValidationContextType::ValidationContext(
        CertificateValidationContext {
            trusted_ca: Some(file(ca)),
            match_typed_subject_alt_names: sans,
            ..Default::default()
        },
    ))
}

fn sds(credential: &str, suffix: &str) -> SdsSecretConfig {
    SdsSecretConfig {
        name: format!("{CREDENTIAL_PREFIX}{credential}{suffix}"),
        ..Default::default()
    }
}

fn file(path: &str) -> DataSource {
    DataSource {
        specifier: Some(Specifier::Filename(path.to_string())),
        ..Default::default()
    }
}
