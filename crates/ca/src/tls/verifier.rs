//! Peer certificate verification for mesh mTLS: real chain validation to
//! the mesh root, then a SPIFFE identity check (trust domain, and on the
//! client side the expected workload) in place of a hostname check.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{WebPkiSupportedAlgorithms, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, OtherError, RootCertStore,
    SignatureScheme,
};

use super::{leaf_identity, verify_chain};
use crate::spiffe::SpiffeId;
use crate::trust_domains::TrustDomains;

/// Why a server that chains to the mesh root was still refused.
#[derive(Debug, thiserror::Error)]
pub enum PeerIdentityError {
    #[error("the peer certificate carries no SPIFFE identity")]
    Missing,
    #[error("peer identity {found} is outside the trusted trust domains {trusted:?}")]
    ForeignTrustDomain {
        found: SpiffeId,
        trusted: Vec<String>,
    },
    #[error("peer identity {found} is not one of the expected identities {expected:?}")]
    Unexpected {
        found: SpiffeId,
        expected: Vec<String>,
    },
}

#[derive(Debug)]
pub(super) struct MeshServerVerifier {
    roots: RootCertStore,
    trust: TrustDomains,
    /// Empty means any identity of `trust` issued under `roots`.
    expected_peers: Vec<SpiffeId>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl MeshServerVerifier {
    pub(super) fn new(
        roots: RootCertStore,
        trust: TrustDomains,
        expected_peers: Vec<SpiffeId>,
        algorithms: WebPkiSupportedAlgorithms,
    ) -> Self {
        MeshServerVerifier {
            roots,
            trust,
            expected_peers,
            algorithms,
        }
    }

    fn check_identity(&self, end_entity: &CertificateDer<'_>) -> Result<(), PeerIdentityError> {
        let found = trusted_identity(&self.trust, end_entity)?;
        if self.expected_peers.is_empty()
            || self
                .expected_peers
                .iter()
                .any(|expected| self.trust.is_equivalent(expected, &found))
        {
            return Ok(());
        }
        Err(PeerIdentityError::Unexpected {
            found,
            expected: self
                .expected_peers
                .iter()
                .map(ToString::to_string)
                .collect(),
        })
    }
}

impl ServerCertVerifier for MeshServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        verify_chain(&self.roots, end_entity, intermediates, now)?;
        self.check_identity(end_entity)
            .map_err(invalid_certificate)?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// The SPIFFE identity of `end_entity`, if it belongs to one of `trust`'s
/// trust domains.
fn trusted_identity(
    trust: &TrustDomains,
    end_entity: &CertificateDer<'_>,
) -> Result<SpiffeId, PeerIdentityError> {
    let found = leaf_identity(end_entity).ok_or(PeerIdentityError::Missing)?;
    if !trust.contains(&found.trust_domain) {
        return Err(PeerIdentityError::ForeignTrustDomain {
            found,
            trusted: trust.all(),
        });
    }
    Ok(found)
}

fn invalid_certificate(error: PeerIdentityError) -> rustls::Error {
    rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(error))))
}

/// Client certificate verification on the server side: the chain check of
/// `inner` (rustls's WebPKI verifier), then the client's trust domain, as
/// Istio validates it on inbound. Which workloads may call is left to
/// authorization policy.
#[derive(Debug)]
pub(super) struct MeshClientVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    trust: TrustDomains,
}

impl MeshClientVerifier {
    pub(super) fn new(inner: Arc<dyn ClientCertVerifier>, trust: TrustDomains) -> Self {
        MeshClientVerifier { inner, trust }
    }
}

impl ClientCertVerifier for MeshClientVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        trusted_identity(&self.trust, end_entity).map_err(invalid_certificate)?;
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
