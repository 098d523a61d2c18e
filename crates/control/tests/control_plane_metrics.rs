//! The control plane's own metrics on its monitoring port, after real
//! events: certificates asked for (signed, malformed, unauthenticated), a
//! proxy of an Istio version and revision connecting then leaving, and a
//! config directory gaining an invalid resource. Scraped as Prometheus
//! would, with istiod's names.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, UNIX_EPOCH};

use clap::Parser;
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use tonic::Code;
use trellis_ca::proto::IstioCertificateRequest;
use trellis_ca::proto::istio_certificate_service_client::IstioCertificateServiceClient;
use trellis_ca::{CaError, SpiffeId, TokenEntry, ca_channel, generate_token, request_certificate};
use trellis_control::ControlPlaneOptions;
use trellis_xds::client::{AdsClient, ResourceHandler};
use trellis_xds::node::Interception;
use trellis_xds::pb::google::protobuf::{Value, value::Kind};
use trellis_xds::{Any, NodeInfo, ProxyKind};

/// Unused by other tests; every control-plane port binds on it.
const IP: &str = "127.94.0.1";
const DEADLINE: Duration = Duration::from_secs(30);

const SERVICE: &str = "apiVersion: v1\nkind: Service\nmetadata: {name: reviews, namespace: default}\nspec:\n  selector: {app: reviews}\n  ports: [{name: http, port: 9080}]\n";
const ROUTE: &str = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: reviews, namespace: default}\nspec:\n  hosts: [reviews]\n  http:\n  - route:\n    - destination: {host: reviews}\n      weight: WEIGHT\n";
const ACCOUNT: &str =
    "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: reviews, namespace: default}\n";

const VS_PASSED: &str = r#"galley_validation_passed{group="networking.istio.io",version="v1",resource="virtualservices"}"#;
const VS_FAILED: &str = r#"galley_validation_failed{group="networking.istio.io",version="v1",resource="virtualservices",reason="invalid_resource"}"#;
const SERVICES_PASSED: &str =
    r#"galley_validation_passed{group="",version="v1",resource="services"}"#;
const ACCOUNTS_PASSED: &str =
    r#"galley_validation_passed{group="",version="v1",resource="serviceaccounts"}"#;

#[derive(Parser)]
struct Command {
    #[command(flatten)]
    options: ControlPlaneOptions,
}

fn path(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// The whole exposition on /metrics, or why there is none yet.
async fn scrape() -> Result<String, String> {
    get("/metrics").await
}

/// A page of the monitoring port.
async fn get(page: &str) -> Result<String, String> {
    let address = format!("{IP}:15014");
    let stream = tokio::net::TcpStream::connect(&address)
        .await
        .map_err(|e| e.to_string())?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(connection);
    let request = hyper::Request::get(page)
        .header(hyper::header::HOST, &address)
        .body(Empty::<Bytes>::new())
        .unwrap();
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())?;
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?;
    Ok(String::from_utf8_lossy(&body.to_bytes()).into_owned())
}

/// The value of exactly `series` (name and labels) in `text`.
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        let (name, value) = line.rsplit_once(' ')?;
        (name == series).then(|| value.parse().ok())?
    })
}

/// Waits until every `(series, value)` is scraped; the last exposition.
async fn until_scraped(what: &str, expected: &[(&str, f64)]) -> String {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let text = scrape().await.unwrap_or_default();
        if expected
            .iter()
            .all(|(series, wanted)| value(&text, series) == Some(*wanted))
        {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting until {what}: want {expected:?} in\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Accepts whatever it is sent.
struct Sidecar;

impl ResourceHandler for Sidecar {
    fn apply(&self, _type_url: &str, _resources: &[Any]) -> Result<(), String> {
        Ok(())
    }

    fn wanted_names(&self, _type_url: &str) -> Vec<String> {
        Vec::new()
    }
}

/// An Istio 1.24.2 sidecar injected by the `canary` revision.
fn istio_canary_node() -> trellis_xds::pb::envoy::config::core::v3::Node {
    let info = NodeInfo {
        kind: ProxyKind::Sidecar,
        ip: "127.94.0.2".parse().unwrap(),
        pod_name: "reviews-v1-0".into(),
        namespace: "default".into(),
        service_account: "reviews".into(),
        workload_name: "reviews-v1".into(),
        labels: BTreeMap::from([
            ("app".into(), "reviews".into()),
            ("istio.io/rev".into(), "canary".into()),
        ]),
        interception: Interception::None,
        app_ports: BTreeMap::from([(9080, 29080)]),
        outbound_port: 15001,
        locality: String::new(),
    };
    let mut node = info.to_node();
    let version = Value {
        kind: Some(Kind::StringValue("1.24.2".into())),
    };
    node.metadata
        .as_mut()
        .unwrap()
        .fields
        .insert("ISTIO_VERSION".into(), version);
    node
}

async fn ask_with_csr(root: &str, token: &str, csr: &str) -> Code {
    let channel = ca_channel(&format!("{IP}:15012"), root).unwrap();
    let mut request = tonic::Request::new(IstioCertificateRequest {
        csr: csr.into(),
        validity_duration: 3600,
        metadata: None,
    });
    let bearer = format!("Bearer {token}").parse().unwrap();
    request.metadata_mut().insert("authorization", bearer);
    match IstioCertificateServiceClient::new(channel)
        .create_certificate(request)
        .await
    {
        Ok(_) => Code::Ok,
        Err(status) => status.code(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ca_xds_and_validation_metrics_follow_real_events() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config");
    std::fs::create_dir(&config).unwrap();
    std::fs::write(config.join("service.yaml"), SERVICE).unwrap();
    std::fs::write(config.join("route.yaml"), ROUTE.replace("WEIGHT", "100")).unwrap();
    let token = generate_token();
    let tokens = dir.path().join("tokens.json");
    let entry = TokenEntry {
        token: token.clone(),
        namespace: "default".into(),
        service_account: "reviews".into(),
    };
    trellis_ca::write_tokens_file(&tokens, &[entry]).unwrap();
    let root_file = dir.path().join("root-cert.pem");
    let ca_dir = dir.path().join("ca");
    let argv = [
        "control-plane",
        "--listen-address",
        IP,
        "--config-dir",
        path(&config),
        "--ca-dir",
        path(&ca_dir),
        "--workload-tokens",
        path(&tokens),
        "--root-cert-out",
        path(&root_file),
    ];
    let options = Command::try_parse_from(argv).unwrap().options;
    let control_plane = tokio::spawn(trellis_control::run(options));

    // The first reading of the directory: each resource passed once.
    let text = until_scraped(
        "the config is loaded",
        &[(SERVICES_PASSED, 1.0), (VS_PASSED, 1.0)],
    )
    .await;
    assert_eq!(value(&text, "citadel_server_csr_count"), Some(0.0));
    let root = std::fs::read_to_string(&root_file).unwrap();
    let der = rustls_pki_types::pem::PemObject::from_pem_slice(root.as_bytes()).unwrap();
    let der: rustls_pki_types::CertificateDer<'_> = der;
    let (_, parsed) = x509_parser::parse_x509_certificate(&der).unwrap();
    let not_after = parsed.validity().not_after.timestamp() as f64;
    assert_eq!(
        value(&text, "citadel_server_root_cert_expiry_timestamp"),
        Some(not_after)
    );
    let now = UNIX_EPOCH.elapsed().unwrap().as_secs_f64();
    let left = value(&text, "citadel_server_root_cert_expiry_seconds").unwrap();
    assert!((left - (not_after - now)).abs() < 120.0, "{left}");

    // A certificate signed, a CSR that does not parse, a token nobody gave.
    let reviews = SpiffeId::new("cluster.local", "default", "reviews");
    let channel = ca_channel(&format!("{IP}:15012"), &root).unwrap();
    request_certificate(channel.clone(), &token, &reviews, &root, DEADLINE)
        .await
        .expect("a certificate for the token's identity");
    let garbage = "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n";
    assert_eq!(
        ask_with_csr(&root, &token, garbage).await,
        Code::InvalidArgument
    );
    let refused = request_certificate(channel, &generate_token(), &reviews, &root, DEADLINE).await;
    assert!(
        matches!(refused, Err(CaError::Rpc(ref s)) if s.code() == Code::Unauthenticated),
        "{refused:?}"
    );
    until_scraped(
        "the certificate requests are counted",
        &[
            ("citadel_server_csr_count", 3.0),
            ("citadel_server_success_cert_issuance_count", 1.0),
            ("citadel_server_csr_parsing_err_count", 1.0),
            (
                r#"citadel_server_csr_sign_err_count{error="CSR_ERROR"}"#,
                1.0,
            ),
            ("citadel_server_authentication_failure_count", 1.0),
            ("citadel_server_id_extraction_err_count", 0.0),
        ],
    )
    .await;

    // An Istio proxy of the canary revision connects, then goes away.
    let xds = tonic::transport::Endpoint::from_shared(format!("http://{IP}:15010"))
        .unwrap()
        .connect_lazy();
    let proxy = tokio::spawn(AdsClient::new(xds, istio_canary_node()).run(Arc::new(Sidecar)));
    let connected = r#"pilot_xds{version="1.24.2"}"#;
    let by_revision = r#"trellis_xds_proxies{revision="canary",version="1.24.2"}"#;
    until_scraped(
        "the proxy is counted by version and revision",
        &[(connected, 1.0), (by_revision, 1.0)],
    )
    .await;
    // proxy-status reads the same from /debug/syncz.
    let sync: serde_json::Value =
        serde_json::from_str(&get("/debug/syncz").await.unwrap()).unwrap();
    let listed = &sync["proxies"][0];
    assert_eq!(listed["proxyVersion"], "1.24.2", "{sync}");
    assert_eq!(listed["revision"], "canary", "{sync}");
    proxy.abort();
    until_scraped(
        "the proxy's gauges go back down",
        &[(connected, 0.0), (by_revision, 0.0)],
    )
    .await;

    // An invalid resource is refused once; reloads for other files do not
    // count it again.
    let bad = ROUTE
        .replace("WEIGHT", "-1")
        .replace("name: reviews,", "name: reviews-bad,");
    std::fs::write(config.join("bad.yaml"), bad).unwrap();
    until_scraped("the invalid resource is counted", &[(VS_FAILED, 1.0)]).await;
    std::fs::write(config.join("account.yaml"), ACCOUNT).unwrap();
    let text = until_scraped(
        "the next file is counted",
        &[(ACCOUNTS_PASSED, 1.0), (VS_FAILED, 1.0)],
    )
    .await;
    assert_eq!(value(&text, VS_PASSED), Some(1.0), "{text}");
    assert_eq!(value(&text, SERVICES_PASSED), Some(1.0), "{text}");
    assert!(
        text.contains("# TYPE galley_validation_failed counter"),
        "{text}"
    );
    control_plane.abort();
}
