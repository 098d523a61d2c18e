use std::fs::File;
use std::time::Duration;

use super::*;
use crate::gateway_tls::TlsParams;

fn write(path: &Path, pem: &str, modified: SystemTime) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, pem).unwrap();
    File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(modified)
        .unwrap();
}

fn write_credential(dir: &Path, name: &str, host: &str, modified: SystemTime) {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec![host.to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let dir = dir.join(name);
    write(&dir.join(CERTIFICATE_FILE), &cert.pem(), modified);
    write(&dir.join(KEY_FILE), &key.serialize_pem(), modified);
}

/// A self-signed CA certificate, as PEM.
fn ca_pem() -> String {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.self_signed(&key).unwrap().pem()
}

fn bookinfo(client_auth: Option<ClientAuth>) -> ServerCredential {
    ServerCredential {
        name: "bookinfo".into(),
        alpn: vec![b"http/1.1".to_vec()],
        client_auth,
        params: TlsParams::default(),
    }
}

fn mutual() -> ServerCredential {
    bookinfo(Some(ClientAuth {
        ca: "bookinfo-cacert".into(),
        required: true,
    }))
}

#[test]
fn loads_credentials_from_files_and_reloads_changed_ones() {
    let credentials = Credentials::default();
    assert!(matches!(
        credentials.server_config(&bookinfo(None)),
        Err(CredentialError::NoDirectory(_))
    ));
    let dir = tempfile::tempdir().unwrap();
    credentials.set_dir(dir.path().to_path_buf());
    let missing = credentials.server_config(&bookinfo(None)).unwrap_err();
    assert!(
        missing.to_string().contains("bookinfo/tls.crt"),
        "{missing}"
    );

    let first_write = SystemTime::now() - Duration::from_secs(60);
    write_credential(dir.path(), "bookinfo", "bookinfo.example.com", first_write);
    let first = credentials.server_config(&bookinfo(None)).unwrap();
    assert_eq!(first.alpn_protocols, [b"http/1.1".to_vec()]);
    let unchanged = credentials.server_config(&bookinfo(None)).unwrap();
    assert!(Arc::ptr_eq(&first, &unchanged));

    write_credential(
        dir.path(),
        "bookinfo",
        "bookinfo.example.com",
        SystemTime::now(),
    );
    let reloaded = credentials.server_config(&bookinfo(None)).unwrap();
    assert!(!Arc::ptr_eq(&first, &reloaded));

    std::fs::write(dir.path().join("bookinfo").join(KEY_FILE), "not a key").unwrap();
    let bad = credentials.server_config(&bookinfo(None)).unwrap_err();
    assert!(bad.to_string().contains("no private key"), "{bad}");
}

#[test]
fn finds_the_client_ca_in_either_layout() {
    let dir = tempfile::tempdir().unwrap();
    let credentials = Credentials::default();
    credentials.set_dir(dir.path().to_path_buf());
    let earlier = SystemTime::now() - Duration::from_secs(60);
    write_credential(dir.path(), "bookinfo", "bookinfo.example.com", earlier);
    let missing = credentials.server_config(&mutual()).unwrap_err();
    assert!(missing.to_string().contains("bookinfo/ca.crt"), "{missing}");

    // `ca.crt` beside the certificate serves.
    write(
        &dir.path().join("bookinfo").join(CA_FILE),
        &ca_pem(),
        earlier,
    );
    let own = credentials.server_config(&mutual()).unwrap();
    // A separate `NAME-cacert` takes precedence once it exists.
    write(
        &dir.path().join("bookinfo-cacert").join(CA_FILE),
        &ca_pem(),
        earlier,
    );
    let separate = credentials.server_config(&mutual()).unwrap();
    assert!(!Arc::ptr_eq(&own, &separate));

    // A revocation list that does not parse refuses handshakes.
    write(
        &dir.path().join("bookinfo-cacert").join(CRL_FILE),
        "-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n",
        SystemTime::now(),
    );
    assert!(credentials.server_config(&mutual()).is_err());
}

#[test]
fn optional_mutual_still_needs_a_ca() {
    let dir = tempfile::tempdir().unwrap();
    let credentials = Credentials::default();
    credentials.set_dir(dir.path().to_path_buf());
    write_credential(dir.path(), "bookinfo", "b.example.com", SystemTime::now());
    let optional = bookinfo(Some(ClientAuth {
        ca: "bookinfo-cacert".into(),
        required: false,
    }));
    assert!(credentials.server_config(&optional).is_err());
    write(
        &dir.path().join("bookinfo").join(CA_FILE),
        &ca_pem(),
        SystemTime::now(),
    );
    assert!(credentials.server_config(&optional).is_ok());
}
