//! The walking skeleton's acceptance scenarios: `trellis up` on Bookinfo,
//! driven from the outside as a user would, through loopback addresses only.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use trellis_testbed::{UpMesh, requests_counted, send_raw};

const TRELLIS: &str = env!("CARGO_BIN_EXE_trellis");
/// Convergence is a benchmark figure; tests only give it a generous deadline.
const CONVERGENCE_DEADLINE: Duration = Duration::from_secs(10);

fn sample(name: &str) -> String {
    let path = format!(
        "{}/../../samples/bookinfo/networking/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(path).expect("bundled sample")
}

async fn reviews_version(mesh: &UpMesh, user: Option<&str>) -> anyhow::Result<String> {
    let headers: Vec<(&str, &str)> = user.map(|u| ("end-user", u)).into_iter().collect();
    let reply = mesh
        .get_with_headers(&mesh.url("productpage"), &headers)
        .await?;
    anyhow::ensure!(reply.status == 200, "productpage answered {}", reply.status);
    reply
        .version_of("reviews")
        .ok_or_else(|| anyhow::anyhow!("no reviews call in {}", reply.text()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weighted_split_then_live_switch_to_header_routing() {
    let mesh = Arc::new(UpMesh::start(TRELLIS, "weighted_split").await);
    let mut v1 = 0;
    for _ in 0..1000 {
        match reviews_version(&mesh, None).await.unwrap().as_str() {
            "v1" => v1 += 1,
            "v2" => {}
            other => panic!("90-10 config sent a request to reviews {other}"),
        }
    }
    assert!(
        (870..=930).contains(&v1),
        "reviews v1 answered {v1} of 1000, expected 900 ± 30"
    );

    // Keep traffic flowing while the VirtualService is replaced atomically.
    let load = {
        let mesh = mesh.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let mut sent = 0;
            while started.elapsed() < CONVERGENCE_DEADLINE + Duration::from_secs(2) && sent < 5000 {
                reviews_version(&mesh, None)
                    .await
                    .expect("no request may fail during the switch");
                sent += 1;
            }
            sent
        })
    };
    mesh.write_config(
        "virtual-service-reviews-90-10.yaml",
        &sample("virtual-service-reviews-jason-v2-v3.yaml"),
    );
    let deadline = Instant::now() + CONVERGENCE_DEADLINE;
    loop {
        let jason = reviews_version(&mesh, Some("jason")).await.unwrap();
        let other = reviews_version(&mesh, None).await.unwrap();
        if jason == "v2" && other == "v3" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "routing did not switch: jason -> {jason}, others -> {other}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for _ in 0..50 {
        assert_eq!(reviews_version(&mesh, Some("jason")).await.unwrap(), "v2");
        assert_eq!(reviews_version(&mesh, None).await.unwrap(), "v3");
    }
    assert!(load.await.unwrap() > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_hop_is_mutual_tls_with_spiffe_identities() {
    let mesh = UpMesh::start(TRELLIS, "mtls_hops").await;
    let reply = mesh.get(&mesh.url("productpage")).await.unwrap();
    let tree = reply.demo();
    let reviews = tree.find("reviews").expect("productpage called reviews");
    let xfcc = reviews
        .headers
        .get("x-forwarded-client-cert")
        .expect("reviews' app got XFCC");
    assert!(
        xfcc.contains("URI=spiffe://cluster.local/ns/default/sa/bookinfo-productpage"),
        "{xfcc}"
    );
    assert!(
        xfcc.contains("By=spiffe://cluster.local/ns/default/sa/bookinfo-reviews"),
        "{xfcc}"
    );

    // Both sidecars count the call with Istio's labels.
    let details = mesh.workload("details-v1");
    let inbound = scrape(&mesh, details.address, details.stats_port).await;
    assert_counted(
        &inbound,
        &[
            "reporter=\"destination\"",
            "source_principal=\"spiffe://cluster.local/ns/default/sa/bookinfo-productpage\"",
            "destination_workload=\"details-v1\"",
            "destination_service=\"details.default.svc.cluster.local\"",
            "response_code=\"200\"",
            "connection_security_policy=\"mutual_tls\"",
        ],
    );
    let productpage = mesh.workload("productpage-v1");
    let outbound = scrape(&mesh, productpage.address, productpage.stats_port).await;
    assert_counted(
        &outbound,
        &[
            "reporter=\"source\"",
            "source_workload=\"productpage-v1\"",
            "destination_workload=\"details-v1\"",
            "destination_principal=\"spiffe://cluster.local/ns/default/sa/bookinfo-details\"",
            "destination_service_name=\"details\"",
            "response_code=\"200\"",
        ],
    );

    // The sidecar's Envoy-style config dump shows the mTLS subset cluster.
    let dump = mesh
        .get(&format!(
            "http://{}:{}/config_dump",
            productpage.address, productpage.admin_port
        ))
        .await
        .unwrap()
        .json();
    // Sections are found by type, as Envoy's dump readers do.
    let clusters = dump["configs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|section| section["@type"] == "type.googleapis.com/envoy.admin.v3.ClustersConfigDump")
        .expect("a clusters section");
    let v2 = clusters["dynamic_active_clusters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["cluster"]["name"] == "outbound|9080|v2|reviews.default.svc.cluster.local")
        .expect("the reviews v2 subset cluster is in the config dump");
    assert_eq!(
        v2["cluster"]["transportSocket"]["typedConfig"]["sni"],
        "outbound_.9080_.v2_.reviews.default.svc.cluster.local"
    );

    // A client with the mesh's ALPN but a certificate from another CA.
    let reviews = mesh.workload("reviews-v1");
    let address = SocketAddr::new(reviews.address.into(), reviews.inbound_ports[0]);
    let outcome =
        foreign_ca_request(address, &std::fs::read_to_string(mesh.root_cert()).unwrap()).await;
    assert!(
        outcome.is_err(),
        "a foreign certificate got an answer: {outcome:?}"
    );
}

async fn scrape(mesh: &UpMesh, address: std::net::Ipv4Addr, port: u16) -> String {
    let reply = mesh
        .get(&format!("http://{address}:{port}/stats/prometheus"))
        .await
        .unwrap();
    assert_eq!(reply.status, 200);
    reply.text()
}

/// A non-zero `istio_requests_total` series carrying every given label.
fn assert_counted(exposition: &str, labels: &[&str]) {
    assert!(
        requests_counted(exposition, labels) >= 1.0,
        "no istio_requests_total series with {labels:?} in:\n{exposition}"
    );
}

/// Sends a request over TLS with a certificate signed by a fresh, foreign
/// CA, trusting the mesh root so that only the server can refuse.
async fn foreign_ca_request(address: SocketAddr, mesh_root: &str) -> anyhow::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir()?;
    let foreign = trellis_ca::MeshCa::load_or_create(dir.path(), "cluster.local")?;
    let id = trellis_ca::SpiffeId::new("cluster.local", "default", "bookinfo-productpage");
    let request = trellis_ca::CertificateRequest::new(&id)?;
    let chain = foreign.sign_workload_csr(request.csr_pem(), &id, Duration::from_secs(3600))?;
    let mut certificate = request.into_certificate(chain, foreign.root_cert_pem())?;
    certificate.root_pem = mesh_root.to_string();
    let config =
        trellis_ca::client_config(&certificate, Vec::new(), vec![b"istio-http/1.1".to_vec()])?;
    let tcp = tokio::net::TcpStream::connect(address).await?;
    let name = rustls_pki_types::ServerName::try_from(
        "outbound_.9080_.v1_.reviews.default.svc.cluster.local",
    )?;
    let mut tls = tokio_rustls::TlsConnector::from(config)
        .connect(name.to_owned(), tcp)
        .await?;
    tls.write_all(b"GET /reviews/0 HTTP/1.1\r\nHost: reviews:9080\r\n\r\n")
        .await?;
    let mut response = Vec::new();
    tls.read_to_end(&mut response).await?;
    anyhow::ensure!(!response.is_empty(), "connection closed without a response");
    Ok(String::from_utf8_lossy(&response).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traffic_survives_the_control_plane_and_resumes_config_after_restart() {
    let mut mesh = UpMesh::start(TRELLIS, "control_plane_restart").await;
    mesh.kill_control_plane();
    let started = Instant::now();
    let mut served = 0;
    while started.elapsed() < Duration::from_secs(10) {
        reviews_version(&mesh, None)
            .await
            .expect("no request may fail without a control plane");
        served += 1;
    }
    assert!(served > 0);

    mesh.restart_control_plane().await;
    mesh.write_config(
        "virtual-service-reviews-90-10.yaml",
        &sample("virtual-service-reviews-v3.yaml"),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while reviews_version(&mesh, None).await.unwrap() != "v3"
        || reviews_version(&mesh, None).await.unwrap() != "v3"
    {
        assert!(
            Instant::now() < deadline,
            "proxies did not take config from the restarted control plane"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_config_is_reported_and_routing_stays() {
    let mesh = UpMesh::start(TRELLIS, "invalid_config").await;
    mesh.write_config(
        "virtual-service-reviews-90-10.yaml",
        &sample("virtual-service-reviews-v3.yaml"),
    );
    let deadline = Instant::now() + CONVERGENCE_DEADLINE;
    while reviews_version(&mesh, None).await.unwrap() != "v3" {
        assert!(Instant::now() < deadline, "v3 routing never applied");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    mesh.write_config(
        "broken-syntax.yaml",
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: x\nspec: [\n",
    );
    let syntax = mesh
        .wait_for_output("broken-syntax.yaml:", CONVERGENCE_DEADLINE)
        .await;
    assert!(
        syntax.as_deref().is_some_and(|l| l.starts_with("error: ")),
        "no syntax error reported: {syntax:?}"
    );

    let bad_weight =
        sample("virtual-service-reviews-90-10.yaml").replace("weight: 10", "weight: -10");
    mesh.write_config("virtual-service-reviews-90-10.yaml", &bad_weight);
    let weight = mesh
        .wait_for_output("spec.http[0].route[1].weight", CONVERGENCE_DEADLINE)
        .await;
    let weight = weight.expect("the negative weight is reported with its field");
    assert!(
        weight.contains("virtual-service-reviews-90-10.yaml:"),
        "{weight}"
    );

    let both = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: ratings\nspec:\n  hosts: [ratings]\n  http:\n  - redirect: {uri: /x}\n    route:\n    - destination: {host: ratings}\n";
    mesh.write_config("redirect-and-route.yaml", both);
    let reported = mesh
        .wait_for_output("redirect-and-route.yaml:", CONVERGENCE_DEADLINE)
        .await;
    assert!(reported.is_some_and(|l| l.contains("spec.http[0]")));

    // The last good config (all to v3) is still in force; nothing crashed.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for _ in 0..50 {
        assert_eq!(reviews_version(&mesh, None).await.unwrap(), "v3");
    }
    mesh.write_config(
        "virtual-service-reviews-90-10.yaml",
        &sample("virtual-service-reviews-jason-v2-v3.yaml"),
    );
    let deadline = Instant::now() + CONVERGENCE_DEADLINE;
    while reviews_version(&mesh, Some("jason")).await.unwrap() != "v2" {
        assert!(
            Instant::now() < deadline,
            "the control plane stopped taking valid config"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_get_http_errors_and_the_proxy_keeps_serving() {
    let mesh = UpMesh::start(TRELLIS, "malformed_requests").await;
    let productpage = mesh.workload("productpage-v1");
    let inbound = SocketAddr::new(productpage.address.into(), productpage.inbound_ports[0]);
    let outbound = SocketAddr::new(productpage.address.into(), productpage.outbound_port);
    for address in [inbound, outbound] {
        let reply = send_raw(address, b"GARBAGE\x01 / HTTP/9.9\r\n\r\n")
            .await
            .unwrap();
        assert!(reply.starts_with("HTTP/1.1 400"), "{address}: {reply}");
        let huge = format!(
            "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
            "a".repeat(100 * 1024)
        );
        let reply = send_raw(address, huge.as_bytes()).await.unwrap();
        assert!(reply.starts_with("HTTP/1.1 431"), "{address}: {reply}");
        // Smuggling: a body framed both ways is read as chunked and the
        // connection closed after the answer (RFC 9112); framing another
        // parser could read differently is refused before it is forwarded.
        let reply = send_raw(
            address,
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        )
        .await
        .unwrap();
        assert!(
            reply
                .to_ascii_lowercase()
                .contains("\r\nconnection: close\r\n"),
            "{address}: {reply}"
        );
        for (request, status) in [
            (
                "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
                "501",
            ),
            ("GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n", "400"),
            (
                "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n folded\r\n\r\n",
                "400",
            ),
            ("GET / HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n", "400"),
            (
                "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
                "400",
            ),
        ] {
            let reply = send_raw(address, request.as_bytes()).await.unwrap();
            assert!(
                reply.starts_with(&format!("HTTP/1.1 {status}")),
                "{address} {request:?}: {reply}"
            );
        }
    }
    // HTTP/2 clients are served on both sides of the sidecar.
    let (status, body) = h2_get(inbound, "productpage:9080", "/productpage")
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"service\":\"productpage\""), "{body}");
    let (status, body) = h2_get(outbound, "reviews:9080", "/reviews/0")
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"service\":\"reviews\""), "{body}");

    let reply = send_raw(
        outbound,
        b"GET /x HTTP/1.1\r\nHost: nowhere.example:80\r\n\r\n",
    )
    .await
    .unwrap();
    assert!(reply.starts_with("HTTP/1.1 404"), "unknown host: {reply}");
    assert_eq!(
        mesh.get(&mesh.url("productpage")).await.unwrap().status,
        200
    );
}

/// One HTTP/2 (prior knowledge) GET.
async fn h2_get(address: SocketAddr, authority: &str, path: &str) -> anyhow::Result<(u16, String)> {
    use http_body_util::BodyExt;
    let tcp = tokio::net::TcpStream::connect(address).await?;
    let io = hyper_util::rt::TokioIo::new(tcp);
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), io).await?;
    tokio::spawn(connection);
    let request = http::Request::get(format!("http://{authority}{path}"))
        .body(http_body_util::Empty::<bytes::Bytes>::new())?;
    let response = sender.send_request(request).await?;
    let status = response.status().as_u16();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}
