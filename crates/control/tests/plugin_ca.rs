//! `--cacerts`: the control plane signs workload certificates with an
//! operator's intermediate under an offline root (Istio's `cacerts`
//! layout), and refuses to start on a key that does not match.

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use clap::Parser;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use trellis_ca::{
    CA_CERT_FILE, CA_KEY_FILE, CERT_CHAIN_FILE, ROOT_CERT_FILE, SpiffeId, TokenEntry,
    WorkloadCertificate,
};
use trellis_control::ControlPlaneOptions;

const DEADLINE: Duration = Duration::from_secs(20);
const IP: &str = "127.92.0.1";

#[derive(Parser)]
struct Command {
    #[command(flatten)]
    options: ControlPlaneOptions,
}

fn options(config_dir: &Path, cacerts: &Path, tokens: &Path) -> ControlPlaneOptions {
    let argv = [
        "control-plane",
        "--listen-address",
        IP,
        "--config-dir",
        config_dir.to_str().unwrap(),
        "--cacerts",
        cacerts.to_str().unwrap(),
        "--workload-tokens",
        tokens.to_str().unwrap(),
    ];
    Command::try_parse_from(argv).unwrap().options
}

fn ca_params(name: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params
}

/// Writes an offline root and an intermediate under it in Istio's layout;
/// returns the root's PEM.
fn write_cacerts(dir: &Path) -> String {
    let root_key = KeyPair::generate().unwrap();
    let root = ca_params("offline root").self_signed(&root_key).unwrap();
    let root_issuer = Issuer::from_ca_cert_der(root.der(), root_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let intermediate = ca_params("mesh intermediate")
        .signed_by(&key, &root_issuer)
        .unwrap();
    fs::write(dir.join(ROOT_CERT_FILE), root.pem()).unwrap();
    fs::write(dir.join(CA_CERT_FILE), intermediate.pem()).unwrap();
    fs::write(dir.join(CA_KEY_FILE), key.serialize_pem()).unwrap();
    let chain = format!("{}{}", intermediate.pem(), root.pem());
    fs::write(dir.join(CERT_CHAIN_FILE), chain).unwrap();
    root.pem()
}

/// Asks the control plane for a certificate, trusting only the offline
/// root, until it answers or the deadline passes.
async fn certificate(token: &str, id: &SpiffeId, root_pem: &str) -> WorkloadCertificate {
    let started = Instant::now();
    loop {
        let channel = trellis_ca::ca_channel(&format!("{IP}:15012"), root_pem).unwrap();
        let ttl = Duration::from_secs(3600);
        match trellis_ca::request_certificate(channel, token, id, root_pem, ttl).await {
            Ok(certificate) => return certificate,
            Err(error) if started.elapsed() < DEADLINE => {
                eprintln!("not yet: {error}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(error) => panic!("no certificate within {DEADLINE:?}: {error}"),
        }
    }
}

#[tokio::test]
async fn workloads_get_certificates_chaining_to_the_offline_root() {
    let config_dir = tempfile::tempdir().unwrap();
    let cacerts = tempfile::tempdir().unwrap();
    let root_pem = write_cacerts(cacerts.path());
    let tokens = config_dir.path().join("tokens.json");
    let token = trellis_ca::generate_token();
    let entry = TokenEntry {
        token: token.clone(),
        namespace: "default".into(),
        service_account: "bookinfo-reviews".into(),
    };
    trellis_ca::write_tokens_file(&tokens, &[entry]).unwrap();
    let options = options(config_dir.path(), cacerts.path(), &tokens);
    let control_plane = tokio::spawn(trellis_control::run(options));

    // The control plane's own serving certificate also verified against
    // the offline root: the channel trusts nothing else.
    let id = SpiffeId::new("cluster.local", "default", "bookinfo-reviews");
    let certificate = certificate(&token, &id, &root_pem).await;
    let cert_chain = fs::read_to_string(cacerts.path().join(CERT_CHAIN_FILE)).unwrap();
    assert_eq!(certificate.cert_chain_pem[1..], [cert_chain, root_pem]);
    assert_eq!(certificate.identity, id);
    control_plane.abort();
}

#[tokio::test]
async fn a_key_not_matching_ca_cert_stops_the_control_plane() {
    let config_dir = tempfile::tempdir().unwrap();
    let cacerts = tempfile::tempdir().unwrap();
    write_cacerts(cacerts.path());
    let stranger = KeyPair::generate().unwrap();
    fs::write(cacerts.path().join(CA_KEY_FILE), stranger.serialize_pem()).unwrap();
    let tokens = config_dir.path().join("tokens.json");
    trellis_ca::write_tokens_file(&tokens, &[]).unwrap();

    let outcome = tokio::time::timeout(
        DEADLINE,
        trellis_control::run(options(config_dir.path(), cacerts.path(), &tokens)),
    )
    .await
    .expect("the control plane stops at startup");
    let error = format!("{:#}", outcome.unwrap_err());
    assert!(error.contains(CA_KEY_FILE), "{error}");
    assert!(error.contains("does not match"), "{error}");
}
