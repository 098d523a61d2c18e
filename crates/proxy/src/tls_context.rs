//! Envoy TLS transport sockets, as the mesh uses them: the workload's SDS
//! certificate `default`, the mesh root `ROOTCA`, and SPIFFE SAN matchers.
//! Upstream contexts without them originate TLS to a server outside the
//! mesh (see tls_origination.rs).

use envoy_types::pb::envoy::config::core::v3::{TransportSocket, transport_socket::ConfigType};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::common_tls_context::ValidationContextType;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    CommonTlsContext, DownstreamTlsContext, SdsSecretConfig, UpstreamTlsContext,
};
use envoy_types::pb::envoy::r#type::matcher::v3::string_matcher::MatchPattern;
use prost::{Message, Name};
use trellis_ca::SpiffeId;

use crate::connector::UpstreamTls;
use crate::unsupported::{Unsupported, reject_if};

/// Istio's SDS resource names for the workload certificate and the root.
pub const WORKLOAD_SECRET: &str = "default";
pub const ROOT_SECRET: &str = "ROOTCA";

pub fn upstream(socket: &TransportSocket, alpn: &'static [u8]) -> Result<UpstreamTls, Unsupported> {
    let context: UpstreamTlsContext = decode(socket)?;
    let common = context.common_tls_context.unwrap_or_default();
    if !is_mesh(&common) {
        return Ok(UpstreamTls {
            sni: context.sni,
            peers: Vec::new(),
            alpn,
            origination: Some(crate::tls_origination::compile(&common)?),
        });
    }
    check_mesh_certificate(&common)?;
    Ok(UpstreamTls {
        sni: context.sni,
        peers: expected_peers(&common)?,
        alpn,
        origination: None,
    })
}

/// Whether a context is the mesh's (the workload certificate or the mesh
/// root over SDS) rather than a user's TLS origination.
fn is_mesh(common: &CommonTlsContext) -> bool {
    let mesh_root = match &common.validation_context_type {
        Some(ValidationContextType::CombinedValidationContext(combined)) => combined
            .validation_context_sds_secret_config
            .as_ref()
            .is_some_and(|sds| sds.name == ROOT_SECRET),
        Some(ValidationContextType::ValidationContextSdsSecretConfig(sds)) => {
            sds.name == ROOT_SECRET
        }
        _ => false,
    };
    mesh_root
        || common
            .tls_certificate_sds_secret_configs
            .iter()
            .any(|sds| sds.name == WORKLOAD_SECRET)
}

/// Downstream mTLS with the workload certificate; client certificates are
/// verified against the mesh root when required.
pub fn downstream(socket: &TransportSocket) -> Result<(), Unsupported> {
    let context: DownstreamTlsContext = decode(socket)?;
    let common = context.common_tls_context.unwrap_or_default();
    check_mesh_certificate(&common)?;
    reject_if(
        !context.require_client_certificate.is_some_and(|b| b.value),
        "downstream TLS without require_client_certificate",
    )?;
    expected_peers(&common).map(|_| ())
}

fn decode<T: Message + Name + Default>(socket: &TransportSocket) -> Result<T, Unsupported> {
    match &socket.config_type {
        Some(ConfigType::TypedConfig(any)) if any.type_url == T::type_url() => {
            T::decode(any.value.as_slice()).map_err(|_| Unsupported("undecodable TLS context"))
        }
        _ => Err(Unsupported("transport socket other than TLS")),
    }
}

fn check_mesh_certificate(common: &CommonTlsContext) -> Result<(), Unsupported> {
    reject_if(
        !common.tls_certificates.is_empty(),
        "inline TLS certificates",
    )?;
    let names: Vec<&str> = common
        .tls_certificate_sds_secret_configs
        .iter()
        .map(|s| s.name.as_str())
        .collect();
    reject_if(
        names != [WORKLOAD_SECRET],
        "TLS certificate other than SDS `default`",
    )
}

fn expected_peers(common: &CommonTlsContext) -> Result<Vec<SpiffeId>, Unsupported> {
    let (validation, root) = match &common.validation_context_type {
        Some(ValidationContextType::CombinedValidationContext(combined)) => (
            combined
                .default_validation_context
                .clone()
                .unwrap_or_default(),
            combined.validation_context_sds_secret_config.as_ref(),
        ),
        Some(ValidationContextType::ValidationContextSdsSecretConfig(root)) => {
            (Default::default(), Some(root))
        }
        _ => return Err(Unsupported("validation context other than SDS `ROOTCA`")),
    };
    reject_if(
        root.map(|r: &SdsSecretConfig| r.name.as_str()) != Some(ROOT_SECRET),
        "validation context other than SDS `ROOTCA`",
    )?;
    validation
        .match_typed_subject_alt_names
        .iter()
        .map(
            |san| match san.matcher.as_ref().and_then(|m| m.match_pattern.as_ref()) {
                Some(MatchPattern::Exact(uri)) => uri
                    .parse()
                    .map_err(|_| Unsupported("SAN matcher that is not a SPIFFE ID")),
                _ => Err(Unsupported("SAN matcher other than exact")),
            },
        )
        .collect()
}
