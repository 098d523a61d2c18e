//! External services end to end, as Istio's egress tasks show them: a
//! ServiceEntry declares an external host (STATIC, DNS or DNS_ROUND_ROBIN
//! resolution; DNS names here are `localhost`, resolved by the system's
//! hosts file), and the app reaches it by name through its sidecar, in
//! plaintext (MESH_EXTERNAL: no mesh mTLS, no mesh headers), or with TLS
//! the sidecar originates for a DestinationRule (Istio's "Egress TLS
//! origination" task). The external servers are the test's own, on
//! loopback; the capture-mode test (root only) puts its external server in
//! a network namespace of its own, beside a captured pod. Every loop is
//! bounded.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_rustls::rustls;
use trellis_testbed::netns::{Star, unavailable};
use trellis_testbed::{Reply, UpMesh};

// The capture tests' pods; this file uses some of them.
#[allow(dead_code)]
#[path = "capture/pods.rs"]
mod pods;

const TRELLIS: &str = env!("CARGO_BIN_EXE_trellis");
const CONVERGENCE_DEADLINE: Duration = Duration::from_secs(15);
const EXTERNAL_REPLY: &str = "external-server";

/// A mesh workload whose sidecar the test uses as the app would.
const CLIENT: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: client}
spec:
  ports: [{port: 8080, name: http}]
  selector: {app: client}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: client-v1}
spec:
  replicas: 1
  selector: {matchLabels: {app: client}}
  template:
    metadata: {labels: {app: client, version: v1}}
    spec:
      containers: [{name: client, image: demo, ports: [{containerPort: 8080}]}]
"#;

/// What an external server saw of one request.
#[derive(Clone, Debug)]
struct Seen {
    /// The TLS server name the client sent (`None` over plaintext).
    sni: Option<String>,
    /// The request head, lowercased.
    head: String,
}

type Log = Arc<Mutex<Vec<Seen>>>;

/// An HTTP/1.1 server on 127.0.0.1 (where `localhost` resolves), over TLS
/// when given a config; it logs each request and answers 200.
async fn external_server(tls: Option<rustls::ServerConfig>) -> (SocketAddr, Log) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let log = Log::default();
    let seen = log.clone();
    let acceptor = tls.map(|config| tokio_rustls::TlsAcceptor::from(Arc::new(config)));
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, seen) = (acceptor.clone(), seen.clone());
            tokio::spawn(async move {
                match acceptor {
                    None => answer(tcp, None, seen).await,
                    Some(acceptor) => {
                        if let Ok(tls) = acceptor.accept(tcp).await {
                            let sni = tls.get_ref().1.server_name().map(str::to_string);
                            answer(tls, sni, seen).await;
                        }
                    }
                }
            });
        }
    });
    (address, log)
}

async fn answer(mut stream: impl AsyncRead + AsyncWrite + Unpin, sni: Option<String>, log: Log) {
    let mut head = Vec::new();
    let mut buffer = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buffer[..n]),
        }
    }
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    log.lock().unwrap().push(Seen { sni, head });
    let response = format!(
        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{EXTERNAL_REPLY}",
        EXTERNAL_REPLY.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

async fn mesh(test: &str) -> (UpMesh, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temporary manifest dir");
    let path = dir.path().join("workloads.yaml");
    std::fs::write(&path, CLIENT).expect("writing manifests");
    let mesh = UpMesh::builder(TRELLIS, test).file(&path).start().await;
    (mesh, dir)
}

/// GET `http://HOST/` through the client's sidecar, as its app would.
async fn via_client(mesh: &UpMesh, host: &str) -> Reply {
    let client = mesh.workload("client-v1");
    let url = format!("http://{}:{}/", client.address, client.outbound_port);
    mesh.get_with_headers(&url, &[("host", host)])
        .await
        .expect("the client's sidecar answers")
}

/// Sends until the sidecar answers `status` (config converges), bounded.
async fn until_status(mesh: &UpMesh, host: &str, status: u16) -> Reply {
    let until = Instant::now() + CONVERGENCE_DEADLINE;
    loop {
        let reply = via_client(mesh, host).await;
        if reply.status == status {
            return reply;
        }
        assert!(
            Instant::now() < until,
            "{host}: still {} ({}), expected {status}\n{}",
            reply.status,
            reply.text(),
            mesh.output().join("\n")
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn service_entries(port: u16) -> String {
    format!(
        r#"apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: static-external}}
spec:
  hosts: [static.external.test]
  ports: [{{number: 80, name: http, protocol: HTTP}}]
  resolution: STATIC
  endpoints: [{{address: 127.0.0.1, ports: {{http: {port}}}}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: dns-external}}
spec:
  hosts: [dns.external.test]
  ports: [{{number: 8080, name: http, protocol: HTTP, targetPort: {port}}}]
  resolution: DNS
  endpoints: [{{address: localhost}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: round-robin-external}}
spec:
  hosts: [rr.external.test]
  ports: [{{number: 80, name: http, protocol: HTTP}}]
  resolution: DNS_ROUND_ROBIN
  endpoints: [{{address: localhost, ports: {{http: {port}}}}}]
"#
    )
}

/// Each resolution reaches the external server by the entry's host, in
/// plaintext and without the mesh's headers; the client's sidecar counts
/// the requests under the external host.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_entries_reach_external_servers_by_name() {
    let (server, seen) = external_server(None).await;
    let (mesh, _dir) = mesh("egress-resolutions").await;
    mesh.write_config("external.yaml", &service_entries(server.port()));
    for host in [
        "static.external.test",
        "dns.external.test:8080",
        "rr.external.test",
    ] {
        let reply = until_status(&mesh, host, 200).await;
        assert_eq!(reply.text(), EXTERNAL_REPLY, "{host}");
        let last = seen.lock().unwrap().last().cloned().expect("a request");
        assert!(
            last.head.contains(&format!("host: {host}\r\n")),
            "{host}: {last:?}"
        );
        assert_eq!(last.sni, None);
        for mesh_header in ["x-envoy-peer-metadata", "x-forwarded-client-cert"] {
            assert!(!last.head.contains(mesh_header), "{host}: {last:?}");
        }
    }
    let client = mesh.workload("client-v1");
    let stats_url = format!(
        "http://{}:{}/stats/prometheus",
        client.address, client.admin_port
    );
    let stats = mesh.get(&stats_url).await.unwrap().text();
    let counted = stats.lines().any(|line| {
        line.starts_with("istio_requests_total{")
            && line.contains("destination_service=\"dns.external.test\"")
            && line.contains("response_code=\"200\"")
    });
    assert!(counted, "{stats}");
}

/// A CA and a server certificate for `name`, as PEM.
fn certificates(name: &str) -> (String, String, String) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_pem = ca_params.self_signed(&ca_key).unwrap().pem();
    let issuer = rcgen::Issuer::new(ca_params, &ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec![name.to_string()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    (ca_pem, leaf.pem(), key.serialize_pem())
}

fn tls_server_config(chain: &str, key: &str) -> rustls::ServerConfig {
    use rustls_pki_types::pem::PemObject;
    let chain = rustls_pki_types::CertificateDer::pem_slice_iter(chain.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = rustls_pki_types::PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap()
}

/// Istio's "Egress TLS origination" task: port 80 of the entry is sent to
/// the server's TLS port, and a DestinationRule makes the sidecar
/// originate TLS there, verifying the server with the given CA.
fn tls_origination(port: u16, ca_file: &std::path::Path) -> String {
    format!(
        r#"apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: secure-external}}
spec:
  hosts: [secure.external.test]
  ports: [{{number: 80, name: http, protocol: HTTP, targetPort: {port}}}]
  resolution: DNS
  endpoints: [{{address: localhost}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: originate-tls}}
spec:
  host: secure.external.test
  trafficPolicy:
    portLevelSettings:
    - port: {{number: 80}}
      tls: {{mode: SIMPLE, caCertificates: {}}}
"#,
        ca_file.display()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sidecar_originates_tls_to_an_external_server() {
    let (ca, chain, key) = certificates("secure.external.test");
    let (server, seen) = external_server(Some(tls_server_config(&chain, &key))).await;
    let files = tempfile::tempdir().unwrap();
    let ca_file = files.path().join("ca.crt");
    std::fs::write(&ca_file, ca).unwrap();
    let (mesh, _dir) = mesh("egress-tls-origination").await;
    mesh.write_config("secure.yaml", &tls_origination(server.port(), &ca_file));
    let reply = until_status(&mesh, "secure.external.test", 200).await;
    assert_eq!(reply.text(), EXTERNAL_REPLY);
    let last = seen.lock().unwrap().last().cloned().expect("a request");
    assert_eq!(last.sni.as_deref(), Some("secure.external.test"));
    assert!(last.head.starts_with("get / http/1.1\r\n"), "{last:?}");

    // A CA that did not sign the server: the sidecar refuses it.
    let (other_ca, _, _) = certificates("secure.external.test");
    let other_file = files.path().join("other-ca.crt");
    std::fs::write(&other_file, other_ca).unwrap();
    mesh.write_config("secure.yaml", &tls_origination(server.port(), &other_file));
    until_status(&mesh, "secure.external.test", 503).await;
    let requests = seen.lock().unwrap().len();
    assert_eq!(via_client(&mesh, "secure.external.test").await.status, 503);
    assert_eq!(
        seen.lock().unwrap().len(),
        requests,
        "no request past a failed verification"
    );
}

/// Hub 10.214.0.1 (control plane), pod 10.214.0.2 (captured), the external
/// server 10.214.0.3 (no sidecar).
const CAPTURE_PREFIX: [u8; 3] = [10, 214, 0];
const EXTERNAL_PORT: u16 = 9080;

fn captured_mesh(external: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{name: app-0, namespace: default}}
spec: {{address: 10.214.0.2, labels: {{app: app}}, serviceAccount: app}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: external, namespace: default}}
spec:
  hosts: [api.external.test]
  ports: [{{number: {EXTERNAL_PORT}, name: http, protocol: HTTP}}]
  resolution: STATIC
  endpoints: [{{address: {external}}}]
"
    )
}

/// With capture and REGISTRY_ONLY, as in a Kubernetes pod: the app calls
/// the external host's address with its name in `Host` (no proxy
/// settings), and its sidecar routes it by the ServiceEntry, in plaintext;
/// another host at the same address gets the 502 of `block_all`.
#[test]
fn captured_app_reaches_a_service_entry_under_registry_only() {
    if let Some(reason) = unavailable() {
        eprintln!("skipping the capture egress test: {reason}");
        return;
    }
    let star =
        Star::new("egress", CAPTURE_PREFIX, &["app", "external"]).expect("building the namespaces");
    let (app, external) = (star.pod("app"), star.pod("external"));
    let dir = pods::state_dir(&captured_mesh(&external.address.to_string()), &["app"]);
    let control_plane = pods::start_control_plane(&star.hub, dir.path(), "REGISTRY_ONLY");
    pods::start_app(external, "external", EXTERNAL_PORT, dir.path());
    pods::start_sidecar(app, "app", &star.hub, dir.path());

    let target = format!("{}:{EXTERNAL_PORT}", external.address);
    let mut last = None;
    let reached = pods::eventually(|| {
        last = Some(pods::http_get_as(app, &target, "api.external.test", "/"));
        matches!(&last, Some(Ok((200, _))))
    });
    assert!(
        reached,
        "{last:?}\n{}",
        pods::read(&dir.path().join("proxy-app.log"))
    );
    let (_, body) = last.unwrap().unwrap();
    assert!(
        !body.contains("spiffe://"),
        "MESH_EXTERNAL got mesh mTLS: {body}"
    );
    let (status, _) = pods::http_get_as(app, &target, "other.test", "/").unwrap();
    assert_eq!(status, 502, "a host outside the registry is blocked");

    let stats_host = format!("{}:15090", app.address);
    let (_, stats) = pods::http_get(app, &stats_host, "/stats/prometheus").unwrap();
    let counted = stats.lines().any(|line| {
        line.starts_with("istio_requests_total{")
            && line.contains("destination_service=\"api.external.test\"")
            && line.contains("response_code=\"200\"")
    });
    assert!(counted, "{stats}");
    star.hub.stop(control_plane);
}
