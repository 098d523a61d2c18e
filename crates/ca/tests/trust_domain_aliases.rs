//! trustDomainAliases: during a trust domain migration, peers under the old
//! trust domain are still accepted; a foreign trust domain is not.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};
use trellis_ca::{
    CertificateRequest, MeshCa, SpiffeId, TrustDomains, WorkloadCertificate,
    client_config_trusting, server_config, server_config_trusting,
};

const NEW_TD: &str = "new.td";
const OLD_TD: &str = "old.td";
const FOREIGN_TD: &str = "foreign.td";

/// A workload certificate for `trust_domain`, signed by the root in `dir`:
/// one root, so only the trust domain check can tell them apart.
fn workload(dir: &Path, trust_domain: &str, service_account: &str) -> WorkloadCertificate {
    let ca = MeshCa::load_or_create(dir, trust_domain).unwrap();
    let id = SpiffeId::new(trust_domain, "default", service_account);
    let request = CertificateRequest::new(&id).unwrap();
    let chain = ca
        .sign_workload_csr(request.csr_pem(), &id, Duration::from_secs(3600))
        .unwrap();
    request.into_certificate(chain, ca.root_cert_pem()).unwrap()
}

fn migrating() -> TrustDomains {
    TrustDomains::new(NEW_TD, [OLD_TD.to_string()]).unwrap()
}

/// One handshake and a one-byte echo over loopback; `Ok` only if both
/// sides accepted each other, else both sides' errors (Debug, which names
/// the refusal reason).
async fn handshake(
    client: Arc<rustls::ClientConfig>,
    server: Arc<rustls::ServerConfig>,
) -> Result<(), String> {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let server_side = async {
        let (tcp, _) = listener.accept().await?;
        let mut tls = TlsAcceptor::from(server).accept(tcp).await?;
        let mut byte = [0u8; 1];
        tls.read_exact(&mut byte).await?;
        tls.write_all(&byte).await?;
        tls.flush().await
    };
    let client_side = async {
        let tcp = TcpStream::connect(address).await?;
        let name = ServerName::try_from("outbound_.9080_._.reviews.default.svc.cluster.local")
            .unwrap()
            .to_owned();
        let mut tls = TlsConnector::from(client).connect(name, tcp).await?;
        tls.write_all(b"x").await?;
        tls.flush().await?;
        let mut byte = [0u8; 1];
        tls.read_exact(&mut byte).await.map(drop)
    };
    let (client, server): (std::io::Result<()>, std::io::Result<()>) =
        tokio::join!(client_side, server_side);
    match (client, server) {
        (Ok(()), Ok(())) => Ok(()),
        (client, server) => Err(format!("client: {client:?}; server: {server:?}")),
    }
}

fn client(cert: &WorkloadCertificate, expected: &[&str]) -> Arc<rustls::ClientConfig> {
    let expected = expected
        .iter()
        .map(|id| id.parse().unwrap())
        .collect::<Vec<SpiffeId>>();
    client_config_trusting(cert, &migrating(), expected, vec![b"h2".to_vec()]).unwrap()
}

fn server(cert: &WorkloadCertificate) -> Arc<rustls::ServerConfig> {
    server_config_trusting(cert, &migrating(), vec![b"h2".to_vec()]).unwrap()
}

#[tokio::test]
async fn a_server_accepts_clients_of_its_trust_domain_aliases() {
    let dir = tempfile::tempdir().unwrap();
    let reviews = workload(dir.path(), NEW_TD, "reviews");
    let legacy_client = workload(dir.path(), OLD_TD, "productpage");
    handshake(client(&legacy_client, &[]), server(&reviews))
        .await
        .expect("an alias client is accepted");
}

#[tokio::test]
async fn an_expected_peer_matches_the_same_workload_under_an_alias() {
    let dir = tempfile::tempdir().unwrap();
    let productpage = workload(dir.path(), NEW_TD, "productpage");
    let legacy_reviews = workload(dir.path(), OLD_TD, "reviews");
    let expected = ["spiffe://new.td/ns/default/sa/reviews"];
    handshake(client(&productpage, &expected), server(&legacy_reviews))
        .await
        .expect("old.td/reviews stands for new.td/reviews");
    let error = handshake(
        client(&productpage, &["spiffe://new.td/ns/default/sa/ratings"]),
        server(&legacy_reviews),
    )
    .await
    .unwrap_err();
    assert!(error.contains("Unexpected"), "{error}");
}

#[tokio::test]
async fn a_server_refuses_a_client_of_a_foreign_trust_domain() {
    let dir = tempfile::tempdir().unwrap();
    let reviews = workload(dir.path(), NEW_TD, "reviews");
    let foreign = workload(dir.path(), FOREIGN_TD, "productpage");
    let error = handshake(client(&foreign, &[]), server(&reviews))
        .await
        .unwrap_err();
    assert!(error.contains("foreign.td"), "{error}");
    assert!(error.contains("ForeignTrustDomain"), "{error}");
}

#[tokio::test]
async fn a_client_refuses_a_server_of_a_foreign_trust_domain_even_if_expected() {
    let dir = tempfile::tempdir().unwrap();
    let productpage = workload(dir.path(), NEW_TD, "productpage");
    let foreign = workload(dir.path(), FOREIGN_TD, "reviews");
    for expected in [&[][..], &["spiffe://foreign.td/ns/default/sa/reviews"][..]] {
        let error = handshake(client(&productpage, expected), server(&foreign))
            .await
            .unwrap_err();
        assert!(error.contains("ForeignTrustDomain"), "{error}");
    }
}

#[tokio::test]
async fn without_aliases_the_old_trust_domain_is_foreign() {
    let dir = tempfile::tempdir().unwrap();
    let reviews = workload(dir.path(), NEW_TD, "reviews");
    let legacy_client = workload(dir.path(), OLD_TD, "productpage");
    let plain_server = server_config(&reviews, vec![b"h2".to_vec()]).unwrap();
    let error = handshake(client(&legacy_client, &[]), plain_server)
        .await
        .unwrap_err();
    assert!(error.contains("old.td"), "{error}");
}
