//! Gateway TLS modes end to end, with curl as the client: mutual TLS with
//! a client CA, optional mutual TLS, TLS terminated before a TCP route, a
//! plain TCP route, and passthrough to a backend that terminates TLS itself.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::{CONVERGENCE_DEADLINE, TRELLIS};
use trellis_testbed::UpMesh;

/// A CA that signs certificates, as files in a temporary directory.
struct TestCa {
    params: rcgen::CertificateParams,
    key: rcgen::KeyPair,
    pem: String,
}

impl TestCa {
    fn new(name: &str) -> TestCa {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let pem = params.self_signed(&key).unwrap().pem();
        TestCa { params, key, pem }
    }

    /// A leaf for `names` (DNS SANs): (chain PEM, key PEM).
    fn issue(&self, names: &[&str]) -> (String, String) {
        let issuer = rcgen::Issuer::new(self.params.clone(), &self.key);
        let key = rcgen::KeyPair::generate().unwrap();
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = rcgen::CertificateParams::new(names.clone()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, names[0].as_str());
        let leaf = params.signed_by(&key, &issuer).unwrap();
        (leaf.pem(), key.serialize_pem())
    }
}

/// Writes `files` (name, PEM) into credential `name` of the gateway.
fn write_credential(mesh: &UpMesh, name: &str, files: &[(&str, &str)]) {
    let dir = mesh.ingress_gateway().credentials_dir.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    for (file, pem) in files {
        let temporary = dir.join(format!(".{file}.tmp"));
        std::fs::write(&temporary, pem).unwrap();
        std::fs::rename(&temporary, dir.join(file)).unwrap();
    }
}

fn write_file(dir: &Path, name: &str, contents: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path
}

/// curl `url` with `args`; its status code, or its error.
fn curl(args: &[&str], url: &str) -> Result<u16, String> {
    let output = std::process::Command::new("curl")
        .args([
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--max-time",
            "5",
        ])
        .args(args)
        .arg(url)
        .output()
        .expect("curl runs");
    if output.status.success() {
        let code = String::from_utf8_lossy(&output.stdout);
        code.trim().parse().map_err(|_| format!("status {code:?}"))
    } else {
        Err(String::from_utf8_lossy(&output.stderr).trim().to_owned())
    }
}

/// [`curl`] until it answers 200, at most until the convergence deadline.
async fn curl_until_ok(args: &[&str], url: &str) -> Result<u16, String> {
    let deadline = Instant::now() + CONVERGENCE_DEADLINE;
    loop {
        let result = curl(args, url);
        if result == Ok(200) || Instant::now() > deadline {
            return result;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `--resolve` for `host:port` at the gateway.
fn resolve(mesh: &UpMesh, host: &str, port: u16) -> String {
    format!("{host}:{port}:{}", mesh.ingress_gateway().address)
}

const EDGE_GATEWAY: &str = "apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: edge
spec:
  selector:
    istio: ingressgateway
  servers:
  - port: {number: 443, name: https-mutual, protocol: HTTPS}
    hosts: [mtls.example.com]
    tls: {mode: MUTUAL, credentialName: edge-cert}
  - port: {number: 443, name: https-optional, protocol: HTTPS}
    hosts: [optional.example.com]
    tls: {mode: OPTIONAL_MUTUAL, credentialName: edge-cert}
  - port: {number: 9443, name: tls-tcp, protocol: TLS}
    hosts: [tcp.example.com]
    tls: {mode: SIMPLE, credentialName: edge-cert, minProtocolVersion: TLSV1_3}
  - port: {number: 31400, name: tcp, protocol: TCP}
    hosts: ['*']
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: edge-http
spec:
  hosts: [mtls.example.com, optional.example.com]
  gateways: [edge]
  http:
  - route:
    - destination: {host: productpage, port: {number: 9080}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: edge-tcp
spec:
  hosts: ['*']
  gateways: [edge]
  tcp:
  - match: [{port: 31400}, {port: 9443}]
    route:
    - destination: {host: productpage, port: {number: 9080}}
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_optional_tls_and_tcp_servers() {
    let mesh = UpMesh::start(TRELLIS, "gateway_tls_modes").await;
    let dir = tempfile::tempdir().unwrap();
    let server_ca = TestCa::new("gateway server CA");
    let client_ca = TestCa::new("gateway client CA");
    let (chain, key) = server_ca.issue(&[
        "mtls.example.com",
        "optional.example.com",
        "tcp.example.com",
    ]);
    write_credential(
        &mesh,
        "edge-cert",
        &[
            ("tls.crt", &chain),
            ("tls.key", &key),
            ("ca.crt", &client_ca.pem),
        ],
    );
    let ca = write_file(dir.path(), "server-ca.pem", &server_ca.pem);
    let ca = ca.to_str().unwrap();
    let (client_chain, client_key) = client_ca.issue(&["client.example.com"]);
    let cert = write_file(dir.path(), "client.pem", &client_chain);
    let key = write_file(dir.path(), "client.key", &client_key);
    let (cert, key) = (cert.to_str().unwrap(), key.to_str().unwrap());
    let stranger = TestCa::new("unknown CA").issue(&["stranger.example.com"]);
    let stranger_cert = write_file(dir.path(), "stranger.pem", &stranger.0);
    let stranger_key = write_file(dir.path(), "stranger.key", &stranger.1);
    mesh.write_config("edge.yaml", EDGE_GATEWAY);

    // MUTUAL: a client certificate the CA signed gets in.
    let mutual = resolve(&mesh, "mtls.example.com", 10443);
    let url = "https://mtls.example.com:10443/productpage";
    let with_cert = [
        "--resolve",
        &mutual,
        "--cacert",
        ca,
        "--cert",
        cert,
        "--key",
        key,
    ];
    assert_eq!(curl_until_ok(&with_cert, url).await, Ok(200));
    // Without one, or with one from another CA, the handshake is refused.
    let without = curl(&["--resolve", &mutual, "--cacert", ca], url);
    assert!(without.is_err(), "{without:?}");
    let foreign = curl(
        &[
            "--resolve",
            &mutual,
            "--cacert",
            ca,
            "--cert",
            stranger_cert.to_str().unwrap(),
            "--key",
            stranger_key.to_str().unwrap(),
        ],
        url,
    );
    assert!(foreign.is_err(), "{foreign:?}");

    // OPTIONAL_MUTUAL: clients without a certificate get in too.
    let optional = resolve(&mesh, "optional.example.com", 10443);
    let url = "https://optional.example.com:10443/productpage";
    assert_eq!(
        curl(&["--resolve", &optional, "--cacert", ca], url),
        Ok(200)
    );

    // TLS terminated (TLS 1.3 only), then a TCP route to productpage.
    let tcp_tls = resolve(&mesh, "tcp.example.com", 9443);
    let url = "https://tcp.example.com:9443/productpage";
    assert_eq!(
        curl_until_ok(&["--resolve", &tcp_tls, "--cacert", ca], url).await,
        Ok(200)
    );
    let tls12 = curl(
        &["--resolve", &tcp_tls, "--cacert", ca, "--tls-max", "1.2"],
        url,
    );
    assert!(tls12.is_err(), "{tls12:?}");

    // Plain TCP on 31400, routed to productpage.
    let url = format!(
        "http://{}:31400/productpage",
        mesh.ingress_gateway().address
    );
    assert_eq!(curl_until_ok(&[], &url).await, Ok(200));
}

/// A TLS server for `names` that answers every connection's request with
/// 200 and `passthrough-backend`: the mesh never holds its key.
async fn tls_backend(
    ca: &TestCa,
    names: &[&str],
) -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    use rustls_pki_types::pem::PemObject;
    let (chain, key) = ca.issue(names);
    let chain = rustls_pki_types::CertificateDer::pem_slice_iter(chain.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = rustls_pki_types::PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
    let provider = Arc::new(tokio_rustls::rustls::crypto::aws_lc_rs::default_provider());
    let config = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let serving = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(stream).await else {
                    return;
                };
                let mut request = Vec::new();
                let mut buffer = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buffer[..n]),
                    }
                }
                let body = "passthrough-backend\n";
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tls.write_all(response.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    (address, serving)
}

/// The backend as a mesh service without a sidecar: a Service, a
/// WorkloadEntry at its address, and plaintext (the bytes are its own TLS).
fn secure_backend_config(port: u16) -> String {
    format!(
        "apiVersion: v1
kind: Service
metadata: {{name: secure-backend, namespace: default}}
spec:
  selector: {{app: secure-backend}}
  ports: [{{name: tls, port: 8443, targetPort: {port}}}]
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{name: secure-backend-0, namespace: default}}
spec: {{address: 127.0.0.1, labels: {{app: secure-backend}}}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: secure-backend, namespace: default}}
spec:
  host: secure-backend
  trafficPolicy: {{tls: {{mode: DISABLE}}}}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: passthrough}}
spec:
  selector: {{istio: ingressgateway}}
  servers:
  - port: {{number: 443, name: tls, protocol: TLS}}
    hosts: ['*.example.com']
    tls: {{mode: PASSTHROUGH}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: secure-backend}}
spec:
  hosts: [secure.example.com]
  gateways: [passthrough]
  tls:
  - match: [{{sniHosts: [secure.example.com], port: 443}}]
    route:
    - destination: {{host: secure-backend, port: {{number: 8443}}}}
"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passthrough_reaches_a_backend_that_terminates_tls_itself() {
    let mesh = UpMesh::start(TRELLIS, "gateway_passthrough").await;
    let backend_ca = TestCa::new("backend CA");
    let (backend, serving) = tls_backend(&backend_ca, &["secure.example.com"]).await;
    let dir = tempfile::tempdir().unwrap();
    let ca = write_file(dir.path(), "backend-ca.pem", &backend_ca.pem);
    mesh.write_config(
        "secure-backend.yaml",
        &secure_backend_config(backend.port()),
    );

    // The backend's own certificate verifies: the gateway did not terminate.
    let sni = resolve(&mesh, "secure.example.com", 10443);
    let args = ["--resolve", &sni, "--cacert", ca.to_str().unwrap()];
    let url = "https://secure.example.com:10443/";
    assert_eq!(curl_until_ok(&args, url).await, Ok(200));
    let body = std::process::Command::new("curl")
        .args(["-sS", "--max-time", "5"])
        .args(args)
        .arg(url)
        .output()
        .expect("curl runs");
    assert_eq!(
        String::from_utf8_lossy(&body.stdout),
        "passthrough-backend\n"
    );
    // A name no route takes matches no chain: refused.
    let other = resolve(&mesh, "other.example.com", 10443);
    let refused = curl(
        &["--resolve", &other, "-k"],
        "https://other.example.com:10443/",
    );
    assert!(refused.is_err(), "{refused:?}");
    serving.abort();
}
