//! Security end to end on Bookinfo through real sidecars: PeerAuthentication
//! (mTLS migration from PERMISSIVE to STRICT and back) and
//! AuthorizationPolicy (an identity allow-list and a path deny), checked
//! with plaintext clients and direct mTLS clients holding mesh-signed
//! certificates of other identities.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use trellis_testbed::{UpMesh, send_raw};

const TRELLIS: &str = env!("CARGO_BIN_EXE_trellis");
const CONVERGENCE_DEADLINE: Duration = Duration::from_secs(15);
const PLAINTEXT_GET: &[u8] =
    b"GET /reviews/0 HTTP/1.1\r\nHost: reviews:9080\r\nConnection: close\r\n\r\n";

/// `mode` for the `default` namespace; productpage, which the test calls
/// in plaintext as a user outside the mesh would reach an ingress, stays
/// PERMISSIVE through a workload policy (which takes precedence).
fn peer_authentication(mode: &str) -> String {
    format!(
        "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {{name: default, namespace: default}}\nspec:\n  mtls: {{mode: {mode}}}\n---\napiVersion: security.istio.io/v1beta1\nkind: PeerAuthentication\nmetadata: {{name: productpage, namespace: default}}\nspec:\n  selector: {{matchLabels: {{app: productpage}}}}\n  mtls: {{mode: PERMISSIVE}}\n"
    )
}

/// Polls `check` until it holds, failing the test after the deadline.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + CONVERGENCE_DEADLINE;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn reviews_address(mesh: &UpMesh) -> SocketAddr {
    let reviews = mesh.workload("reviews-v1");
    SocketAddr::new(reviews.address.into(), reviews.inbound_ports[0])
}

async fn plaintext_answered(address: SocketAddr) -> bool {
    send_raw(address, PLAINTEXT_GET)
        .await
        .is_ok_and(|answer| answer.starts_with("HTTP/1.1 200"))
}

/// productpage answers, and its call to reviews was answered by reviews.
async fn productpage_reaches_reviews(mesh: &UpMesh) -> bool {
    match mesh.get(&mesh.url("productpage")).await {
        Ok(reply) => reply.status == 200 && reply.version_of("reviews").is_some(),
        Err(_) => false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_peer_authentication_refuses_plaintext_and_keeps_mesh_traffic() {
    let mesh = UpMesh::start(TRELLIS, "security_strict").await;
    let reviews = reviews_address(&mesh);
    assert!(plaintext_answered(reviews).await, "PERMISSIVE by default");

    mesh.write_config("peer-authentication.yaml", &peer_authentication("STRICT"));
    eventually("STRICT refuses plaintext", || async {
        !plaintext_answered(reviews).await
    })
    .await;
    let refused = send_raw(reviews, PLAINTEXT_GET).await;
    assert!(
        refused.as_ref().is_err() || refused.as_ref().is_ok_and(String::is_empty),
        "a plaintext client got an answer under STRICT: {refused:?}"
    );
    for _ in 0..5 {
        assert!(
            productpage_reaches_reviews(&mesh).await,
            "mesh traffic broke under STRICT"
        );
    }

    mesh.write_config(
        "peer-authentication.yaml",
        &peer_authentication("PERMISSIVE"),
    );
    eventually("PERMISSIVE accepts plaintext again", || async {
        plaintext_answered(reviews).await
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorization_policy_allows_only_listed_identities_and_denies_paths() {
    let mesh = UpMesh::start(TRELLIS, "security_authz").await;
    let reviews = reviews_address(&mesh);
    let ca =
        trellis_ca::MeshCa::load_or_create(&mesh.state().control_plane.ca_dir, "cluster.local")
            .expect("the test mesh's CA");
    let root = std::fs::read_to_string(mesh.root_cert()).unwrap();
    let as_ratings = Client::new(&ca, &root, "bookinfo-ratings");
    let as_productpage = Client::new(&ca, &root, "bookinfo-productpage");
    assert_eq!(as_ratings.get(reviews, "/reviews/0").await.unwrap().0, 200);

    mesh.write_config(
        "reviews-viewer.yaml",
        "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: reviews-viewer, namespace: default}\nspec:\n  selector: {matchLabels: {app: reviews}}\n  action: ALLOW\n  rules:\n  - from:\n    - source: {principals: [cluster.local/ns/default/sa/bookinfo-productpage]}\n    to:\n    - operation: {methods: [GET]}\n",
    );
    eventually("another identity is refused", || async {
        as_ratings
            .get(reviews, "/reviews/0")
            .await
            .is_ok_and(|(status, _)| status == 403)
    })
    .await;
    let (status, body) = as_ratings.get(reviews, "/reviews/0").await.unwrap();
    assert_eq!((status, body.as_str()), (403, "RBAC: access denied"));
    assert_eq!(
        as_productpage.get(reviews, "/reviews/0").await.unwrap().0,
        200
    );
    assert!(
        productpage_reaches_reviews(&mesh).await,
        "productpage lost reviews"
    );
    let plaintext = send_raw(reviews, PLAINTEXT_GET).await.unwrap();
    assert!(plaintext.starts_with("HTTP/1.1 403"), "{plaintext}");

    mesh.write_config(
        "deny-reviews-1.yaml",
        "apiVersion: security.istio.io/v1beta1\nkind: AuthorizationPolicy\nmetadata: {name: deny-reviews-1, namespace: default}\nspec:\n  selector: {matchLabels: {app: reviews}}\n  action: DENY\n  rules:\n  - to:\n    - operation: {paths: [/reviews/1]}\n",
    );
    eventually("the denied path is refused", || async {
        as_productpage
            .get(reviews, "/reviews/1")
            .await
            .is_ok_and(|(status, _)| status == 403)
    })
    .await;
    assert_eq!(
        as_productpage.get(reviews, "/reviews/0").await.unwrap().0,
        200
    );

    let stats = mesh.workload("reviews-v1");
    let url = format!(
        "http://{}:{}/stats/prometheus",
        stats.address, stats.stats_port
    );
    let exposition = mesh.get(&url).await.unwrap().text();
    let denied = exposition.lines().any(|line| {
        line.starts_with("istio_requests_total{")
            && line.contains("response_code=\"403\"")
            && line.contains("response_flags=\"RBAC\"")
            && line.contains("reporter=\"destination\"")
    });
    assert!(denied, "no RBAC denial counted in:\n{exposition}");
}

/// A direct mTLS client holding a mesh-signed certificate for one identity.
struct Client {
    config: std::sync::Arc<tokio_rustls::rustls::ClientConfig>,
}

impl Client {
    fn new(ca: &trellis_ca::MeshCa, root: &str, service_account: &str) -> Client {
        let id = trellis_ca::SpiffeId::new("cluster.local", "default", service_account);
        let request = trellis_ca::CertificateRequest::new(&id).unwrap();
        let chain = ca
            .sign_workload_csr(request.csr_pem(), &id, Duration::from_secs(3600))
            .unwrap();
        let certificate = request.into_certificate(chain, root).unwrap();
        let config =
            trellis_ca::client_config(&certificate, Vec::new(), vec![b"istio-http/1.1".to_vec()])
                .unwrap();
        Client { config }
    }

    /// The status and body of `GET path` (the whole response is read).
    async fn get(&self, address: SocketAddr, path: &str) -> anyhow::Result<(u16, String)> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let tcp = tokio::net::TcpStream::connect(address).await?;
        let name = rustls_pki_types::ServerName::try_from(
            "outbound_.9080_.v1_.reviews.default.svc.cluster.local",
        )?;
        let mut tls = tokio_rustls::TlsConnector::from(self.config.clone())
            .connect(name.to_owned(), tcp)
            .await?;
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: reviews:9080\r\nConnection: close\r\n\r\n");
        tls.write_all(request.as_bytes()).await?;
        let mut response = Vec::new();
        tls.read_to_end(&mut response).await?;
        let text = String::from_utf8_lossy(&response).into_owned();
        let status = text
            .get(9..12)
            .and_then(|code| code.parse().ok())
            .ok_or_else(|| anyhow::anyhow!("not an HTTP response: {text:?}"))?;
        let body = text
            .split_once("\r\n\r\n")
            .map(|(_, body)| body.to_string())
            .unwrap_or_default();
        Ok((status, body))
    }
}
