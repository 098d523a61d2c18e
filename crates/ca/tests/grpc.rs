//! The certificate API end to end on loopback: tonic server over TLS with
//! the control plane's certificate, tokens from a file, real CSRs.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::net::TcpListener;
use tonic::Code;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Identity, Server, ServerTlsConfig};
use trellis_ca::proto::IstioCertificateRequest;
use trellis_ca::proto::istio_certificate_service_client::IstioCertificateServiceClient;
use trellis_ca::{
    CONTROL_PLANE_SERVER_NAME, CaError, CertificateService, MeshCa, SpiffeId, StaticTokens,
    TokenEntry, ca_channel, generate_token, request_certificate, write_tokens_file,
};

const TD: &str = "cluster.local";

struct ControlPlane {
    _dir: tempfile::TempDir,
    ca: Arc<MeshCa>,
    address: SocketAddr,
    reviews_token: String,
}

/// A CA serving on 127.0.0.1 that knows one token, for default/bookinfo-reviews.
async fn start_control_plane() -> ControlPlane {
    let dir = tempfile::tempdir().unwrap();
    let ca = Arc::new(MeshCa::load_or_create(&dir.path().join("ca"), TD).unwrap());
    let reviews_token = generate_token();
    let tokens_path = dir.path().join("tokens.json");
    write_tokens_file(
        &tokens_path,
        &[TokenEntry {
            token: reviews_token.clone(),
            namespace: "default".to_string(),
            service_account: "bookinfo-reviews".to_string(),
        }],
    )
    .unwrap();
    let tokens = StaticTokens::load(&tokens_path, TD).unwrap();

    let (chain, key) = ca
        .issue_server_cert(&[CONTROL_PLANE_SERVER_NAME.to_string()], &[])
        .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let server = Server::builder()
        .tls_config(ServerTlsConfig::new().identity(Identity::from_pem(chain, key)))
        .unwrap()
        .add_service(CertificateService::new(ca.clone(), Arc::new(tokens)).into_server())
        .serve_with_incoming(TcpIncoming::from(listener));
    tokio::spawn(server);
    ControlPlane {
        _dir: dir,
        ca,
        address,
        reviews_token,
    }
}

fn reviews() -> SpiffeId {
    SpiffeId::new(TD, "default", "bookinfo-reviews")
}

#[tokio::test]
async fn a_valid_token_gets_a_certificate_for_its_identity() {
    let cp = start_control_plane().await;
    let root = cp.ca.root_cert_pem();
    let channel = ca_channel(&cp.address.to_string(), root).unwrap();
    let ttl = Duration::from_secs(3600);

    let cert = request_certificate(channel, &cp.reviews_token, &reviews(), root, ttl)
        .await
        .unwrap();

    assert_eq!(cert.identity, reviews());
    assert_eq!(cert.cert_chain_pem.len(), 2);
    assert_eq!(cert.root_pem, root);
    let leaf = rustls_pki_types::pem::PemObject::from_pem_slice(cert.cert_chain_pem[0].as_bytes())
        .unwrap();
    assert_eq!(trellis_ca::peer_identity(&[leaf]), Some(reviews()));
    let lifetime = cert.not_after.duration_since(SystemTime::now()).unwrap();
    assert!(
        lifetime <= ttl && lifetime > ttl - Duration::from_secs(60),
        "{lifetime:?}"
    );
}

#[tokio::test]
async fn an_unknown_or_missing_token_is_unauthenticated() {
    let cp = start_control_plane().await;
    let root = cp.ca.root_cert_pem();
    let channel = ca_channel(&cp.address.to_string(), root).unwrap();

    let err = request_certificate(
        channel.clone(),
        &generate_token(),
        &reviews(),
        root,
        Duration::from_secs(3600),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, CaError::Rpc(ref s) if s.code() == Code::Unauthenticated),
        "{err}"
    );

    let no_token = IstioCertificateServiceClient::new(channel)
        .create_certificate(IstioCertificateRequest::default())
        .await
        .unwrap_err();
    assert_eq!(no_token.code(), Code::Unauthenticated);
}

#[tokio::test]
async fn a_token_cannot_obtain_another_identity() {
    let cp = start_control_plane().await;
    let root = cp.ca.root_cert_pem();
    let channel = ca_channel(&cp.address.to_string(), root).unwrap();
    let ratings = SpiffeId::new(TD, "default", "bookinfo-ratings");

    // The CA signs reviews' identity whatever the CSR asks for, and the
    // client refuses a certificate that does not name what it asked for.
    let err = request_certificate(
        channel,
        &cp.reviews_token,
        &ratings,
        root,
        Duration::from_secs(3600),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, CaError::UnacceptableCertificate(_)), "{err}");
    assert!(err.to_string().contains("bookinfo-reviews"), "{err}");
}

#[tokio::test]
async fn a_malformed_csr_is_an_invalid_argument() {
    let cp = start_control_plane().await;
    let channel = ca_channel(&cp.address.to_string(), cp.ca.root_cert_pem()).unwrap();
    let mut request = tonic::Request::new(IstioCertificateRequest {
        csr: "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"
            .to_string(),
        validity_duration: 0,
        metadata: None,
    });
    let bearer = format!("Bearer {}", cp.reviews_token).parse().unwrap();
    request.metadata_mut().insert("authorization", bearer);
    let status = IstioCertificateServiceClient::new(channel)
        .create_certificate(request)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
}

#[tokio::test]
async fn a_client_that_trusts_another_root_does_not_connect() {
    let cp = start_control_plane().await;
    let other_dir = tempfile::tempdir().unwrap();
    let other = MeshCa::load_or_create(other_dir.path(), TD).unwrap();
    let channel = ca_channel(&cp.address.to_string(), other.root_cert_pem()).unwrap();

    let err = request_certificate(
        channel,
        &cp.reviews_token,
        &reviews(),
        other.root_cert_pem(),
        Duration::from_secs(3600),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, CaError::Rpc(ref s) if s.code() == Code::Unavailable),
        "{err}"
    );
}
