//! Server certificate verification for mesh mTLS: real chain validation to
//! the mesh root, then a SPIFFE identity check in place of a hostname check.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{WebPkiSupportedAlgorithms, verify_tls12_signature, verify_tls13_signature};
use rustls::{CertificateError, DigitallySignedStruct, OtherError, RootCertStore, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use super::{leaf_identity, verify_chain};
use crate::spiffe::SpiffeId;

/// Why a server that chains to the mesh root was still refused.
#[derive(Debug, thiserror::Error)]
pub enum PeerIdentityError {
    #[error("the peer certificate carries no SPIFFE identity")]
    Missing,
    #[error("peer identity {found} is not one of the expected identities {expected:?}")]
    Unexpected {
        found: SpiffeId,
        expected: Vec<String>,
    },
}

#[derive(Debug)]
pub(super) struct MeshServerVerifier {
    roots: RootCertStore,
    /// Empty means any identity issued under `roots`.
    expected_peers: Vec<SpiffeId>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl MeshServerVerifier {
    pub(super) fn new(
        roots: RootCertStore,
        expected_peers: Vec<SpiffeId>,
        algorithms: WebPkiSupportedAlgorithms,
    ) -> Self {
        MeshServerVerifier {
            roots,
            expected_peers,
            algorithms,
        }
    }

    fn check_identity(&self, end_entity: &CertificateDer<'_>) -> Result<(), PeerIdentityError> {
        let found = leaf_identity(end_entity).ok_or(PeerIdentityError::Missing)?;
        if self.expected_peers.is_empty() || self.expected_peers.contains(&found) {
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
        self.check_identity(end_entity).map_err(|e| {
            rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(e))))
        })?;
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
