use std::os::unix::fs::PermissionsExt;

use rcgen::{CertificateParams, KeyPair};
use rustls_pki_types::UnixTime;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::X509Certificate;

use super::*;
use crate::tls::{parse_certificates, root_store, verify_chain};

const TD: &str = "cluster.local";

fn new_ca() -> (tempfile::TempDir, MeshCa) {
    let dir = tempfile::tempdir().unwrap();
    let ca = MeshCa::load_or_create(dir.path(), TD).unwrap();
    (dir, ca)
}

fn reviews() -> SpiffeId {
    SpiffeId::new(TD, "default", "bookinfo-reviews")
}

fn csr_asking_for(names: Vec<SanType>, ask_for_ca: bool) -> String {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, "admin");
    params.subject_alt_names = names;
    if ask_for_ca {
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    }
    params.serialize_request(&key).unwrap().pem().unwrap()
}

/// Parses the single leaf in `chain[0]` and hands it to `check`.
fn with_leaf<R>(chain_pem: &str, check: impl FnOnce(&X509Certificate<'_>) -> R) -> R {
    let ders = parse_certificates(chain_pem).unwrap();
    let (_, leaf) = x509_parser::parse_x509_certificate(&ders[0]).unwrap();
    check(&leaf)
}

fn san_names(cert: &X509Certificate<'_>) -> Vec<String> {
    cert.subject_alternative_name()
        .unwrap()
        .map(|san| san.value.general_names.iter().map(describe_name).collect())
        .unwrap_or_default()
}

fn describe_name(name: &GeneralName<'_>) -> String {
    match name {
        GeneralName::URI(uri) => format!("URI:{uri}"),
        GeneralName::DNSName(dns) => format!("DNS:{dns}"),
        GeneralName::IPAddress([a, b, c, d]) => format!("IP:{a}.{b}.{c}.{d}"),
        other => format!("{other:?}"),
    }
}

#[test]
fn create_then_reload_keeps_the_root_and_a_private_key() {
    let (dir, first) = new_ca();
    let key_mode = fs::metadata(dir.path().join(ROOT_KEY_FILE))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(key_mode & 0o777, 0o600);

    let reloaded = MeshCa::load_or_create(dir.path(), TD).unwrap();
    assert_eq!(first.root_cert_pem(), reloaded.root_cert_pem());
    assert_eq!(reloaded.trust_domain(), TD);

    // The reloaded key is the root's key: what it signs chains to the root.
    let (chain, _) = reloaded
        .issue_server_cert(&["istiod.istio-system.svc".to_string()], &[])
        .unwrap();
    let ders = parse_certificates(&chain).unwrap();
    let roots = root_store(first.root_cert_pem()).unwrap();
    verify_chain(&roots, &ders[0], &ders[1..], UnixTime::now()).unwrap();

    with_leaf(first.root_cert_pem(), |root| {
        assert!(root.is_ca());
        let subject = root.subject().to_string();
        assert!(subject.contains("CN=Trellis mesh root"), "{subject}");
        assert!(subject.contains("O=cluster.local"), "{subject}");
    });
}

#[test]
fn a_key_that_does_not_match_the_root_is_reported_by_file() {
    let (dir, _) = new_ca();
    let (other_dir, _) = new_ca();
    fs::copy(
        other_dir.path().join(ROOT_KEY_FILE),
        dir.path().join(ROOT_KEY_FILE),
    )
    .unwrap();
    let err = MeshCa::load_or_create(dir.path(), TD).unwrap_err();
    assert!(
        matches!(err, CaError::InvalidCaFile { ref path, .. } if path.ends_with(ROOT_KEY_FILE)),
        "{err}"
    );
}

#[test]
fn damaged_or_missing_files_are_reported_by_file() {
    let (dir, _) = new_ca();
    fs::write(dir.path().join(ROOT_CERT_FILE), "not a certificate").unwrap();
    let err = MeshCa::load_or_create(dir.path(), TD).unwrap_err();
    assert!(err.to_string().contains(ROOT_CERT_FILE), "{err}");

    fs::remove_file(dir.path().join(ROOT_CERT_FILE)).unwrap();
    let err = MeshCa::load_or_create(dir.path(), TD).unwrap_err();
    assert!(err.to_string().contains(ROOT_CERT_FILE), "{err}");
    assert!(
        dir.path().join(ROOT_KEY_FILE).exists(),
        "the lone key must be kept"
    );
}

#[test]
fn a_forged_csr_gets_only_the_authenticated_identity() {
    let (_dir, ca) = new_ca();
    let forged = csr_asking_for(
        vec![
            SanType::URI(
                "spiffe://cluster.local/ns/istio-system/sa/istiod"
                    .try_into()
                    .unwrap(),
            ),
            SanType::DnsName("evil.example.com".try_into().unwrap()),
        ],
        true,
    );
    let chain = ca
        .sign_workload_csr(&forged, &reviews(), Duration::from_secs(3600))
        .unwrap();
    assert_eq!(chain.len(), 2);
    assert_eq!(chain[1], ca.root_cert_pem());
    with_leaf(&chain[0], |leaf| {
        assert_eq!(san_names(leaf), vec![format!("URI:{}", reviews())]);
        assert_eq!(
            leaf.subject().to_string(),
            "",
            "subject must not come from the CSR"
        );
        assert!(!leaf.is_ca());
        let usage = leaf.key_usage().unwrap().unwrap().value;
        assert!(usage.digital_signature() && usage.key_encipherment());
        assert!(!usage.key_cert_sign());
        let eku = leaf.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.server_auth && eku.client_auth);
    });
}

/// Changes one base64 character about 15 bytes before the end of the DER,
/// which lies inside the signature value, keeping the structure parsable.
fn flip_signature_byte(csr_pem: &str) -> String {
    let footer = csr_pem.find("-----END").unwrap();
    let mut chars: Vec<char> = csr_pem.chars().collect();
    let position = (0..footer)
        .rev()
        .filter(|&i| chars[i].is_ascii_alphanumeric() || chars[i] == '+' || chars[i] == '/')
        .nth(20)
        .unwrap();
    chars[position] = if chars[position] == 'A' { 'B' } else { 'A' };
    chars.into_iter().collect()
}

#[test]
fn csr_with_a_bad_signature_is_rejected() {
    let tampered = flip_signature_byte(&csr_asking_for(vec![], false));

    let (_dir, ca) = new_ca();
    let err = ca
        .sign_workload_csr(&tampered, &reviews(), DEFAULT_WORKLOAD_TTL)
        .unwrap_err();
    assert!(
        matches!(
            err,
            CaError::InvalidCsr(rcgen::Error::InvalidCertificationRequestSignature)
        ),
        "{err}"
    );
    let err = ca
        .sign_workload_csr("garbage", &reviews(), DEFAULT_WORKLOAD_TTL)
        .unwrap_err();
    assert!(matches!(err, CaError::InvalidCsr(_)), "{err}");
}

#[test]
fn lifetime_is_capped_and_backdated_for_clock_skew() {
    let (_dir, ca) = new_ca();
    let csr = csr_asking_for(vec![], false);
    let chain = ca
        .sign_workload_csr(&csr, &reviews(), Duration::from_secs(365 * 24 * 3600))
        .unwrap();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    with_leaf(&chain[0], |leaf| {
        let validity = leaf.validity();
        let lifetime = validity.not_after.timestamp() - now;
        assert!(lifetime <= MAX_WORKLOAD_TTL.as_secs() as i64, "{lifetime}");
        assert!(
            lifetime > MAX_WORKLOAD_TTL.as_secs() as i64 - 60,
            "{lifetime}"
        );
        assert!(validity.not_before.timestamp() <= now - 59);
    });
    assert!(matches!(
        ca.sign_workload_csr(&csr, &reviews(), Duration::ZERO),
        Err(CaError::ZeroTtl)
    ));
}

#[test]
fn identities_outside_the_trust_domain_or_malformed_are_refused() {
    let (_dir, ca) = new_ca();
    let csr = csr_asking_for(vec![], false);
    let foreign = SpiffeId::new("other.domain", "default", "reviews");
    let err = ca
        .sign_workload_csr(&csr, &foreign, DEFAULT_WORKLOAD_TTL)
        .unwrap_err();
    assert!(matches!(err, CaError::ForeignTrustDomain { .. }), "{err}");
    let malformed = SpiffeId::new(TD, "default", "reviews/../admin");
    let err = ca
        .sign_workload_csr(&csr, &malformed, DEFAULT_WORKLOAD_TTL)
        .unwrap_err();
    assert!(matches!(err, CaError::InvalidIdentity(_)), "{err}");
}

#[test]
fn server_cert_names_the_control_plane() {
    let (_dir, ca) = new_ca();
    let names = ["istiod.istio-system.svc".to_string()];
    let ips = ["127.0.0.1".parse().unwrap()];
    let (chain, key) = ca.issue_server_cert(&names, &ips).unwrap();
    assert!(KeyPair::from_pem(&key).is_ok());
    with_leaf(&chain, |leaf| {
        assert_eq!(
            san_names(leaf),
            vec![
                "DNS:istiod.istio-system.svc".to_string(),
                "IP:127.0.0.1".to_string()
            ]
        );
        assert!(!leaf.is_ca());
    });
    assert!(matches!(
        ca.issue_server_cert(&[], &[]),
        Err(CaError::NoSubjectAltNames)
    ));
}
