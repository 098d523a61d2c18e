//! TLS termination with a user's certificate instead of the mesh one: a
//! gateway server's `credentialName` (TLS modes SIMPLE, MUTUAL and
//! OPTIONAL_MUTUAL). The translator names it as Istio does, an SDS secret
//! `kubernetes://NAME`, and the client CA of a mutual server
//! `kubernetes://NAME-cacert`. In local mode the proxy reads those secrets
//! from files under `--credentials-dir` (see files.rs); a changed file is
//! read again on the next handshake (hot reload), and a missing or bad one
//! refuses handshakes with a warning naming it, while the rest of the
//! listener keeps working.

mod files;
mod params;

use envoy_types::pb::envoy::config::core::v3::{TransportSocket, transport_socket::ConfigType};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    CertificateValidationContext, CommonTlsContext, DownstreamTlsContext,
    common_tls_context::ValidationContextType,
};
use prost::{Message, Name};

use crate::unsupported::{Unsupported, reject_if};

pub use files::Credentials;
pub use params::TlsParams;

/// Istio's SDS name prefix for a gateway's `credentialName`.
pub const CREDENTIAL_PREFIX: &str = "kubernetes://";

/// A certificate a listener presents, with how it treats clients.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ServerCredential {
    pub name: String,
    pub alpn: Vec<Vec<u8>>,
    /// `None`: clients are not asked for certificates (SIMPLE).
    pub client_auth: Option<ClientAuth>,
    pub params: TlsParams,
}

/// Client certificates verified against a CA credential.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ClientAuth {
    /// The secret holding the CA (`NAME-cacert`, see files.rs).
    pub ca: String,
    /// MUTUAL refuses clients without a certificate; OPTIONAL_MUTUAL lets
    /// them in (a certificate they do present must still verify).
    pub required: bool,
}

/// The user credential a downstream TLS socket presents, or `None` when it
/// presents the mesh certificate (see tls_context.rs).
pub fn server_credential(
    socket: &TransportSocket,
) -> Result<Option<ServerCredential>, Unsupported> {
    let Some(ConfigType::TypedConfig(any)) = &socket.config_type else {
        return Ok(None);
    };
    if any.type_url != DownstreamTlsContext::type_url() {
        return Ok(None);
    }
    let context = DownstreamTlsContext::decode(any.value.as_slice())
        .map_err(|_| Unsupported("undecodable TLS context"))?;
    let common = context.common_tls_context.unwrap_or_default();
    let Some(name) = credential_name(&common)? else {
        return Ok(None);
    };
    let required = context.require_client_certificate.is_some_and(|b| b.value);
    let client_auth = client_ca(&common)?.map(|ca| ClientAuth { ca, required });
    reject_if(
        required && client_auth.is_none(),
        "client certificates required without a CA",
    )?;
    Ok(Some(ServerCredential {
        name,
        alpn: common
            .alpn_protocols
            .iter()
            .map(|p| p.as_bytes().to_vec())
            .collect(),
        client_auth,
        params: TlsParams::compile(common.tls_params.as_ref())?,
    }))
}

fn credential_name(common: &CommonTlsContext) -> Result<Option<String>, Unsupported> {
    let names: Vec<&str> = common
        .tls_certificate_sds_secret_configs
        .iter()
        .map(|s| s.name.as_str())
        .collect();
    let [name] = names.as_slice() else {
        let credentials = names.iter().any(|n| n.starts_with(CREDENTIAL_PREFIX));
        reject_if(credentials, "more than one credential per filter chain")?;
        return Ok(None);
    };
    let Some(credential) = name.strip_prefix(CREDENTIAL_PREFIX) else {
        return Ok(None);
    };
    reject_if(
        !common.tls_certificates.is_empty(),
        "inline TLS certificates",
    )?;
    plain_name(credential).map(|()| Some(credential.to_owned()))
}

/// A credential is a directory name: nothing that could leave the
/// credentials directory.
fn plain_name(credential: &str) -> Result<(), Unsupported> {
    let valid = !credential.is_empty()
        && !credential.contains('/')
        && credential != "."
        && credential != "..";
    reject_if(!valid, "credential name that is not a plain name")
}

/// The CA secret clients are verified against: an SDS validation context
/// `kubernetes://NAME` with no inline settings.
fn client_ca(common: &CommonTlsContext) -> Result<Option<String>, Unsupported> {
    let (inline, sds) = match &common.validation_context_type {
        None => return Ok(None),
        Some(ValidationContextType::ValidationContextSdsSecretConfig(sds)) => (None, sds),
        Some(ValidationContextType::CombinedValidationContext(combined)) => (
            combined.default_validation_context.as_ref(),
            combined
                .validation_context_sds_secret_config
                .as_ref()
                .ok_or(Unsupported("combined validation context without SDS"))?,
        ),
        Some(_) => {
            return Err(Unsupported(
                "client validation other than an SDS credential",
            ));
        }
    };
    reject_if(
        inline.is_some_and(|v| *v != CertificateValidationContext::default()),
        "client validation with inline settings (SANs, hashes)",
    )?;
    let ca = sds
        .name
        .strip_prefix(CREDENTIAL_PREFIX)
        .ok_or(Unsupported("client CA that is not a credential"))?;
    plain_name(ca).map(|()| Some(ca.to_owned()))
}

#[cfg(test)]
mod tests;
