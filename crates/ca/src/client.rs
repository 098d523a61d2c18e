//! The workload side of the certificate API: make a key and CSR locally,
//! have the CA sign it, and check what comes back before using it.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::{CertificateParams, DistinguishedName, KeyPair, PublicKeyData, SanType};
use rustls_pki_types::{CertificateDer, UnixTime};
use tonic::metadata::MetadataValue;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};
use x509_parser::extensions::GeneralName;

use crate::error::CaError;
use crate::proto::IstioCertificateRequest;
use crate::proto::istio_certificate_service_client::IstioCertificateServiceClient;
use crate::spiffe::SpiffeId;
use crate::tls;

/// The name the control plane's TLS certificate carries and clients verify,
/// as in Istio.
pub const CONTROL_PLANE_SERVER_NAME: &str = "istiod.istio-system.svc";

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// A workload's certificate and private key, checked against the mesh root.
#[derive(Clone)]
pub struct WorkloadCertificate {
    pub identity: SpiffeId,
    /// PEM certificates, leaf first.
    pub cert_chain_pem: Vec<String>,
    /// PKCS#8 PEM private key of the leaf.
    pub key_pem: String,
    /// PEM root certificate(s) that peers' certificates must chain to.
    pub root_pem: String,
    pub not_after: SystemTime,
}

impl fmt::Debug for WorkloadCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkloadCertificate")
            .field("identity", &self.identity)
            .field("not_after", &self.not_after)
            .field("key_pem", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// A private key generated in this process and the CSR for it. The key
/// stays here; only the CSR goes to the CA.
pub struct CertificateRequest {
    identity: SpiffeId,
    key: KeyPair,
    csr_pem: String,
}

impl CertificateRequest {
    /// Generates a fresh P-256 key and a CSR naming `identity`. (The CA
    /// decides the name from authentication anyway; asking for it keeps the
    /// CSR meaningful to other CAs, as Istio's agent does.)
    pub fn new(identity: &SpiffeId) -> Result<CertificateRequest, CaError> {
        identity.validate()?;
        let key =
            KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(CaError::Generation)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        let uri = identity
            .to_string()
            .try_into()
            .map_err(CaError::Generation)?;
        params.subject_alt_names = vec![SanType::URI(uri)];
        let csr_pem = params
            .serialize_request(&key)
            .and_then(|csr| csr.pem())
            .map_err(CaError::Generation)?;
        Ok(CertificateRequest {
            identity: identity.clone(),
            key,
            csr_pem,
        })
    }

    pub fn identity(&self) -> &SpiffeId {
        &self.identity
    }

    pub fn csr_pem(&self) -> &str {
        &self.csr_pem
    }

    /// Accepts the CA's answer only if the leaf certifies this request's
    /// key, carries exactly this identity as its one SAN, and chains to
    /// `root_pem`.
    pub fn into_certificate(
        self,
        cert_chain_pem: Vec<String>,
        root_pem: &str,
    ) -> Result<WorkloadCertificate, CaError> {
        let chain = tls::parse_certificates(&cert_chain_pem.concat())?;
        let (leaf, intermediates) = chain.split_first().ok_or_else(|| {
            CaError::UnacceptableCertificate("the certificate chain is empty".to_string())
        })?;
        let not_after = self.check_leaf(leaf)?;
        let roots = tls::root_store(root_pem)?;
        tls::verify_chain(&roots, leaf, intermediates, UnixTime::now()).map_err(|e| {
            CaError::UnacceptableCertificate(format!("does not chain to the mesh root: {e}"))
        })?;
        Ok(WorkloadCertificate {
            identity: self.identity,
            cert_chain_pem,
            key_pem: self.key.serialize_pem(),
            root_pem: root_pem.to_string(),
            not_after,
        })
    }

    /// Checks the leaf's key and names; returns its expiry.
    fn check_leaf(&self, leaf: &CertificateDer<'_>) -> Result<SystemTime, CaError> {
        let unacceptable = CaError::UnacceptableCertificate;
        let (_, cert) = x509_parser::parse_x509_certificate(leaf)
            .map_err(|e| unacceptable(format!("unparsable leaf: {e}")))?;
        if cert.public_key().raw != self.key.subject_public_key_info().as_slice() {
            return Err(unacceptable(
                "the leaf certifies a different key".to_string(),
            ));
        }
        let names = cert
            .subject_alternative_name()
            .map_err(|e| unacceptable(format!("bad SAN extension: {e}")))?
            .map(|san| san.value.general_names.clone())
            .unwrap_or_default();
        let expected = self.identity.to_string();
        if !matches!(names.as_slice(), [GeneralName::URI(uri)] if *uri == expected) {
            return Err(unacceptable(format!(
                "the leaf's SANs {names:?} are not exactly [{expected}]"
            )));
        }
        let expiry = u64::try_from(cert.validity().not_after.timestamp()).unwrap_or(0);
        Ok(UNIX_EPOCH + Duration::from_secs(expiry))
    }
}

/// Obtains a certificate for `identity` from the CA behind `channel`,
/// authenticating with `token`, and verifies it against `root_pem`.
pub async fn request_certificate(
    channel: Channel,
    token: &str,
    identity: &SpiffeId,
    root_pem: &str,
    ttl: Duration,
) -> Result<WorkloadCertificate, CaError> {
    let csr = CertificateRequest::new(identity)?;
    let mut request = tonic::Request::new(IstioCertificateRequest {
        csr: csr.csr_pem().to_string(),
        validity_duration: i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX),
        metadata: None,
    });
    let authorization = MetadataValue::try_from(format!("Bearer {token}"))
        .map_err(|_| CaError::InvalidBearerToken)?;
    request
        .metadata_mut()
        .insert("authorization", authorization);
    let response = IstioCertificateServiceClient::new(channel)
        .create_certificate(request)
        .await?;
    let certificate = csr.into_certificate(response.into_inner().cert_chain, root_pem)?;
    tracing::info!(identity = %certificate.identity, "obtained workload certificate");
    Ok(certificate)
}

/// A TLS channel to the CA at `address` (`host:port`) that trusts only
/// `root_pem` and expects the server name [`CONTROL_PLANE_SERVER_NAME`].
/// It connects on first use, so it must be created inside a Tokio runtime.
pub fn ca_channel(address: &str, root_pem: &str) -> Result<Channel, CaError> {
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(root_pem))
        .domain_name(CONTROL_PLANE_SERVER_NAME);
    let channel = Endpoint::from_shared(format!("https://{address}"))?
        .tls_config(tls)?
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(REQUEST_TIMEOUT)
        .connect_lazy();
    Ok(channel)
}
