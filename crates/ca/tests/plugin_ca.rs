//! Plug-in CA: an intermediate under an offline root, in Istio's `cacerts`
//! layout, signing workload certificates that peers verify to the root.

use std::fs;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus_client::registry::Registry;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls::client::verify_server_cert_signed_by_trust_anchor;
use rustls::server::ParsedCertificate;
use rustls::{RootCertStore, crypto::aws_lc_rs};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};
use trellis_ca::{
    CA_CERT_FILE, CA_KEY_FILE, CERT_CHAIN_FILE, CaError, CaMetrics, CertificateRequest, MeshCa,
    ROOT_CERT_FILE, SpiffeId, WorkloadCertificate, client_config, peer_identity, server_config,
};

const TD: &str = "cluster.local";

/// A CA certificate and key made in the test, standing in for an operator's
/// offline root and the intermediate it signs for the mesh.
struct TestCa {
    pem: String,
    key: KeyPair,
    issuer: Issuer<'static, KeyPair>,
}

fn ca_params(name: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params
}

/// A CA certificate from `params`, self-signed or signed by `signer`.
fn test_ca(params: CertificateParams, signer: Option<&TestCa>) -> TestCa {
    let key = KeyPair::generate().unwrap();
    let cert = match signer {
        Some(signer) => params.signed_by(&key, &signer.issuer),
        None => params.self_signed(&key),
    }
    .unwrap();
    let issuer =
        Issuer::from_ca_cert_der(cert.der(), KeyPair::from_pem(&key.serialize_pem()).unwrap())
            .unwrap();
    TestCa {
        pem: cert.pem(),
        key,
        issuer,
    }
}

fn offline_root(name: &str) -> TestCa {
    test_ca(ca_params(name), None)
}

fn intermediate(root: &TestCa) -> TestCa {
    test_ca(ca_params("mesh intermediate"), Some(root))
}

/// Writes Istio's layout: cert-chain.pem is the intermediate then the root.
fn write_cacerts(dir: &Path, root: &TestCa, ca: &TestCa) {
    fs::write(dir.join(ROOT_CERT_FILE), &root.pem).unwrap();
    fs::write(dir.join(CA_CERT_FILE), &ca.pem).unwrap();
    fs::write(dir.join(CA_KEY_FILE), ca.key.serialize_pem()).unwrap();
    fs::write(dir.join(CERT_CHAIN_FILE), format!("{}{}", ca.pem, root.pem)).unwrap();
}

fn plugin_ca() -> (tempfile::TempDir, TestCa, MeshCa) {
    let root = offline_root("offline root");
    let dir = tempfile::tempdir().unwrap();
    write_cacerts(dir.path(), &root, &intermediate(&root));
    let ca = MeshCa::from_plugin_dir(dir.path(), TD).unwrap();
    (dir, root, ca)
}

fn identity(service_account: &str) -> SpiffeId {
    SpiffeId::new(TD, "default", service_account)
}

fn workload(ca: &MeshCa, service_account: &str) -> WorkloadCertificate {
    let id = identity(service_account);
    let request = CertificateRequest::new(&id).unwrap();
    let chain = ca
        .sign_workload_csr(request.csr_pem(), &id, Duration::from_secs(3600))
        .unwrap();
    request.into_certificate(chain, ca.root_cert_pem()).unwrap()
}

fn certs(pem: &str) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<_, _>>()
        .unwrap()
}

/// Validates `leaf` to `root_pem` with webpki, as any TLS peer would.
fn verify(root_pem: &str, chain: &[CertificateDer<'_>]) -> Result<(), rustls::Error> {
    let mut roots = RootCertStore::empty();
    roots.add_parsable_certificates(certs(root_pem));
    let algorithms = aws_lc_rs::default_provider().signature_verification_algorithms;
    let leaf = ParsedCertificate::try_from(&chain[0])?;
    verify_server_cert_signed_by_trust_anchor(
        &leaf,
        &roots,
        &chain[1..],
        UnixTime::now(),
        algorithms.all,
    )
}

fn load_error(dir: &Path) -> String {
    match MeshCa::from_plugin_dir(dir, TD) {
        Err(error @ CaError::InvalidCaFile { .. }) | Err(error @ CaError::Io { .. }) => {
            error.to_string()
        }
        other => panic!("expected a CA file error, got {other:?}"),
    }
}

#[test]
fn workload_chain_is_leaf_then_cert_chain_then_root_and_verifies_to_the_root() {
    let (dir, root, ca) = plugin_ca();
    let chain = ca
        .sign_workload_csr(
            CertificateRequest::new(&identity("reviews"))
                .unwrap()
                .csr_pem(),
            &identity("reviews"),
            Duration::from_secs(3600),
        )
        .unwrap();
    let cert_chain = fs::read_to_string(dir.path().join(CERT_CHAIN_FILE)).unwrap();
    assert_eq!(chain[1..], [cert_chain, root.pem.clone()]);
    assert_eq!(ca.root_cert_pem(), root.pem);

    let ders = certs(&chain.concat());
    verify(&root.pem, &ders).expect("leaf verifies to the offline root");
    // Without the intermediate the leaf does not reach the root: it really
    // is signed by the intermediate, not the root.
    assert!(verify(&root.pem, &ders[..1]).is_err());
}

#[tokio::test]
async fn mesh_mtls_works_with_plugin_certificates() {
    let (_dir, _root, ca) = plugin_ca();
    let client = workload(&ca, "productpage");
    let server = workload(&ca, "reviews");
    let alpn = vec![b"h2".to_vec()];
    let acceptor = TlsAcceptor::from(server_config(&server, alpn.clone()).unwrap());
    let connector =
        TlsConnector::from(client_config(&client, vec![identity("reviews")], alpn).unwrap());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();

    let server_side = async {
        let (tcp, _) = listener.accept().await?;
        let mut tls = acceptor.accept(tcp).await?;
        let mut byte = [0u8; 1];
        tls.read_exact(&mut byte).await?;
        tls.write_all(&byte).await?;
        tls.flush().await?;
        std::io::Result::Ok(peer_identity(tls.get_ref().1.peer_certificates().unwrap()))
    };
    let client_side = async {
        let tcp = TcpStream::connect(address).await?;
        let name =
            ServerName::try_from("outbound_.9080_._.reviews.default.svc.cluster.local").unwrap();
        let mut tls = connector.connect(name, tcp).await?;
        tls.write_all(b"x").await?;
        tls.flush().await?;
        let mut byte = [0u8; 1];
        tls.read_exact(&mut byte).await?;
        std::io::Result::Ok(())
    };
    let (client_result, server_result) = tokio::join!(client_side, server_side);
    client_result.expect("client handshake");
    assert_eq!(
        server_result.expect("server handshake"),
        Some(identity("productpage"))
    );
}

#[test]
fn a_key_that_does_not_match_ca_cert_is_refused_naming_ca_key() {
    let root = offline_root("offline root");
    let dir = tempfile::tempdir().unwrap();
    write_cacerts(dir.path(), &root, &intermediate(&root));
    let stranger = KeyPair::generate().unwrap();
    fs::write(dir.path().join(CA_KEY_FILE), stranger.serialize_pem()).unwrap();
    let error = load_error(dir.path());
    assert!(
        error.contains(CA_KEY_FILE) && error.contains("does not match"),
        "{error}"
    );
}

#[test]
fn an_intermediate_of_another_root_is_refused_naming_ca_cert() {
    let root = offline_root("offline root");
    let other_root = offline_root("another root");
    let dir = tempfile::tempdir().unwrap();
    write_cacerts(dir.path(), &root, &intermediate(&root));
    let foreign = intermediate(&other_root);
    fs::write(dir.path().join(CA_CERT_FILE), &foreign.pem).unwrap();
    fs::write(dir.path().join(CA_KEY_FILE), foreign.key.serialize_pem()).unwrap();
    fs::write(
        dir.path().join(CERT_CHAIN_FILE),
        format!("{}{}", foreign.pem, other_root.pem),
    )
    .unwrap();
    let error = load_error(dir.path());
    assert!(
        error.contains(CA_CERT_FILE) && error.contains("does not chain to root-cert.pem"),
        "{error}"
    );
}

#[test]
fn a_cert_chain_not_starting_with_ca_cert_is_refused() {
    let root = offline_root("offline root");
    let dir = tempfile::tempdir().unwrap();
    write_cacerts(dir.path(), &root, &intermediate(&root));
    fs::write(dir.path().join(CERT_CHAIN_FILE), &root.pem).unwrap();
    let error = load_error(dir.path());
    assert!(error.contains(CERT_CHAIN_FILE), "{error}");
}

#[test]
fn a_missing_file_is_named() {
    let root = offline_root("offline root");
    for file in [ROOT_CERT_FILE, CA_CERT_FILE, CA_KEY_FILE, CERT_CHAIN_FILE] {
        let dir = tempfile::tempdir().unwrap();
        write_cacerts(dir.path(), &root, &intermediate(&root));
        fs::remove_file(dir.path().join(file)).unwrap();
        let error = load_error(dir.path());
        assert!(error.contains(file), "{file}: {error}");
    }
}

#[test]
fn a_leaf_certificate_as_ca_cert_is_refused() {
    let root = offline_root("offline root");
    let dir = tempfile::tempdir().unwrap();
    write_cacerts(dir.path(), &root, &intermediate(&root));
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["not-a-ca.example".to_string()]).unwrap();
    params.is_ca = IsCa::ExplicitNoCa;
    let leaf = params.signed_by(&key, &root.issuer).unwrap();
    fs::write(dir.path().join(CA_CERT_FILE), leaf.pem()).unwrap();
    fs::write(dir.path().join(CA_KEY_FILE), key.serialize_pem()).unwrap();
    let error = load_error(dir.path());
    assert!(
        error.contains(CA_CERT_FILE) && error.contains("not a CA"),
        "{error}"
    );
}

#[test]
fn expiry_metrics_report_the_root_and_the_signing_certificate() {
    let mut root_params = ca_params("offline root");
    root_params.not_after = rcgen::date_time_ymd(2045, 1, 1);
    let root = test_ca(root_params, None);
    let mut intermediate_params = ca_params("mesh intermediate");
    intermediate_params.not_after = rcgen::date_time_ymd(2040, 6, 1);
    let intermediate = test_ca(intermediate_params, Some(&root));
    let dir = tempfile::tempdir().unwrap();
    write_cacerts(dir.path(), &root, &intermediate);
    let ca = MeshCa::from_plugin_dir(dir.path(), TD).unwrap();

    let unix = |time: SystemTime| time.duration_since(UNIX_EPOCH).unwrap().as_secs();
    assert_eq!(unix(ca.root_cert_expiry()), 2_366_841_600);
    assert_eq!(ca.cert_chain_expiry().map(unix), Some(2_222_121_600));

    let mut registry = Registry::default();
    CaMetrics::for_ca(&ca).register(&mut registry);
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    for line in [
        "citadel_server_root_cert_expiry_timestamp 2366841600",
        "citadel_server_cert_chain_expiry_timestamp 2222121600",
    ] {
        assert!(lines.contains(&line), "no {line} in\n{text}");
    }
    let chain_left = lines
        .iter()
        .find_map(|line| line.strip_prefix("citadel_server_cert_chain_expiry_seconds "))
        .and_then(|value| value.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no chain countdown in\n{text}"));
    let expected = ca
        .cert_chain_expiry()
        .unwrap()
        .duration_since(SystemTime::now())
        .unwrap()
        .as_secs_f64();
    assert!((chain_left - expected).abs() < 60.0, "{chain_left}");
}
