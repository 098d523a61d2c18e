//! The crate's error type.

use std::path::PathBuf;

use crate::spiffe::{SpiffeId, SpiffeIdError};

/// Everything that can go wrong while running the mesh CA or obtaining and
/// using a workload certificate.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    /// A file could not be read, written or created.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A CA file exists but cannot be used as it is.
    #[error("{}: {reason}", path.display())]
    InvalidCaFile { path: PathBuf, reason: String },

    /// The tokens file is malformed or inconsistent.
    #[error("{}: {reason}", path.display())]
    InvalidTokensFile { path: PathBuf, reason: String },

    /// The certificate signing request is unparsable or its signature is bad.
    #[error("invalid certificate signing request: {0}")]
    InvalidCsr(#[source] rcgen::Error),

    /// The identity is not a well-formed SPIFFE ID.
    #[error(transparent)]
    InvalidIdentity(#[from] SpiffeIdError),

    /// The CA only signs identities of its own trust domain.
    #[error("identity {identity} is outside this CA's trust domain {trust_domain:?}")]
    ForeignTrustDomain {
        identity: SpiffeId,
        trust_domain: String,
    },

    /// A serving certificate was requested without any DNS name or IP.
    #[error("a server certificate needs at least one DNS name or IP address")]
    NoSubjectAltNames,

    /// A certificate lifetime of zero was requested.
    #[error("certificate lifetime must be greater than zero")]
    ZeroTtl,

    /// rcgen failed to build or sign a certificate.
    #[error("certificate generation failed: {0}")]
    Generation(#[source] rcgen::Error),

    /// A PEM input held no usable certificate or key.
    #[error("invalid PEM {what}: {reason}")]
    InvalidPem { what: &'static str, reason: String },

    /// The bearer token cannot be sent as gRPC metadata (it is not visible
    /// ASCII). The token itself is never included in the message.
    #[error("the bearer token contains characters not allowed in gRPC metadata")]
    InvalidBearerToken,

    /// The CA returned a certificate the workload must not use.
    #[error("issued certificate rejected: {0}")]
    UnacceptableCertificate(String),

    /// Building a rustls configuration failed.
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),

    /// Building the client certificate verifier failed.
    #[error("TLS client verifier: {0}")]
    ClientVerifier(#[from] rustls::server::VerifierBuilderError),

    /// The gRPC channel to the CA could not be set up.
    #[error("CA transport: {0}")]
    Transport(#[from] tonic::transport::Error),

    /// The CA answered the certificate request with an error.
    #[error("CA refused the request: {}: {}", .0.code(), .0.message())]
    Rpc(#[from] tonic::Status),
}

impl CaError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        CaError::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn invalid_ca_file(path: impl Into<PathBuf>, reason: impl ToString) -> Self {
        CaError::InvalidCaFile {
            path: path.into(),
            reason: reason.to_string(),
        }
    }

    pub(crate) fn invalid_pem(what: &'static str, reason: impl ToString) -> Self {
        CaError::InvalidPem {
            what,
            reason: reason.to_string(),
        }
    }
}
