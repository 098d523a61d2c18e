//! The `jwksUri` resolver in a running control plane: a loopback JWKS
//! server, a control plane on its own loopback address (default ports), and
//! an ADS client standing in for a sidecar. The proxy receives the fetched
//! keys inline, then the rotated ones; with the JWKS server down, failures
//! are counted on /metrics and the proxy keeps the last good keys.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use trellis_control::ControlPlaneOptions;
use trellis_xds::client::{AdsClient, ResourceHandler};
use trellis_xds::node::{Interception, ProxyKind};
use trellis_xds::{Any, NodeInfo, type_url};

/// Unused by other tests; every control-plane port binds on it.
const CONTROL_PLANE_IP: &str = "127.86.0.1";
const DEADLINE: Duration = Duration::from_secs(20);
const FAIL_METRIC: &str = "pilot_jwks_resolver_network_fetch_fail_total";

fn jwks(kid: &str) -> String {
    format!(r#"{{"keys":[{{"kty":"EC","crv":"P-256","kid":"{kid}","x":"AQ","y":"Ag"}}]}}"#)
}

/// Serves whatever JWKS it was last given at `/jwks`.
struct JwksServer {
    address: SocketAddr,
    keys: Arc<Mutex<String>>,
    task: JoinHandle<()>,
}

impl JwksServer {
    async fn start(keys: String) -> JwksServer {
        let keys = Arc::new(Mutex::new(keys));
        let router = Router::new()
            .route(
                "/jwks",
                get(|State(keys): State<Arc<Mutex<String>>>| async move {
                    keys.lock().unwrap().clone()
                }),
            )
            .with_state(keys.clone());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        JwksServer {
            address,
            keys,
            task,
        }
    }

    fn uri(&self) -> String {
        format!("http://{}/jwks", self.address)
    }

    fn rotate(&self, keys: String) {
        *self.keys.lock().unwrap() = keys;
    }
}

/// Records the listeners pushed to it, as a sidecar would apply them.
#[derive(Default)]
struct Sidecar {
    listeners: Mutex<Vec<Any>>,
}

impl Sidecar {
    /// Whether a pushed listener carries this text (the inline JWKS is a
    /// protobuf string, so its bytes appear as they are).
    fn listeners_contain(&self, text: &str) -> bool {
        self.listeners.lock().unwrap().iter().any(|listener| {
            listener
                .value
                .windows(text.len())
                .any(|window| window == text.as_bytes())
        })
    }
}

impl ResourceHandler for Sidecar {
    fn apply(&self, type_url: &str, resources: &[Any]) -> Result<(), String> {
        if type_url == type_url::LISTENER {
            *self.listeners.lock().unwrap() = resources.to_vec();
        }
        Ok(())
    }

    fn wanted_names(&self, _type_url: &str) -> Vec<String> {
        Vec::new()
    }
}

fn write_policy(dir: &Path, uri: &str) {
    let policy = format!(
        "apiVersion: security.istio.io/v1\nkind: RequestAuthentication\nmetadata: {{name: jwt, namespace: default}}\nspec:\n  jwtRules:\n  - issuer: testing@secure.istio.io\n    jwksUri: {uri}\n    timeout: 1s\n"
    );
    std::fs::write(dir.join("request-authentication.yaml"), policy).unwrap();
}

fn options(config_dir: &Path, ca_dir: &Path) -> ControlPlaneOptions {
    ControlPlaneOptions {
        config_dir: Some(config_dir.to_path_buf()),
        kubernetes: Default::default(),
        listen_address: CONTROL_PLANE_IP.parse().unwrap(),
        xds_port: Some(15010),
        secure_port: 15012,
        monitoring_port: 15014,
        ca_dir: Some(ca_dir.to_path_buf()),
        cacerts: None,
        workload_tokens: None,
        root_cert_out: None,
        trust_domain: None,
        mesh_config: None,
        access_log_file: None,
        access_log_format: None,
        access_log_encoding: None,
        outbound_traffic_policy: None,
        jwks_refresh_interval: Duration::from_millis(300),
        debounce_after: Duration::from_millis(100),
        debounce_max: Duration::from_secs(10),
        push_throttle: trellis_xds::DEFAULT_PUSH_THROTTLE,
        dashboard: Default::default(),
    }
}

fn node() -> NodeInfo {
    NodeInfo {
        kind: ProxyKind::Sidecar,
        ip: "127.86.0.2".parse().unwrap(),
        pod_name: "productpage-v1-0".into(),
        namespace: "default".into(),
        service_account: "bookinfo-productpage".into(),
        workload_name: "productpage-v1".into(),
        labels: BTreeMap::from([("app".into(), "productpage".into())]),
        interception: Interception::None,
        app_ports: BTreeMap::from([(9080, 29080)]),
        outbound_port: 15001,
        locality: String::new(),
    }
}

/// A counter's value on the control plane's /metrics, if it is there.
async fn metric(name: &str) -> Option<u64> {
    let address: SocketAddr = format!("{CONTROL_PLANE_IP}:15014").parse().unwrap();
    let stream = tokio::net::TcpStream::connect(address).await.ok()?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .ok()?;
    tokio::spawn(connection);
    let request = hyper::Request::get("/metrics")
        .header(hyper::header::HOST, address.to_string())
        .body(Empty::<Bytes>::new())
        .unwrap();
    let response = sender.send_request(request).await.ok()?;
    let body = response.into_body().collect().await.ok()?.to_bytes();
    String::from_utf8_lossy(&body).lines().find_map(|line| {
        let (metric, value) = line.split_once(' ')?;
        (metric == name).then(|| value.trim().parse().ok())?
    })
}

async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxies_get_fetched_and_rotated_keys_and_keep_them_when_the_server_fails() {
    let server = JwksServer::start(jwks("first")).await;
    let config = tempfile::tempdir().unwrap();
    let ca = tempfile::tempdir().unwrap();
    write_policy(config.path(), &server.uri());
    let control_plane = tokio::spawn(trellis_control::run(options(config.path(), ca.path())));

    let channel =
        tonic::transport::Endpoint::from_shared(format!("http://{CONTROL_PLANE_IP}:15010"))
            .unwrap()
            .connect_lazy();
    let sidecar = Arc::new(Sidecar::default());
    let client = tokio::spawn(AdsClient::new(channel, node().to_node()).run(sidecar.clone()));

    eventually("the proxy has the fetched keys", async || {
        sidecar.listeners_contain(r#""kid":"first""#)
    })
    .await;
    assert_eq!(metric(FAIL_METRIC).await, Some(0));

    server.rotate(jwks("second"));
    eventually("the proxy has the rotated keys", async || {
        sidecar.listeners_contain(r#""kid":"second""#)
    })
    .await;
    assert!(!sidecar.listeners_contain(r#""kid":"first""#));

    server.task.abort();
    eventually("failed fetches are counted", async || {
        metric(FAIL_METRIC)
            .await
            .is_some_and(|failures| failures >= 2)
    })
    .await;
    assert!(
        sidecar.listeners_contain(r#""kid":"second""#),
        "the last good keys stay"
    );
    client.abort();
    control_plane.abort();
}
