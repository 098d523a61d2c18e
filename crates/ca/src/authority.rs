//! The mesh certificate authority: a self-signed root kept on disk, which
//! signs workload certificates and the control plane's own TLS certificate.

use std::fs;
use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rand::RngCore;
use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, PublicKeyData,
    SanType, SerialNumber,
};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use crate::error::CaError;
use crate::files::write_atomically;
use crate::spiffe::SpiffeId;

/// File name of the root certificate inside the CA directory.
pub const ROOT_CERT_FILE: &str = "root-cert.pem";
/// File name of the root private key inside the CA directory (mode 0600).
pub const ROOT_KEY_FILE: &str = "root-key.pem";
/// Workload certificate lifetime when the caller does not ask for one
/// (Istio's default).
pub const DEFAULT_WORKLOAD_TTL: Duration = Duration::from_secs(24 * 3600);
/// Longest workload certificate lifetime the CA grants, whatever is asked.
pub const MAX_WORKLOAD_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
/// Lifetime of the control plane's own serving certificate. The control
/// plane has no rotation loop for it, so it outlives any realistic uptime.
pub const SERVER_CERT_TTL: Duration = Duration::from_secs(365 * 24 * 3600);

const ROOT_COMMON_NAME: &str = "Trellis mesh root";
const ROOT_TTL: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// Certificates start a minute in the past so that peers whose clocks lag
/// slightly still accept them.
const CLOCK_SKEW_ALLOWANCE: Duration = Duration::from_secs(60);

/// The mesh CA. Cheap to share behind an `Arc`; signing takes `&self`.
pub struct MeshCa {
    trust_domain: String,
    root_cert_pem: String,
    /// What follows the leaf in every issued chain, as Istio returns it:
    /// `[root]` for a self-signed root, `[cert-chain.pem, root-cert.pem]`
    /// for a plug-in intermediate.
    chain_tail: Vec<String>,
    /// Issued certificates never outlive the certificate that signs them.
    signer_not_after: SystemTime,
    /// When the (first) root workloads trust expires.
    root_not_after: SystemTime,
    /// A plug-in CA's intermediate signs under an offline root; a
    /// self-signed root has no chain of its own.
    has_plugin_chain: bool,
    issuer: Issuer<'static, KeyPair>,
}

impl std::fmt::Debug for MeshCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MeshCa")
            .field("trust_domain", &self.trust_domain)
            .field("signer_not_after", &self.signer_not_after)
            .finish_non_exhaustive()
    }
}

impl MeshCa {
    /// Loads the root from `dir`, or creates it there on first start.
    ///
    /// If only one of the two files exists the CA refuses to start rather
    /// than replace a root that workloads may already trust.
    pub fn load_or_create(dir: &Path, trust_domain: &str) -> Result<MeshCa, CaError> {
        fs::create_dir_all(dir).map_err(|e| CaError::io(dir, e))?;
        let cert_path = dir.join(ROOT_CERT_FILE);
        let key_path = dir.join(ROOT_KEY_FILE);
        let cert_exists = cert_path
            .try_exists()
            .map_err(|e| CaError::io(&cert_path, e))?;
        let key_exists = key_path
            .try_exists()
            .map_err(|e| CaError::io(&key_path, e))?;
        match (cert_exists, key_exists) {
            (true, true) => {}
            (false, false) => create_root(&cert_path, &key_path, trust_domain)?,
            (true, false) => return Err(lone_file(&key_path, ROOT_CERT_FILE)),
            (false, true) => return Err(lone_file(&cert_path, ROOT_KEY_FILE)),
        }
        let ca = load_root(&cert_path, &key_path, trust_domain)?;
        tracing::info!(dir = %dir.display(), trust_domain, "mesh CA root loaded");
        Ok(ca)
    }

    /// The root certificate workloads must trust, PEM-encoded.
    pub fn root_cert_pem(&self) -> &str {
        &self.root_cert_pem
    }

    /// The trust domain whose identities this CA signs.
    pub fn trust_domain(&self) -> &str {
        &self.trust_domain
    }

    /// When the root certificate expires (the first one, when the root
    /// file holds several).
    pub fn root_cert_expiry(&self) -> SystemTime {
        self.root_not_after
    }

    /// When a plug-in CA's signing certificate (`ca-cert.pem`, the head of
    /// `cert-chain.pem`) expires; `None` for a self-signed root, which
    /// signs directly.
    pub fn cert_chain_expiry(&self) -> Option<SystemTime> {
        self.has_plugin_chain.then_some(self.signer_not_after)
    }

    /// Signs a workload certificate for `identity` over the public key in
    /// `csr_pem`, returning the chain as PEM (Istio's `cert_chain`): the
    /// leaf, then the intermediates of a plug-in CA, then the root.
    ///
    /// Only the CSR's public key is used: its subject and SANs are ignored,
    /// because the identity must come from authentication, never from what
    /// the caller asks for. `ttl` is capped at [`MAX_WORKLOAD_TTL`].
    pub fn sign_workload_csr(
        &self,
        csr_pem: &str,
        identity: &SpiffeId,
        ttl: Duration,
    ) -> Result<Vec<String>, CaError> {
        self.check_identity(identity)?;
        if ttl.is_zero() {
            return Err(CaError::ZeroTtl);
        }
        // from_pem also verifies the CSR's self-signature, proving that the
        // caller holds the private key.
        let csr =
            CertificateSigningRequestParams::from_pem(csr_pem).map_err(CaError::InvalidCsr)?;
        let uri = SanType::URI(
            identity
                .to_string()
                .try_into()
                .map_err(CaError::Generation)?,
        );
        let mut params = self.leaf_params(vec![uri], ttl.min(MAX_WORKLOAD_TTL));
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let request = CertificateSigningRequestParams {
            params,
            public_key: csr.public_key,
        };
        let leaf = request
            .signed_by(&self.issuer)
            .map_err(CaError::Generation)?;
        let mut chain = Vec::with_capacity(1 + self.chain_tail.len());
        chain.push(leaf.pem());
        chain.extend(self.chain_tail.iter().cloned());
        Ok(chain)
    }

    /// Issues the control plane's own serving certificate (port 15012) with
    /// a fresh P-256 key. Returns `(chain PEM, key PEM)`, the chain ordered
    /// as for workloads.
    pub fn issue_server_cert(
        &self,
        dns_names: &[String],
        ips: &[IpAddr],
    ) -> Result<(String, String), CaError> {
        if dns_names.is_empty() && ips.is_empty() {
            return Err(CaError::NoSubjectAltNames);
        }
        let mut sans = Vec::with_capacity(dns_names.len() + ips.len());
        for name in dns_names {
            sans.push(SanType::DnsName(
                name.clone().try_into().map_err(CaError::Generation)?,
            ));
        }
        sans.extend(ips.iter().copied().map(SanType::IpAddress));
        let mut params = self.leaf_params(sans, SERVER_CERT_TTL);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];

        let key =
            KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(CaError::Generation)?;
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(CaError::Generation)?;
        let chain = format!("{}{}", cert.pem(), self.chain_tail.concat());
        Ok((chain, key.serialize_pem()))
    }

    fn check_identity(&self, identity: &SpiffeId) -> Result<(), CaError> {
        identity.validate()?;
        if identity.trust_domain != self.trust_domain {
            return Err(CaError::ForeignTrustDomain {
                identity: identity.clone(),
                trust_domain: self.trust_domain.clone(),
            });
        }
        Ok(())
    }

    /// Parameters shared by every end-entity certificate: empty subject
    /// (names live in the SAN, as in Istio), not a CA, random serial, and a
    /// lifetime that never outlasts the signing certificate.
    fn leaf_params(&self, subject_alt_names: Vec<SanType>, ttl: Duration) -> CertificateParams {
        let now = SystemTime::now();
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params.subject_alt_names = subject_alt_names;
        params.is_ca = IsCa::ExplicitNoCa;
        params.use_authority_key_identifier_extension = true;
        params.serial_number = Some(random_serial());
        params.not_before = (now - CLOCK_SKEW_ALLOWANCE).into();
        params.not_after = (now + ttl).min(self.signer_not_after).into();
        params
    }
}

fn lone_file(missing: &Path, present: &str) -> CaError {
    CaError::invalid_ca_file(
        missing,
        format!("missing while {present} exists; refusing to replace an existing root"),
    )
}

fn create_root(cert_path: &Path, key_path: &Path, trust_domain: &str) -> Result<(), CaError> {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(CaError::Generation)?;
    let now = SystemTime::now();
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, ROOT_COMMON_NAME);
    params
        .distinguished_name
        .push(DnType::OrganizationName, trust_domain);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.serial_number = Some(random_serial());
    params.not_before = (now - CLOCK_SKEW_ALLOWANCE).into();
    params.not_after = (now + ROOT_TTL).into();
    let cert = params.self_signed(&key).map_err(CaError::Generation)?;

    // Key first: a crash in between leaves a lone key, which the next start
    // reports instead of silently minting a second root.
    write_atomically(key_path, key.serialize_pem().as_bytes(), 0o600)?;
    write_atomically(cert_path, cert.pem().as_bytes(), 0o644)?;
    tracing::info!(path = %cert_path.display(), trust_domain, "created a new mesh root CA");
    Ok(())
}

fn load_root(cert_path: &Path, key_path: &Path, trust_domain: &str) -> Result<MeshCa, CaError> {
    let cert_pem = fs::read_to_string(cert_path).map_err(|e| CaError::io(cert_path, e))?;
    let signer = load_signer(cert_path, &cert_pem, key_path)?;
    Ok(MeshCa {
        trust_domain: trust_domain.to_string(),
        chain_tail: vec![cert_pem.clone()],
        root_cert_pem: cert_pem,
        signer_not_after: signer.not_after,
        // The root signs: it is its own signer.
        root_not_after: signer.not_after,
        has_plugin_chain: false,
        issuer: signer.issuer,
    })
}

/// A CA certificate and its private key, checked to belong together.
struct Signer {
    issuer: Issuer<'static, KeyPair>,
    not_after: SystemTime,
}

/// Loads the signing certificate in `cert_pem` (read from `cert_path`) and
/// its key from `key_path`: exactly one certificate, a CA, valid now, and
/// certifying that key. Errors name the file at fault.
fn load_signer(cert_path: &Path, cert_pem: &str, key_path: &Path) -> Result<Signer, CaError> {
    let key_pem = fs::read_to_string(key_path).map_err(|e| CaError::io(key_path, e))?;
    let cert_der =
        single_certificate(cert_pem).map_err(|r| CaError::invalid_ca_file(cert_path, r))?;
    let key = KeyPair::from_pem(&key_pem).map_err(|e| {
        CaError::invalid_ca_file(key_path, format!("not a usable private key: {e}"))
    })?;

    let (_, cert) = x509_parser::parse_x509_certificate(&cert_der).map_err(|e| {
        CaError::invalid_ca_file(cert_path, format!("not an X.509 certificate: {e}"))
    })?;
    if !cert.is_ca() {
        return Err(CaError::invalid_ca_file(cert_path, "not a CA certificate"));
    }
    if cert.validity().time_to_expiration().is_none() {
        return Err(CaError::invalid_ca_file(
            cert_path,
            "the CA certificate is not valid now (expired or not yet valid)",
        ));
    }
    if cert.public_key().raw != key.subject_public_key_info().as_slice() {
        let cert_name = cert_path.file_name().unwrap_or_default().to_string_lossy();
        return Err(CaError::invalid_ca_file(
            key_path,
            format!("does not match the public key in {cert_name}"),
        ));
    }
    let not_after = not_after(&cert);
    let issuer = Issuer::from_ca_cert_der(&cert_der, key)
        .map_err(|e| CaError::invalid_ca_file(cert_path, e))?;
    Ok(Signer { issuer, not_after })
}

/// When `cert` expires.
fn not_after(cert: &x509_parser::certificate::X509Certificate<'_>) -> SystemTime {
    UNIX_EPOCH
        + Duration::from_secs(u64::try_from(cert.validity().not_after.timestamp()).unwrap_or(0))
}

/// The one certificate in a PEM file; more than one is ambiguous for a root.
fn single_certificate(pem: &str) -> Result<CertificateDer<'static>, String> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("invalid PEM: {e}"))?;
    match <[_; 1]>::try_from(certs) {
        Ok([cert]) => Ok(cert),
        Err(certs) => Err(format!(
            "expected exactly one certificate, found {}",
            certs.len()
        )),
    }
}

/// A random positive 128-bit serial, so that two certificates for the same
/// key never share one.
fn random_serial() -> SerialNumber {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    bytes[0] &= 0x7f;
    SerialNumber::from_slice(&bytes)
}

mod plugin;

pub use plugin::{CA_CERT_FILE, CA_KEY_FILE, CERT_CHAIN_FILE};

#[cfg(test)]
mod tests;
