//! The downstream TLS context of a server that terminates TLS: its
//! `credentialName` as Istio's SDS secret `kubernetes://NAME` (clients of a
//! mutual server verified against `kubernetes://NAME-cacert`), or for
//! ISTIO_MUTUAL the mesh certificate with mesh clients only; and its TLS
//! versions and TLS 1.2 cipher suites as `tls_params`.

use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    CertificateValidationContext, CommonTlsContext, DownstreamTlsContext, SdsSecretConfig,
    TlsParameters, common_tls_context::CombinedCertificateValidationContext,
    common_tls_context::ValidationContextType, tls_parameters::TlsProtocol,
};
use envoy_types::pb::google::protobuf::BoolValue;
use trellis_api::TlsProtocolVersion;

use super::server_kind::{Certificate, Clients, Termination};
use crate::build::mesh_tls_context;
use crate::clusters::ads_config_source;

/// Istio's SDS name prefix for a Gateway's `credentialName`.
const CREDENTIAL_PREFIX: &str = "kubernetes://";
/// Istio's suffix for the client CA of credential `NAME`.
const CA_SUFFIX: &str = "-cacert";

pub fn downstream_context(termination: &Termination, alpn: &[&str]) -> DownstreamTlsContext {
    let (mut common, require_client) = match &termination.certificate {
        Certificate::Mesh => (mesh_tls_context(&[], alpn), true),
        Certificate::Credential { name, clients } => (
            credential_context(name, *clients, alpn),
            *clients == Clients::Required,
        ),
    };
    common.tls_params = tls_params(termination);
    DownstreamTlsContext {
        common_tls_context: Some(common),
        require_client_certificate: require_client.then_some(BoolValue { value: true }),
        ..Default::default()
    }
}

fn credential_context(name: &str, clients: Clients, alpn: &[&str]) -> CommonTlsContext {
    let sds = |name: String| SdsSecretConfig {
        name,
        sds_config: Some(ads_config_source()),
    };
    let validation_context_type = (clients != Clients::Anonymous).then(|| {
        ValidationContextType::CombinedValidationContext(CombinedCertificateValidationContext {
            default_validation_context: Some(CertificateValidationContext::default()),
            validation_context_sds_secret_config: Some(sds(format!(
                "{CREDENTIAL_PREFIX}{name}{CA_SUFFIX}"
            ))),
            ..Default::default()
        })
    });
    CommonTlsContext {
        tls_certificate_sds_secret_configs: vec![sds(format!("{CREDENTIAL_PREFIX}{name}"))],
        validation_context_type,
        alpn_protocols: alpn.iter().map(|p| p.to_string()).collect(),
        ..Default::default()
    }
}

/// `None` when the server leaves every setting at its default.
fn tls_params(termination: &Termination) -> Option<TlsParameters> {
    let defaults = termination.min_version.is_none()
        && termination.max_version.is_none()
        && termination.cipher_suites.is_empty();
    (!defaults).then(|| TlsParameters {
        tls_minimum_protocol_version: protocol(termination.min_version) as i32,
        tls_maximum_protocol_version: protocol(termination.max_version) as i32,
        cipher_suites: termination.cipher_suites.clone(),
        ..Default::default()
    })
}

fn protocol(version: Option<TlsProtocolVersion>) -> TlsProtocol {
    match version {
        None | Some(TlsProtocolVersion::Auto) => TlsProtocol::TlsAuto,
        Some(TlsProtocolVersion::V1_0) => TlsProtocol::TlSv10,
        Some(TlsProtocolVersion::V1_1) => TlsProtocol::TlSv11,
        Some(TlsProtocolVersion::V1_2) => TlsProtocol::TlSv12,
        Some(TlsProtocolVersion::V1_3) => TlsProtocol::TlSv13,
    }
}
