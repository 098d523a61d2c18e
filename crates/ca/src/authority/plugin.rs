//! Plug-in CA: an intermediate certificate and key provided by the operator
//! in Istio's `cacerts` layout, signing under an offline root.

use std::fs;
use std::path::Path;

use rustls_pki_types::UnixTime;

use super::{MeshCa, ROOT_CERT_FILE, load_signer, not_after};
use crate::error::CaError;
use crate::tls::{parse_certificates, root_store, verify_chain};

/// The intermediate CA certificate that signs workload certificates.
pub const CA_CERT_FILE: &str = "ca-cert.pem";
/// The intermediate's private key.
pub const CA_KEY_FILE: &str = "ca-key.pem";
/// The intermediate, then any further intermediates up to the root: what
/// follows the leaf in every issued chain.
pub const CERT_CHAIN_FILE: &str = "cert-chain.pem";

/// A name no workload can hold, for the certificate issued to check that
/// the plug-in chain validates before any workload depends on it.
const PROBE_NAME: &str = "trellis-cacerts-check.invalid";

impl MeshCa {
    /// Loads a plug-in CA from `dir` in Istio's `cacerts` layout
    /// (`ca-cert.pem`, `ca-key.pem`, `cert-chain.pem`, `root-cert.pem`).
    ///
    /// Refuses to start unless `ca-cert.pem` is a CA certificate matching
    /// `ca-key.pem`, `cert-chain.pem` starts with it, and a certificate it
    /// signs validates to `root-cert.pem` through `cert-chain.pem`, which is
    /// exactly what every workload will check.
    pub fn from_plugin_dir(dir: &Path, trust_domain: &str) -> Result<MeshCa, CaError> {
        let root_path = dir.join(ROOT_CERT_FILE);
        let chain_path = dir.join(CERT_CHAIN_FILE);
        let cert_path = dir.join(CA_CERT_FILE);
        let root_pem = read(&root_path)?;
        let roots = root_store(&root_pem).map_err(|e| CaError::invalid_ca_file(&root_path, e))?;
        let root_not_after = first_not_after(&root_pem)
            .map_err(|reason| CaError::invalid_ca_file(&root_path, reason))?;
        let chain_pem = read(&chain_path)?;
        let chain =
            parse_certificates(&chain_pem).map_err(|e| CaError::invalid_ca_file(&chain_path, e))?;
        let cert_pem = read(&cert_path)?;
        let signer = load_signer(&cert_path, &cert_pem, &dir.join(CA_KEY_FILE))?;
        if parse_certificates(&cert_pem)? != chain[..1] {
            return Err(CaError::invalid_ca_file(
                &chain_path,
                format!("does not start with {CA_CERT_FILE}"),
            ));
        }

        let ca = MeshCa {
            trust_domain: trust_domain.to_string(),
            chain_tail: vec![chain_pem, root_pem.clone()],
            root_cert_pem: root_pem,
            signer_not_after: signer.not_after,
            root_not_after,
            has_plugin_chain: true,
            issuer: signer.issuer,
        };
        let (probe_pem, _) = ca.issue_server_cert(&[PROBE_NAME.to_string()], &[])?;
        let probe = parse_certificates(&probe_pem)?;
        verify_chain(&roots, &probe[0], &chain, UnixTime::now()).map_err(|e| {
            CaError::invalid_ca_file(
                &cert_path,
                format!("does not chain to {ROOT_CERT_FILE} through {CERT_CHAIN_FILE}: {e}"),
            )
        })?;
        tracing::info!(dir = %dir.display(), trust_domain, "plug-in CA loaded");
        Ok(ca)
    }
}

/// The expiry of the first certificate in `pem` (Istio reports the first
/// root of a bundle).
fn first_not_after(pem: &str) -> Result<std::time::SystemTime, String> {
    let certs = parse_certificates(pem).map_err(|e| e.to_string())?;
    let (_, first) = x509_parser::parse_x509_certificate(&certs[0])
        .map_err(|e| format!("not an X.509 certificate: {e}"))?;
    Ok(not_after(&first))
}

fn read(path: &Path) -> Result<String, CaError> {
    fs::read_to_string(path).map_err(|e| CaError::io(path, e))
}
