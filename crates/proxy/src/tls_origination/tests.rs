use std::path::PathBuf;

use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    SdsSecretConfig, SubjectAltNameMatcher, TlsCertificate,
};
use envoy_types::pb::envoy::r#type::matcher::v3::StringMatcher;
use rcgen::{CertificateParams, KeyPair};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::*;

fn file(path: &str) -> Option<DataSource> {
    Some(DataSource {
        specifier: Some(Specifier::Filename(path.into())),
        ..Default::default()
    })
}

fn dns_san(name: &str) -> SubjectAltNameMatcher {
    SubjectAltNameMatcher {
        san_type: SanType::Dns as i32,
        matcher: Some(StringMatcher {
            match_pattern: Some(MatchPattern::Exact(name.into())),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[test]
fn files_and_names_are_compiled() {
    let common = CommonTlsContext {
        tls_certificates: vec![TlsCertificate {
            certificate_chain: file("/c.crt"),
            private_key: file("/c.key"),
            ..Default::default()
        }],
        validation_context_type: Some(ValidationContextType::ValidationContext(
            CertificateValidationContext {
                trusted_ca: file("/ca.crt"),
                match_typed_subject_alt_names: vec![dns_san("api.example.com")],
                ..Default::default()
            },
        )),
        alpn_protocols: vec!["http/1.1".into()],
        ..Default::default()
    };
    let origination = compile(&common).unwrap();
    assert_eq!(origination.ca, Some(PathBuf::from("/ca.crt")));
    assert_eq!(origination.subject_alt_names, ["api.example.com"]);
    assert_eq!(
        origination.client_certificate,
        Some((PathBuf::from("/c.crt"), PathBuf::from("/c.key")))
    );
    assert_eq!(origination.alpn, [b"http/1.1".to_vec()]);
    // insecureSkipVerify: no validation context at all.
    assert_eq!(compile(&CommonTlsContext::default()).unwrap().ca, None);
}

#[test]
fn sds_credentials_are_refused_at_a_sidecar() {
    let common = CommonTlsContext {
        validation_context_type: Some(ValidationContextType::ValidationContextSdsSecretConfig(
            SdsSecretConfig {
                name: "kubernetes://api-cacert".into(),
                ..Default::default()
            },
        )),
        ..Default::default()
    };
    assert!(compile(&common).is_err());
}

/// A fresh CA (its PEM) and a leaf it signs for `name`.
fn issue(name: &str) -> (String, rcgen::Certificate, KeyPair) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec![name.to_string()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    (ca.pem(), leaf, key)
}

/// A TLS server for `name`, signed by a fresh CA, that requires a client
/// certificate signed by `client_ca` when given; returns its address and
/// the CA's PEM.
async fn server(name: &str, client_ca: Option<&str>) -> (std::net::SocketAddr, String) {
    let (ca, leaf, key) = issue(name);
    let builder = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap();
    let builder = match client_ca {
        Some(pem) => {
            let mut roots = RootCertStore::empty();
            for certificate in CertificateDer::pem_slice_iter(pem.as_bytes()) {
                roots.add(certificate.unwrap()).unwrap();
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider(),
            )
            .build()
            .unwrap();
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let config = builder
        .with_single_cert(
            vec![leaf.der().clone()],
            PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            if let Ok(mut tls) = acceptor.accept(tcp).await {
                let _ = tls.write_all(b"hello").await;
                let _ = tls.shutdown().await;
            }
        }
    });
    (address, ca)
}

async fn handshake(origination: &Origination, address: std::net::SocketAddr, sni: &str) -> bool {
    let config = origination.client_config().unwrap();
    let tcp = tokio::net::TcpStream::connect(address).await.unwrap();
    let name = ServerName::try_from(sni.to_string()).unwrap();
    let Ok(mut tls) = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
    else {
        return false;
    };
    let mut greeting = Vec::new();
    tls.read_to_end(&mut greeting).await.is_ok() && greeting == b"hello"
}

#[tokio::test]
async fn the_server_is_verified_by_the_users_ca_and_names() {
    let (address, ca_pem) = server("api.example.com", None).await;
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.crt");
    std::fs::write(&ca, ca_pem).unwrap();
    let origination = |names: &[&str]| Origination {
        ca: Some(ca.clone()),
        subject_alt_names: names.iter().map(ToString::to_string).collect(),
        client_certificate: None,
        alpn: Vec::new(),
    };
    assert!(handshake(&origination(&[]), address, "api.example.com").await);
    assert!(!handshake(&origination(&[]), address, "other.example.com").await);
    let listed = origination(&["nope.example.com", "api.example.com"]);
    assert!(handshake(&listed, address, "other.example.com").await);
    assert!(
        !handshake(
            &origination(&["nope.example.com"]),
            address,
            "api.example.com"
        )
        .await
    );
    let skip = Origination {
        ca: None,
        ..origination(&[])
    };
    assert!(handshake(&skip, address, "anything.test").await);
    let missing = Origination {
        ca: Some(dir.path().join("missing.crt")),
        ..origination(&[])
    };
    let error = missing.client_config().unwrap_err().to_string();
    assert!(error.contains("missing.crt"), "{error}");
}

#[tokio::test]
async fn mutual_origination_presents_the_client_certificate() {
    let (client_ca, client_leaf, client_key) = issue("client.example.com");
    let (address, server_ca) = server("api.example.com", Some(&client_ca)).await;
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, contents: &[u8]| {
        let path = dir.path().join(name);
        std::fs::write(&path, contents).unwrap();
        path
    };
    let origination = Origination {
        ca: Some(write("ca.crt", server_ca.as_bytes())),
        subject_alt_names: Vec::new(),
        client_certificate: Some((
            write("client.crt", client_leaf.pem().as_bytes()),
            write("client.key", client_key.serialize_pem().as_bytes()),
        )),
        alpn: Vec::new(),
    };
    assert!(handshake(&origination, address, "api.example.com").await);
    let without = Origination {
        client_certificate: None,
        ..origination
    };
    assert!(!handshake(&without, address, "api.example.com").await);
}
