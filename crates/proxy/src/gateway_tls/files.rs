//! Credentials as files, local mode's stand-in for Kubernetes Secrets:
//! `DIR/NAME/tls.crt` (the chain, leaf first) and `DIR/NAME/tls.key`; a
//! mutual server's client CA `NAME-cacert` is `DIR/NAME-cacert/ca.crt`
//! or, as Istio also accepts, `ca.crt` in the server credential's own
//! directory, with an optional revocation list `ca.crl` beside it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::SystemTime;

use rustls::ServerConfig;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};

use super::{ClientAuth, ServerCredential};

const CERTIFICATE_FILE: &str = "tls.crt";
const KEY_FILE: &str = "tls.key";
const CA_FILE: &str = "ca.crt";
const CRL_FILE: &str = "ca.crl";
/// Istio's suffix naming the CA of credential `NAME`: `NAME-cacert`.
const CA_SUFFIX: &str = "-cacert";

/// Why a credential cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error("credential {0:?}: the proxy has no --credentials-dir")]
    NoDirectory(String),
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Pem { path: PathBuf, message: String },
    #[error("credential {name:?}: {source}")]
    Tls { name: String, source: rustls::Error },
    #[error("client CA of credential {name:?}: {source}")]
    ClientCa {
        name: String,
        source: rustls::server::VerifierBuilderError,
    },
}

/// Server configurations built from credential files, rebuilt when a file
/// changes.
#[derive(Default)]
pub struct Credentials {
    dir: OnceLock<PathBuf>,
    loaded: Mutex<HashMap<ServerCredential, Loaded>>,
}

/// The files a configuration was built from, with their modification times
/// (`None`: an optional file that was absent).
#[derive(PartialEq, Eq)]
struct Sources {
    files: Vec<(PathBuf, Option<SystemTime>)>,
}

struct Loaded {
    sources: Sources,
    config: Arc<ServerConfig>,
}

/// Where each file of a credential is.
struct Paths {
    certificate: PathBuf,
    key: PathBuf,
    /// The client CA and its optional CRL.
    client_ca: Option<(PathBuf, PathBuf)>,
}

impl Credentials {
    /// Where credentials are read from; set once, at startup.
    pub fn set_dir(&self, dir: PathBuf) {
        let _ = self.dir.set(dir);
    }

    /// The server configuration presenting `credential`, from its files
    /// as they are now.
    pub fn server_config(
        &self,
        credential: &ServerCredential,
    ) -> Result<Arc<ServerConfig>, CredentialError> {
        let dir = self
            .dir
            .get()
            .ok_or_else(|| CredentialError::NoDirectory(credential.name.clone()))?;
        let paths = paths(dir, credential);
        let sources = sources(&paths)?;
        let mut loaded = self.loaded.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(current) = loaded.get(credential)
            && current.sources == sources
        {
            return Ok(current.config.clone());
        }
        let config = build(credential, &paths)?;
        loaded.insert(
            credential.clone(),
            Loaded {
                sources,
                config: config.clone(),
            },
        );
        Ok(config)
    }
}

fn paths(dir: &Path, credential: &ServerCredential) -> Paths {
    let own = dir.join(&credential.name);
    let client_ca = credential.client_auth.as_ref().map(|auth| {
        let ca_dir = ca_dir(dir, auth);
        (ca_dir.join(CA_FILE), ca_dir.join(CRL_FILE))
    });
    Paths {
        certificate: own.join(CERTIFICATE_FILE),
        key: own.join(KEY_FILE),
        client_ca,
    }
}

/// `NAME-cacert/` when it holds a CA, else `NAME/` (the CA in the server
/// credential itself, Istio's other layout).
fn ca_dir(dir: &Path, auth: &ClientAuth) -> PathBuf {
    let separate = dir.join(&auth.ca);
    match auth.ca.strip_suffix(CA_SUFFIX) {
        Some(server) if !separate.join(CA_FILE).exists() => dir.join(server),
        _ => separate,
    }
}

fn sources(paths: &Paths) -> Result<Sources, CredentialError> {
    let mut files = vec![
        (
            paths.certificate.clone(),
            Some(modified(&paths.certificate)?),
        ),
        (paths.key.clone(), Some(modified(&paths.key)?)),
    ];
    if let Some((ca, crl)) = &paths.client_ca {
        files.push((ca.clone(), Some(modified(ca)?)));
        files.push((crl.clone(), modified(crl).ok()));
    }
    Ok(Sources { files })
}

fn modified(path: &Path) -> Result<SystemTime, CredentialError> {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .map_err(|source| CredentialError::Read {
            path: path.to_path_buf(),
            source,
        })
}

fn read(path: &Path) -> Result<Vec<u8>, CredentialError> {
    std::fs::read(path).map_err(|source| CredentialError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn pem_error(path: &Path, message: String) -> CredentialError {
    CredentialError::Pem {
        path: path.to_path_buf(),
        message,
    }
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, CredentialError> {
    let certificates = CertificateDer::pem_slice_iter(&read(path)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(path, e.to_string()))?;
    if certificates.is_empty() {
        return Err(pem_error(path, "no certificate".to_owned()));
    }
    Ok(certificates)
}

fn build(
    credential: &ServerCredential,
    paths: &Paths,
) -> Result<Arc<ServerConfig>, CredentialError> {
    let chain = certificates(&paths.certificate)?;
    let key = PrivateKeyDer::from_pem_slice(&read(&paths.key)?)
        .map_err(|e| pem_error(&paths.key, format!("no private key: {e}")))?;
    let tls_error = |source| CredentialError::Tls {
        name: credential.name.clone(),
        source,
    };
    let provider = Arc::new(credential.params.provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&credential.params.versions())
        .map_err(tls_error)?;
    let builder = match (&credential.client_auth, &paths.client_ca) {
        (Some(auth), Some((ca, crl))) => {
            let verifier = client_verifier(credential, auth, ca, crl, provider)?;
            builder.with_client_cert_verifier(verifier)
        }
        _ => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(chain, key).map_err(tls_error)?;
    config.alpn_protocols = credential.alpn.clone();
    Ok(Arc::new(config))
}

fn client_verifier(
    credential: &ServerCredential,
    auth: &ClientAuth,
    ca: &Path,
    crl: &Path,
    provider: Arc<rustls::crypto::CryptoProvider>,
) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>, CredentialError> {
    let mut roots = rustls::RootCertStore::empty();
    for certificate in certificates(ca)? {
        roots
            .add(certificate)
            .map_err(|e| pem_error(ca, e.to_string()))?;
    }
    let crls = if crl.exists() {
        CertificateRevocationListDer::pem_slice_iter(&read(crl)?)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| pem_error(crl, e.to_string()))?
    } else {
        Vec::new()
    };
    let mut builder =
        WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider).with_crls(crls);
    if !auth.required {
        builder = builder.allow_unauthenticated();
    }
    builder.build().map_err(|source| CredentialError::ClientCa {
        name: credential.name.clone(),
        source,
    })
}

#[cfg(test)]
mod tests;
