//! Attempts to get around an AuthorizationPolicy that denies `/admin*` on
//! reviews, through its real sidecar: other spellings of the path (under
//! Istio's default BASE normalization and under DECODE_AND_MERGE_SLASHES,
//! which Istio's security best practices recommend), over HTTP/1.1 and
//! HTTP/2, and request smuggling. The demo app reports the path it got,
//! so the test sees what reached the backend.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt as _, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use trellis_testbed::{UpMesh, send_raw};

const TRELLIS: &str = env!("CARGO_BIN_EXE_trellis");
const CONVERGENCE_DEADLINE: Duration = Duration::from_secs(15);

const DENY_ADMIN: &str = "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: deny-admin, namespace: default}\nspec:\n  selector: {matchLabels: {app: reviews}}\n  action: DENY\n  rules:\n  - to:\n    - operation: {paths: [\"/admin*\"]}\n";

/// What reviews' sidecar does with a request line.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    Denied,
    BadRequest,
    /// The app answered; it got this path.
    Reached(String),
}

fn reviews(mesh: &UpMesh) -> SocketAddr {
    let reviews = mesh.workload("reviews-v1");
    SocketAddr::new(reviews.address.into(), reviews.inbound_ports[0])
}

fn parse_answer(status: u16, body: &str) -> Seen {
    match status {
        403 => Seen::Denied,
        400 => Seen::BadRequest,
        200 => {
            let reply: serde_json::Value = serde_json::from_str(body)
                .unwrap_or_else(|e| panic!("not the demo app's reply ({e}): {body}"));
            Seen::Reached(reply["path"].as_str().unwrap_or_default().to_owned())
        }
        other => panic!("unexpected status {other}: {body}"),
    }
}

/// Sends `GET target` as written, over HTTP/1.1 (plaintext: reviews is
/// PERMISSIVE, as a mesh is by default).
async fn http1(address: SocketAddr, target: &str) -> Seen {
    let request =
        format!("GET {target} HTTP/1.1\r\nHost: reviews:9080\r\nConnection: close\r\n\r\n");
    let answer = send_raw(address, request.as_bytes())
        .await
        .unwrap_or_else(|e| panic!("GET {target}: {e:#}"));
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("GET {target}: no status line in {answer:?}"));
    let body = answer.split_once("\r\n\r\n").map_or("", |(_, body)| body);
    parse_answer(status, body)
}

/// Sends `GET target` over HTTP/2 (prior knowledge), `:path` as written.
async fn http2(address: SocketAddr, target: &str) -> Seen {
    let stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(connection);
    let request = http::Request::get(format!("http://reviews:9080{target}"))
        .body(Empty::<bytes::Bytes>::new())
        .unwrap();
    let response = sender
        .send_request(request)
        .await
        .unwrap_or_else(|e| panic!("h2 GET {target}: {e}"));
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    parse_answer(status, &String::from_utf8_lossy(&body))
}

/// The mesh, and the directory of its mesh config (kept while it runs).
async fn start_with_deny_policy(
    test_name: &str,
    mesh_config: Option<&str>,
) -> (UpMesh, tempfile::TempDir) {
    let mut builder = UpMesh::builder(TRELLIS, test_name);
    let config_dir = tempfile::tempdir().unwrap();
    if let Some(config) = mesh_config {
        let file = config_dir.path().join("mesh.yaml");
        std::fs::write(&file, config).unwrap();
        builder = builder.arg("--mesh-config").arg(file.display().to_string());
    }
    let mesh = builder.start().await;
    mesh.write_config("deny-admin.yaml", DENY_ADMIN);
    let address = reviews(&mesh);
    let deadline = Instant::now() + CONVERGENCE_DEADLINE;
    while http1(address, "/admin").await != Seen::Denied {
        assert!(Instant::now() < deadline, "the DENY policy never applied");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (mesh, config_dir)
}

fn reached(path: &str) -> Seen {
    Seen::Reached(path.to_owned())
}

/// Variants every mode stops, and paths forwarded as normalized.
async fn check_common(address: SocketAddr) {
    for variant in [
        "/admin",
        "/admin/users",
        "/./admin",
        "/a/../admin",
        "/.%2e/admin",
        "/%61dmin",
        "/admin?x",
        "/admin#x",
        "/x\\..\\admin",
    ] {
        assert_eq!(http1(address, variant).await, Seen::Denied, "{variant}");
    }
    assert_eq!(http1(address, "/admin%00").await, Seen::BadRequest);
    // Paths are case-sensitive, as in Istio: another resource, served as such.
    assert_eq!(http1(address, "/Admin").await, reached("/Admin"));
    // What is allowed goes on with the normalized path.
    assert_eq!(
        http1(address, "/reviews/x/../0").await,
        reached("/reviews/0")
    );
    assert_eq!(http2(address, "/./admin").await, Seen::Denied);
    assert_eq!(http2(address, "/reviews/./0").await, reached("/reviews/0"));
    // A lowercase method could read as GET to the app but not to a policy.
    let lowercase = send_raw(
        address,
        b"get /reviews/0 HTTP/1.1\r\nHost: reviews:9080\r\nConnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    assert!(lowercase.starts_with("HTTP/1.1 400"), "{lowercase}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn base_normalization_stops_dot_segments_and_decoded_letters_but_not_slashes() {
    let (mesh, _config) = start_with_deny_policy("authz_bypass_base", None).await;
    let address = reviews(&mesh);
    check_common(address).await;
    // What Istio documents BASE leaves open: the app decides what these are.
    assert_eq!(http1(address, "//admin").await, reached("//admin"));
    assert_eq!(http1(address, "/%2Fadmin").await, reached("/%2Fadmin"));
    assert_eq!(http1(address, "/%2fadmin").await, reached("/%2fadmin"));
    assert_eq!(http2(address, "//admin").await, reached("//admin"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decode_and_merge_slashes_stops_every_spelling_and_smuggling() {
    let (mesh, _config) = start_with_deny_policy(
        "authz_bypass_decode",
        Some("pathNormalization: {normalization: DECODE_AND_MERGE_SLASHES}\n"),
    )
    .await;
    let address = reviews(&mesh);
    check_common(address).await;
    for variant in [
        "//admin",
        "///admin",
        "/%2Fadmin",
        "/%2fadmin",
        "/%5Cadmin",
        "/%5cadmin",
        "/x/..%2F%2Fadmin",
    ] {
        assert_eq!(http1(address, variant).await, Seen::Denied, "{variant}");
    }
    assert_eq!(http2(address, "//admin").await, Seen::Denied);
    assert_eq!(http2(address, "/%2Fadmin").await, Seen::Denied);
    assert_eq!(http1(address, "/a%2Fb").await, reached("/a/b"));

    // Smuggling: a body framed by both Content-Length and chunked, hiding
    // a second request for /admin; and a transfer coding only one side
    // would read. Neither reaches the app as a request for /admin.
    let both = b"POST /reviews/0 HTTP/1.1\r\nHost: reviews:9080\r\nContent-Length: 50\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /admin HTTP/1.1\r\nHost: reviews:9080\r\n\r\n";
    let answer = send_raw(address, both).await.unwrap();
    assert!(!answer.contains("\"path\":\"/admin\""), "{answer}");
    let obfuscated = b"POST /reviews/0 HTTP/1.1\r\nHost: reviews:9080\r\nTransfer-Encoding: chunked, identity\r\nContent-Length: 5\r\n\r\n0\r\n\r\nGET /admin HTTP/1.1\r\nHost: reviews:9080\r\n\r\n";
    let answer = send_raw(address, obfuscated).await.unwrap();
    assert!(
        answer.starts_with("HTTP/1.1 400") || answer.starts_with("HTTP/1.1 501"),
        "{answer}"
    );
    assert!(!answer.contains("\"path\":\"/admin\""), "{answer}");
}
