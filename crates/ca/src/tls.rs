//! rustls configurations for mesh mTLS between workloads, always on the
//! aws-lc-rs provider. Build them once per workload certificate and share
//! the returned `Arc` across connections.

mod verifier;

use std::sync::{Arc, OnceLock};

use rustls::client::verify_server_cert_signed_by_trust_anchor;
use rustls::crypto::CryptoProvider;
use rustls::server::{ParsedCertificate, WebPkiClientVerifier};
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use x509_parser::extensions::GeneralName;

use crate::client::WorkloadCertificate;
use crate::error::CaError;
use crate::spiffe::SpiffeId;

use crate::trust_domains::TrustDomains;
pub use verifier::PeerIdentityError;
use verifier::{MeshClientVerifier, MeshServerVerifier};

/// Server side of mesh mTLS: presents the workload certificate and requires
/// a client certificate that chains to the mesh root and names an identity
/// of the workload's own trust domain. Which identities may call is
/// authorization policy's job, using [`peer_identity`].
pub fn server_config(
    cert: &WorkloadCertificate,
    alpn: Vec<Vec<u8>>,
) -> Result<Arc<ServerConfig>, CaError> {
    let trust = TrustDomains::only(&cert.identity.trust_domain);
    server_config_trusting(cert, &trust, alpn)
}

/// [`server_config`] accepting clients of every trust domain in `trust`
/// (the mesh's and its aliases).
pub fn server_config_trusting(
    cert: &WorkloadCertificate,
    trust: &TrustDomains,
    alpn: Vec<Vec<u8>>,
) -> Result<Arc<ServerConfig>, CaError> {
    let provider = provider();
    let roots = Arc::new(root_store(&cert.root_pem)?);
    let chain_verifier =
        WebPkiClientVerifier::builder_with_provider(roots, provider.clone()).build()?;
    let client_verifier = MeshClientVerifier::new(chain_verifier, trust.clone());
    let (chain, key) = identity_material(cert)?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(Arc::new(client_verifier))
        .with_single_cert(chain, key)?;
    config.alpn_protocols = alpn;
    Ok(Arc::new(config))
}

/// Client side of mesh mTLS: presents the workload certificate and accepts
/// a server whose chain reaches the mesh root and whose SPIFFE identity is
/// one of `expected_peers` (any identity of the workload's trust domain if
/// empty). DNS names are not checked: mesh SNI values such as
/// `outbound_.9080_.v1_.reviews.default.svc.cluster.local` are routing keys,
/// not certificate names.
pub fn client_config(
    cert: &WorkloadCertificate,
    expected_peers: Vec<SpiffeId>,
    alpn: Vec<Vec<u8>>,
) -> Result<Arc<ClientConfig>, CaError> {
    let trust = TrustDomains::only(&cert.identity.trust_domain);
    client_config_trusting(cert, &trust, expected_peers, alpn)
}

/// [`client_config`] accepting servers of every trust domain in `trust`; an
/// expected peer also matches the same workload under another of them.
pub fn client_config_trusting(
    cert: &WorkloadCertificate,
    trust: &TrustDomains,
    expected_peers: Vec<SpiffeId>,
    alpn: Vec<Vec<u8>>,
) -> Result<Arc<ClientConfig>, CaError> {
    let provider = provider();
    let verifier = MeshServerVerifier::new(
        root_store(&cert.root_pem)?,
        trust.clone(),
        expected_peers,
        provider.signature_verification_algorithms,
    );
    let (chain, key) = identity_material(cert)?;
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_client_auth_cert(chain, key)?;
    config.alpn_protocols = alpn;
    Ok(Arc::new(config))
}

/// The SPIFFE identity in the leaf (first) certificate's URI SAN. `None`
/// if there is no leaf, or it does not carry exactly one URI SAN that is an
/// Istio SPIFFE ID.
pub fn peer_identity(certs: &[CertificateDer<'_>]) -> Option<SpiffeId> {
    leaf_identity(certs.first()?)
}

fn leaf_identity(leaf: &CertificateDer<'_>) -> Option<SpiffeId> {
    let (_, cert) = x509_parser::parse_x509_certificate(leaf).ok()?;
    let san = cert.subject_alternative_name().ok()??;
    let mut uris = san
        .value
        .general_names
        .iter()
        .filter_map(|name| match name {
            GeneralName::URI(uri) => Some(*uri),
            _ => None,
        });
    match (uris.next(), uris.next()) {
        (Some(uri), None) => uri.parse().ok(),
        _ => None,
    }
}

/// The aws-lc-rs provider, built once. Passed explicitly everywhere so the
/// crate never depends on a process-wide default provider.
fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .clone()
}

/// All certificates in `pem`, in order; at least one.
pub(crate) fn parse_certificates(pem: &str) -> Result<Vec<CertificateDer<'static>>, CaError> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| CaError::invalid_pem("certificate", e))?;
    if certs.is_empty() {
        return Err(CaError::invalid_pem(
            "certificate",
            "no CERTIFICATE block found",
        ));
    }
    Ok(certs)
}

/// A trust store holding every certificate in `root_pem`.
pub(crate) fn root_store(root_pem: &str) -> Result<RootCertStore, CaError> {
    let mut roots = RootCertStore::empty();
    for cert in parse_certificates(root_pem)? {
        roots
            .add(cert)
            .map_err(|e| CaError::invalid_pem("root certificate", e))?;
    }
    Ok(roots)
}

/// Full path validation of `leaf` to `roots` at `now` (signatures,
/// validity, CA constraints, serverAuth usage), with no name check.
pub(crate) fn verify_chain(
    roots: &RootCertStore,
    leaf: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
    now: UnixTime,
) -> Result<(), rustls::Error> {
    let parsed = ParsedCertificate::try_from(leaf)?;
    let algorithms = provider().signature_verification_algorithms;
    verify_server_cert_signed_by_trust_anchor(&parsed, roots, intermediates, now, algorithms.all)
}

fn identity_material(
    cert: &WorkloadCertificate,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), CaError> {
    let chain = parse_certificates(&cert.cert_chain_pem.concat())?;
    let key = PrivateKeyDer::from_pem_slice(cert.key_pem.as_bytes())
        .map_err(|e| CaError::invalid_pem("private key", e))?;
    Ok((chain, key))
}
