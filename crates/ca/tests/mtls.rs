//! Mesh mTLS handshakes between workloads over loopback TCP.

use std::time::Duration;

use rustls_pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector, client, server};
use trellis_ca::{
    CertificateRequest, MeshCa, SpiffeId, WorkloadCertificate, client_config, peer_identity,
    server_config,
};

const TD: &str = "cluster.local";
/// Mesh SNI: a routing key, not a name in any certificate.
const MESH_SNI: &str = "outbound_.9080_.v1_.reviews.default.svc.cluster.local";

fn new_ca() -> (tempfile::TempDir, MeshCa) {
    let dir = tempfile::tempdir().unwrap();
    let ca = MeshCa::load_or_create(dir.path(), TD).unwrap();
    (dir, ca)
}

fn identity(service_account: &str) -> SpiffeId {
    SpiffeId::new(TD, "default", service_account)
}

/// Issues a certificate the way a workload would, minus the gRPC hop.
fn workload(ca: &MeshCa, service_account: &str) -> WorkloadCertificate {
    let id = identity(service_account);
    let request = CertificateRequest::new(&id).unwrap();
    let chain = ca
        .sign_workload_csr(request.csr_pem(), &id, Duration::from_secs(3600))
        .unwrap();
    request.into_certificate(chain, ca.root_cert_pem()).unwrap()
}

type Outcome = (
    std::io::Result<client::TlsStream<TcpStream>>,
    std::io::Result<server::TlsStream<TcpStream>>,
);

/// One TLS handshake over a loopback TCP pair. The client sends a byte and
/// waits for the echo, because with TLS 1.3 a client learns that the server
/// rejected its certificate only on the first read.
async fn handshake(
    client: &WorkloadCertificate,
    expected: Vec<SpiffeId>,
    server: &WorkloadCertificate,
) -> Outcome {
    let alpn = vec![b"h2".to_vec()];
    let acceptor = TlsAcceptor::from(server_config(server, alpn.clone()).unwrap());
    let connector = TlsConnector::from(client_config(client, expected, alpn).unwrap());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();

    let server_side = async {
        let (tcp, _) = listener.accept().await?;
        let mut tls = acceptor.accept(tcp).await?;
        let mut byte = [0u8; 1];
        tls.read_exact(&mut byte).await?;
        tls.write_all(&byte).await?;
        tls.flush().await?;
        Ok(tls)
    };
    let client_side = async {
        let tcp = TcpStream::connect(address).await?;
        let name = ServerName::try_from(MESH_SNI).unwrap();
        let mut tls = connector.connect(name, tcp).await?;
        tls.write_all(b"x").await?;
        tls.flush().await?;
        let mut byte = [0u8; 1];
        tls.read_exact(&mut byte).await?;
        Ok(tls)
    };
    let (client, server) = tokio::join!(client_side, server_side);
    (client, server)
}

/// Whether the handshake failed because this side rejected the peer's
/// certificate (rather than, say, receiving an alert from the peer).
fn is_invalid_certificate(error: &std::io::Error) -> bool {
    let rustls_error = error
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>());
    matches!(rustls_error, Some(rustls::Error::InvalidCertificate(_)))
}

#[tokio::test]
async fn workloads_of_one_mesh_see_each_others_identity() {
    let (_dir, ca) = new_ca();
    let productpage = workload(&ca, "bookinfo-productpage");
    let reviews = workload(&ca, "bookinfo-reviews");

    let (client, server) =
        handshake(&productpage, vec![identity("bookinfo-reviews")], &reviews).await;
    let (client, server) = (client.unwrap(), server.unwrap());

    let (_, client_conn) = client.get_ref();
    let (_, server_conn) = server.get_ref();
    assert_eq!(
        peer_identity(client_conn.peer_certificates().unwrap()),
        Some(identity("bookinfo-reviews"))
    );
    assert_eq!(
        peer_identity(server_conn.peer_certificates().unwrap()),
        Some(identity("bookinfo-productpage"))
    );
    assert_eq!(client_conn.alpn_protocol(), Some(&b"h2"[..]));
}

#[tokio::test]
async fn an_empty_expectation_accepts_any_identity_from_the_root() {
    let (_dir, ca) = new_ca();
    let (client, server) = handshake(&workload(&ca, "a"), vec![], &workload(&ca, "b")).await;
    assert!(client.is_ok() && server.is_ok());
}

#[tokio::test]
async fn the_server_refuses_a_client_from_another_ca() {
    let (_dir, mesh) = new_ca();
    let (_other_dir, other) = new_ca();
    // The intruder trusts the mesh root (so it accepts the server) but
    // presents a certificate from its own CA.
    let intruder = WorkloadCertificate {
        root_pem: mesh.root_cert_pem().to_string(),
        ..workload(&other, "bookinfo-productpage")
    };
    let reviews = workload(&mesh, "bookinfo-reviews");

    let (client, server) = handshake(&intruder, vec![], &reviews).await;
    let server_err = server.unwrap_err();
    assert!(is_invalid_certificate(&server_err), "{server_err}");
    assert!(client.is_err(), "the client must not get an echo through");
}

#[tokio::test]
async fn the_client_refuses_a_server_from_another_ca() {
    let (_dir, mesh) = new_ca();
    let (_other_dir, other) = new_ca();
    let productpage = workload(&mesh, "bookinfo-productpage");
    let impostor = workload(&other, "bookinfo-reviews");

    let (client, server) = handshake(&productpage, vec![], &impostor).await;
    let client_err = client.unwrap_err();
    assert!(is_invalid_certificate(&client_err), "{client_err}");
    assert!(server.is_err());
}

#[tokio::test]
async fn the_client_refuses_a_server_with_the_wrong_identity() {
    let (_dir, ca) = new_ca();
    let productpage = workload(&ca, "bookinfo-productpage");
    let ratings = workload(&ca, "bookinfo-ratings");

    let (client, server) =
        handshake(&productpage, vec![identity("bookinfo-reviews")], &ratings).await;
    let client_err = client.unwrap_err();
    assert!(is_invalid_certificate(&client_err), "{client_err}");
    assert!(
        client_err.to_string().contains("bookinfo-ratings"),
        "{client_err}"
    );
    assert!(server.is_err());
}
