//! TLS origination to servers outside the mesh (a DestinationRule's SIMPLE
//! or MUTUAL `tls`): the server is verified against the user's CA file and,
//! when given, the names it may present (Envoy's SAN matchers; else the
//! SNI name, as Istio's automatic SAN validation does), or not at all with
//! `insecureSkipVerify`. A client certificate is presented for MUTUAL.
//! Files are read for each new connection, so a replaced CA or certificate
//! takes effect without a config push; a missing or bad file fails the
//! connection with an error naming it.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use envoy_types::pb::envoy::config::core::v3::{DataSource, data_source::Specifier};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    CertificateValidationContext, CommonTlsContext, common_tls_context::ValidationContextType,
    subject_alt_name_matcher::SanType,
};
use envoy_types::pb::envoy::r#type::matcher::v3::string_matcher::MatchPattern;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;

use crate::unsupported::{Unsupported, reject_if};

/// What a cluster's origination asks, as configured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origination {
    /// `None`: the server's certificate is not verified.
    pub ca: Option<PathBuf>,
    /// DNS names the server's certificate may carry; empty: the SNI name.
    pub subject_alt_names: Vec<String>,
    /// Certificate chain and key presented to the server (MUTUAL).
    pub client_certificate: Option<(PathBuf, PathBuf)>,
    /// ALPN offered, as the cluster's TLS context lists it.
    pub alpn: Vec<Vec<u8>>,
}

#[derive(Debug, thiserror::Error)]
pub enum OriginationError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: no usable PEM {what}")]
    Pem { path: PathBuf, what: &'static str },
    #[error("TLS origination: {0}")]
    Tls(#[from] rustls::Error),
    #[error("TLS origination: {0}")]
    Verifier(#[from] rustls::client::VerifierBuilderError),
    #[error("invalid subject alt name {0:?}")]
    SubjectAltName(String),
}

impl Origination {
    /// A client config for one new connection, from the files as they are now.
    pub fn client_config(&self) -> Result<Arc<ClientConfig>, OriginationError> {
        let provider = provider();
        let verifier: Arc<dyn ServerCertVerifier> = match &self.ca {
            Some(ca) => Arc::new(NameVerifier::new(ca, &self.subject_alt_names)?),
            None => Arc::new(AnyServer(provider.clone())),
        };
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let mut config = match &self.client_certificate {
            Some((chain, key)) => {
                builder.with_client_auth_cert(certificates(chain)?, private_key(key)?)?
            }
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = self.alpn.clone();
        Ok(Arc::new(config))
    }
}

fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .clone()
}

fn read(path: &Path) -> Result<Vec<u8>, OriginationError> {
    std::fs::read(path).map_err(|source| OriginationError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, OriginationError> {
    let pem = read(path)?;
    let certificates: Vec<_> = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<_, _>>()
        .map_err(|_| pem_error(path, "certificate"))?;
    if certificates.is_empty() {
        return Err(pem_error(path, "certificate"));
    }
    Ok(certificates)
}

fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, OriginationError> {
    PrivateKeyDer::from_pem_slice(&read(path)?).map_err(|_| pem_error(path, "private key"))
}

fn pem_error(path: &Path, what: &'static str) -> OriginationError {
    OriginationError::Pem {
        path: path.to_path_buf(),
        what,
    }
}

/// WebPKI chain verification against the user's CA, then the name check
/// against any of the allowed names (or the SNI name when none are given).
#[derive(Debug)]
struct NameVerifier {
    chain: Arc<WebPkiServerVerifier>,
    names: Vec<ServerName<'static>>,
}

impl NameVerifier {
    fn new(ca: &Path, names: &[String]) -> Result<NameVerifier, OriginationError> {
        let mut roots = RootCertStore::empty();
        for certificate in certificates(ca)? {
            roots.add(certificate)?;
        }
        let chain =
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider()).build()?;
        let names = names
            .iter()
            .map(|name| {
                ServerName::try_from(name.clone())
                    .map_err(|_| OriginationError::SubjectAltName(name.clone()))
            })
            .collect::<Result<_, _>>()?;
        Ok(NameVerifier { chain, names })
    }
}

impl ServerCertVerifier for NameVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verify = |name: &ServerName<'_>| {
            self.chain
                .verify_server_cert(end_entity, intermediates, name, ocsp_response, now)
        };
        if self.names.is_empty() {
            return verify(server_name);
        }
        let mut outcome = Err(rustls::Error::General("no subject alt name".into()));
        for name in &self.names {
            outcome = verify(name);
            if outcome.is_ok() {
                break;
            }
        }
        outcome
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.chain.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.chain.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.chain.supported_verify_schemes()
    }
}

/// `insecureSkipVerify`: any certificate is accepted, but the handshake's
/// signatures are still checked (the key exchange stays authentic to
/// whoever holds the presented key).
#[derive(Debug)]
struct AnyServer(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyServer {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The origination a user's upstream TLS context asks for: files only
/// (SDS credentials are served to gateways, not to sidecars).
pub fn compile(common: &CommonTlsContext) -> Result<Origination, Unsupported> {
    reject_if(
        !common.tls_certificate_sds_secret_configs.is_empty(),
        "TLS origination with an SDS certificate (credentialName): use clientCertificate and privateKey files",
    )?;
    reject_if(
        common.tls_certificates.len() > 1,
        "more than one client certificate",
    )?;
    reject_if(common.tls_params.is_some(), "upstream tls_params")?;
    let client_certificate = match common.tls_certificates.first() {
        Some(certificate) => Some((
            filename(certificate.certificate_chain.as_ref())?,
            filename(certificate.private_key.as_ref())?,
        )),
        None => None,
    };
    let (ca, subject_alt_names) = match &common.validation_context_type {
        None => (None, Vec::new()),
        Some(ValidationContextType::ValidationContext(validation)) => validation_of(validation)?,
        Some(_) => {
            return Err(Unsupported(
                "TLS origination with an SDS CA (credentialName): use caCertificates",
            ));
        }
    };
    Ok(Origination {
        ca,
        subject_alt_names,
        client_certificate,
        alpn: common
            .alpn_protocols
            .iter()
            .map(|p| p.as_bytes().to_vec())
            .collect(),
    })
}

fn validation_of(
    validation: &CertificateValidationContext,
) -> Result<(Option<PathBuf>, Vec<String>), Unsupported> {
    let rest = CertificateValidationContext {
        trusted_ca: None,
        match_typed_subject_alt_names: Vec::new(),
        ..validation.clone()
    };
    reject_if(
        rest != CertificateValidationContext::default(),
        "validation context fields other than trusted_ca and match_typed_subject_alt_names",
    )?;
    let ca = filename(validation.trusted_ca.as_ref())?;
    let names = validation
        .match_typed_subject_alt_names
        .iter()
        .map(|san| {
            let pattern = san.matcher.as_ref().and_then(|m| m.match_pattern.as_ref());
            match (SanType::try_from(san.san_type), pattern) {
                (Ok(SanType::Dns), Some(MatchPattern::Exact(name))) => Ok(name.clone()),
                _ => Err(Unsupported("SAN matcher other than an exact DNS name")),
            }
        })
        .collect::<Result<_, _>>()?;
    Ok((Some(ca), names))
}

fn filename(source: Option<&DataSource>) -> Result<PathBuf, Unsupported> {
    match source.and_then(|s| s.specifier.as_ref()) {
        Some(Specifier::Filename(path)) if !path.is_empty() => Ok(PathBuf::from(path)),
        _ => Err(Unsupported("TLS origination data other than a file name")),
    }
}

#[cfg(test)]
mod tests;
