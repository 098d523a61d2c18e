//! Istio's ingress gateway end to end: `trellis up` runs Bookinfo with
//! `bookinfo-gateway.yaml`, and requests enter the mesh through the
//! gateway (a router proxy) on its own loopback address, then reach
//! productpage, details and reviews through their sidecars. Live
//! VirtualService edits rebind routes; HTTPS servers terminate TLS with
//! their `credentialName` (checked with curl, as users do), and plain HTTP
//! can redirect to HTTPS. The other TLS modes and TCP servers are in
//! `gateway/tls_modes.rs`.

use std::time::{Duration, Instant};

use trellis_testbed::{Reply, UpMesh, requests_counted};

#[path = "gateway/tls_modes.rs"]
mod tls_modes;

const TRELLIS: &str = env!("CARGO_BIN_EXE_trellis");
const CONVERGENCE_DEADLINE: Duration = Duration::from_secs(15);
const GATEWAY_POD: &str = "istio-ingressgateway-0";

fn bookinfo_gateway_yaml() -> String {
    let path = format!(
        "{}/../../samples/bookinfo/networking/bookinfo-gateway.yaml",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(path).expect("bundled sample")
}

/// A rule for the bound `bookinfo` VirtualService, first in its `http`.
const RATINGS_RULE: &str = "  - match:
    - uri:
        prefix: /ratings
    route:
    - destination:
        host: ratings
        port:
          number: 9080
";

/// A VirtualService for every host sending /details to details, bound
/// by `gateways` (a YAML line, or nothing for the mesh only).
fn details_direct(gateways: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: details-direct
spec:
  hosts: ['*']
{gateways}  http:
  - match:
    - uri:
        prefix: /details
    route:
    - destination:
        host: details
        port:
          number: 9080
"
    )
}

async fn get(mesh: &UpMesh, url: &str) -> Reply {
    mesh.get(url)
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e:#}"))
}

/// GETs `url` until `done` holds for the reply, at most until the deadline.
async fn get_until(mesh: &UpMesh, url: &str, done: impl Fn(&Reply) -> bool) -> Reply {
    let deadline = Instant::now() + CONVERGENCE_DEADLINE;
    loop {
        let reply = get(mesh, url).await;
        if done(&reply) || Instant::now() > deadline {
            return reply;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The sum of the gateway's `istio_requests_total` over series carrying
/// every label.
async fn gateway_requests(mesh: &UpMesh, labels: &[&str]) -> f64 {
    let stats = mesh.proxy_stats(mesh.workload(GATEWAY_POD)).await;
    requests_counted(&stats, labels)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bookinfo_product_page_through_the_ingress_gateway() {
    let mesh = UpMesh::start(TRELLIS, "gateway_product_page").await;
    let gateway = mesh.ingress_gateway();
    assert_eq!(gateway.namespace, "istio-system");
    let url = gateway.url.clone().expect("the gateway has an HTTP port");
    assert_eq!(url, format!("{}/productpage", mesh.gateway_base_url(8080)));

    let reply = get(&mesh, &url).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let page = reply.demo();
    assert_eq!(page.service, "productpage");
    // The gateway called productpage over mesh mTLS with its own identity.
    let caller = &page.headers["x-forwarded-client-cert"];
    assert!(
        caller.contains(
            "URI=spiffe://cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account"
        ),
        "{caller}"
    );
    // Productpage's own calls went through its sidecar as usual.
    assert!(page.undelivered_calls().is_empty(), "{page:?}");
    for service in ["details", "reviews"] {
        let call = page
            .call(service)
            .unwrap_or_else(|| panic!("no call to {service}"));
        assert!(call.answered_by_app(), "{call:?}");
    }

    // No route: 404 with response flag NR, counted by the gateway (which
    // may have answered NR before its routes first arrived, too).
    const NO_ROUTE: [&str; 2] = ["response_code=\"404\"", "response_flags=\"NR\""];
    let before = gateway_requests(&mesh, &NO_ROUTE).await;
    let missing = get(
        &mesh,
        &format!("{}/no-such-page", mesh.gateway_base_url(8080)),
    )
    .await;
    assert_eq!(missing.status, 404, "{}", missing.text());
    let deadline = Instant::now() + CONVERGENCE_DEADLINE;
    let mut after = gateway_requests(&mesh, &NO_ROUTE).await;
    while after < before + 1.0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        after = gateway_requests(&mesh, &NO_ROUTE).await;
    }
    assert_eq!(after, before + 1.0);
    let routed = gateway_requests(
        &mesh,
        &[
            "reporter=\"source\"",
            "source_workload=\"istio-ingressgateway\"",
            "destination_service_name=\"productpage\"",
            "response_code=\"200\"",
        ],
    )
    .await;
    assert!(
        routed >= 1.0,
        "the gateway counted {routed} routed requests"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_routes_follow_live_virtual_service_edits() {
    let mesh = UpMesh::start(TRELLIS, "gateway_live_edits").await;
    let base = mesh.gateway_base_url(8080);

    // A VirtualService without `gateways` binds to the mesh only.
    mesh.write_config("details-direct.yaml", &details_direct(""));
    // The bound VirtualService gains a rule for /ratings.
    let edited = bookinfo_gateway_yaml().replace("  http:\n", &format!("  http:\n{RATINGS_RULE}"));
    assert_ne!(edited, bookinfo_gateway_yaml());
    mesh.write_config("bookinfo-gateway.yaml", &edited);
    let ratings = get_until(&mesh, &format!("{base}/ratings/0"), |r| r.status == 200).await;
    assert_eq!(ratings.status, 200, "{}", ratings.text());
    assert_eq!(ratings.demo().service, "ratings");
    let unbound = get(&mesh, &format!("{base}/details/0")).await;
    assert_eq!(unbound.status, 404, "{}", unbound.text());

    // Naming the gateway binds it.
    mesh.write_config(
        "details-direct.yaml",
        &details_direct("  gateways: [bookinfo-gateway]\n"),
    );
    let details = get_until(&mesh, &format!("{base}/details/0"), |r| r.status == 200).await;
    assert_eq!(details.status, 200, "{}", details.text());
    assert_eq!(details.demo().service, "details");

    // A Gateway on port 80 is served at 10080 without root.
    let port_80 = bookinfo_gateway_yaml()
        .replace("name: bookinfo-gateway", "name: web-80")
        .replace("number: 8080", "number: 80")
        .replace("name: bookinfo\n", "name: bookinfo-80\n")
        .replace("- bookinfo-gateway", "- web-80");
    mesh.write_config("gateway-80.yaml", &port_80);
    let gateway = mesh.ingress_gateway();
    let mapped = format!("http://{}:10080/productpage", gateway.address);
    let page = get_until_listening(&mesh, &mapped).await;
    assert_eq!(page.status, 200, "{}", page.text());
    assert_eq!(page.demo().service, "productpage");
}

/// Like [`get_until`] a 200, for a listener that may not be bound yet.
async fn get_until_listening(mesh: &UpMesh, url: &str) -> Reply {
    let deadline = Instant::now() + CONVERGENCE_DEADLINE;
    loop {
        match mesh.get(url).await {
            Ok(reply) if reply.status == 200 || Instant::now() > deadline => return reply,
            Err(error) if Instant::now() > deadline => panic!("GET {url}: {error:#}"),
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// A CA and a certificate for `host` it signed, as PEM: (CA, chain, key).
fn certificate_for(host: &str) -> (String, String, String) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    // Distinct names, or the leaf would look self-signed (rcgen's default
    // subject is the same for both).
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "gateway test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let mut leaf_params = rcgen::CertificateParams::new(vec![host.to_owned()]).unwrap();
    leaf_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, host);
    let leaf = leaf_params.signed_by(&key, &issuer).unwrap();
    (ca.pem(), leaf.pem(), key.serialize_pem())
}

/// Writes credential `name` where the gateway reads it (`up.json`'s
/// `credentialsDir`), each file replaced atomically.
fn write_credential(mesh: &UpMesh, name: &str, chain: &str, key: &str) {
    let dir = mesh.ingress_gateway().credentials_dir.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    for (file, pem) in [("tls.crt", chain), ("tls.key", key)] {
        let temporary = dir.join(format!(".{file}.tmp"));
        std::fs::write(&temporary, pem).unwrap();
        std::fs::rename(&temporary, dir.join(file)).unwrap();
    }
}

/// `curl` as a user runs it against a gateway: the host resolved to the
/// gateway's address, verified with the CA given (`None`: not verified).
/// Returns the status, or curl's error.
fn curl_https(
    host: &str,
    address: &str,
    port: u16,
    ca: Option<&std::path::Path>,
) -> Result<u16, String> {
    let mut curl = std::process::Command::new("curl");
    curl.args(["-sS", "-o", "/dev/null", "-w", "%{http_code}"])
        .args(["--max-time", "5"]);
    match ca {
        Some(ca) => curl.arg("--cacert").arg(ca),
        None => curl.arg("--insecure"),
    };
    let output = curl
        .args(["--resolve", &format!("{host}:{port}:{address}")])
        .arg(format!("https://{host}:{port}/productpage"))
        .output()
        .expect("curl runs");
    if output.status.success() {
        let code = String::from_utf8_lossy(&output.stdout);
        code.trim().parse().map_err(|_| format!("status {code:?}"))
    } else {
        Err(String::from_utf8_lossy(&output.stderr).trim().to_owned())
    }
}

async fn curl_until_ok(
    host: &str,
    address: &str,
    port: u16,
    ca: &std::path::Path,
) -> Result<u16, String> {
    let deadline = Instant::now() + CONVERGENCE_DEADLINE;
    loop {
        let result = curl_https(host, address, port, Some(ca));
        if result == Ok(200) || Instant::now() > deadline {
            return result;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

const HTTPS_GATEWAY: &str = "apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: bookinfo-https
spec:
  selector:
    istio: ingressgateway
  servers:
  - port: {number: 443, name: https, protocol: HTTPS}
    hosts: [bookinfo.example.com]
    tls: {mode: SIMPLE, credentialName: bookinfo-cert}
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: [bookinfo.example.com]
    tls: {httpsRedirect: true}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: bookinfo-https
spec:
  hosts: [bookinfo.example.com]
  gateways: [bookinfo-https]
  http:
  - route:
    - destination:
        host: productpage
        port:
          number: 9080
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_gateway_serves_its_credential_and_redirects_plain_http() {
    let mesh = UpMesh::start(TRELLIS, "gateway_https").await;
    let address = mesh.ingress_gateway().address.to_string();
    let host = "bookinfo.example.com";
    let (ca, chain, key) = certificate_for(host);
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &ca).unwrap();
    write_credential(&mesh, "bookinfo-cert", &chain, &key);
    mesh.write_config("bookinfo-https.yaml", HTTPS_GATEWAY);

    // Port 443 is served at 10443 without root, with the credential's certificate.
    assert_eq!(
        curl_until_ok(host, &address, 10443, &ca_file).await,
        Ok(200)
    );
    // Another name matches no filter chain: the handshake is refused.
    let other = curl_https("other.example.com", &address, 10443, None);
    assert!(other.is_err(), "{other:?}");

    // Plain HTTP on port 80 (10080) is redirected to HTTPS.
    let redirect = mesh
        .get_with_headers(
            &format!("http://{address}:10080/productpage"),
            &[("host", host)],
        )
        .await
        .expect("the redirect answers");
    assert_eq!(redirect.status, 301, "{}", redirect.text());
    let location = redirect.headers["location"].to_str().unwrap();
    assert!(
        location.starts_with(&format!("https://{host}")),
        "{location}"
    );

    // A new certificate (from another CA) is served to new connections.
    let (new_ca, new_chain, new_key) = certificate_for(host);
    let new_ca_file = dir.path().join("new-ca.pem");
    std::fs::write(&new_ca_file, &new_ca).unwrap();
    write_credential(&mesh, "bookinfo-cert", &new_chain, &new_key);
    assert_eq!(
        curl_until_ok(host, &address, 10443, &new_ca_file).await,
        Ok(200)
    );
    assert!(curl_https(host, &address, 10443, Some(&ca_file)).is_err());
}
