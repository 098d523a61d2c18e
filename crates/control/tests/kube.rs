//! The control plane with `--kube` against the testbed's fake API server:
//! Bookinfo's manifests and pods in the "cluster", an ADS client standing
//! in for the productpage pod's sidecar. The sidecar gets the reviews
//! endpoints from the pods, then the route of a VirtualService created in
//! the API server, then loses the endpoint of a deleted pod. A control
//! plane started before its API server is up keeps serving and retrying,
//! and configures the sidecar once the server answers.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, TcpListener};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use trellis_control::{ControlPlaneOptions, KubernetesOptions};
use trellis_testbed::kube_api::FakeKubeApi;
use trellis_xds::client::{AdsClient, ResourceHandler};
use trellis_xds::node::{Interception, ProxyKind};
use trellis_xds::{Any, NodeInfo, type_url};

const BOOKINFO: &str = include_str!("../../../samples/bookinfo/platform/bookinfo.yaml");
/// Unused by other tests; every control-plane port binds on them, one
/// per test here.
const CONTROL_PLANE_IP: &str = "127.87.0.1";
const LATE_API_CONTROL_PLANE_IP: &str = "127.87.0.2";
const DEADLINE: Duration = Duration::from_secs(20);
const REVIEWS_CLUSTER: &str = "outbound|9080||reviews.default.svc.cluster.local";
/// The explicit HTTP proxy listener's route table.
const HTTP_PROXY_ROUTE: &str = "http_proxy";

/// Keeps the latest resources of each type pushed to it.
#[derive(Default)]
struct Sidecar {
    resources: Mutex<BTreeMap<String, Vec<Any>>>,
}

impl Sidecar {
    /// Whether a pushed resource of this type carries `text` (strings
    /// appear as they are in protobuf bytes).
    fn has(&self, type_url: &str, text: &str) -> bool {
        let resources = self.resources.lock().unwrap();
        resources
            .get(type_url)
            .into_iter()
            .flatten()
            .any(|resource| {
                resource
                    .value
                    .windows(text.len())
                    .any(|window| window == text.as_bytes())
            })
    }
}

impl ResourceHandler for Sidecar {
    fn apply(&self, type_url: &str, resources: &[Any]) -> Result<(), String> {
        let mut stored = self.resources.lock().unwrap();
        stored.insert(type_url.to_string(), resources.to_vec());
        Ok(())
    }

    fn wanted_names(&self, type_url: &str) -> Vec<String> {
        match type_url {
            type_url::ENDPOINT => vec![REVIEWS_CLUSTER.to_string()],
            type_url::ROUTE => vec![HTTP_PROXY_ROUTE.to_string()],
            _ => Vec::new(),
        }
    }
}

fn write_kubeconfig(dir: &Path, server: &str) -> std::path::PathBuf {
    let kubeconfig = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster: {{server: \"{server}\"}}\n\
         users:\n- name: tester\n  user: {{}}\ncontexts:\n- name: fake\n  context: {{cluster: fake, user: tester}}\n\
         current-context: fake\n"
    );
    let path = dir.join("kubeconfig");
    std::fs::write(&path, kubeconfig).unwrap();
    path
}

fn options(kubeconfig: &Path, ca_dir: &Path, ip: &str) -> ControlPlaneOptions {
    ControlPlaneOptions {
        config_dir: None,
        kubernetes: KubernetesOptions {
            kube: true,
            kubeconfig: Some(kubeconfig.to_path_buf()),
        },
        listen_address: ip.parse().unwrap(),
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
        jwks_refresh_interval: Duration::from_secs(60),
        debounce_after: Duration::from_millis(100),
        debounce_max: Duration::from_secs(10),
        push_throttle: trellis_xds::DEFAULT_PUSH_THROTTLE,
        dashboard: Default::default(),
    }
}

/// The productpage pod, as its sidecar describes itself.
fn productpage_node(ip: IpAddr) -> NodeInfo {
    NodeInfo {
        kind: ProxyKind::Sidecar,
        ip,
        pod_name: "productpage-v1-pod-0".into(),
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

fn pod_ip(api: &FakeKubeApi, name: &str) -> String {
    let pod = api.get("v1", "Pod", "default", name).unwrap();
    pod["status"]["podIP"].as_str().unwrap().to_string()
}

/// An ADS client for the productpage pod, connected to the control plane
/// on `ip`.
fn connect_sidecar(ip: &str, pod_ip: IpAddr) -> (Arc<Sidecar>, tokio::task::JoinHandle<()>) {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{ip}:15010"))
        .unwrap()
        .connect_lazy();
    let node = productpage_node(pod_ip).to_node();
    let sidecar = Arc::new(Sidecar::default());
    let client = tokio::spawn(AdsClient::new(channel, node).run(sidecar.clone()));
    (sidecar, client)
}

async fn eventually(what: &str, check: impl Fn() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sidecar_gets_routes_and_endpoints_from_the_kubernetes_api() {
    let api = FakeKubeApi::start().await.unwrap();
    api.create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}}))
        .unwrap();
    api.apply_yaml(BOOKINFO, "default").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = write_kubeconfig(dir.path(), &api.url());
    let options = options(&kubeconfig, dir.path(), CONTROL_PLANE_IP);
    let control_plane = tokio::spawn(trellis_control::run(options));
    let productpage_ip = pod_ip(&api, "productpage-v1-pod-0").parse().unwrap();
    let (sidecar, client) = connect_sidecar(CONTROL_PLANE_IP, productpage_ip);

    let reviews_v1 = pod_ip(&api, "reviews-v1-pod-0");
    let reviews_v2 = pod_ip(&api, "reviews-v2-pod-0");
    eventually("the reviews pods are endpoints", || {
        sidecar.has(type_url::ENDPOINT, &reviews_v1) && sidecar.has(type_url::ENDPOINT, &reviews_v2)
    })
    .await;
    assert!(!sidecar.has(type_url::ROUTE, "jason"));

    api.create(json!({
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": "reviews", "namespace": "default"},
        "spec": {
            "hosts": ["reviews"],
            "http": [
                {"match": [{"headers": {"end-user": {"exact": "jason"}}}],
                 "route": [{"destination": {"host": "reviews"}}]},
                {"route": [{"destination": {"host": "reviews"}}]},
            ],
        },
    }))
    .unwrap();
    eventually("the VirtualService's route is pushed", || {
        sidecar.has(type_url::ROUTE, "jason")
    })
    .await;

    api.delete("v1", "Pod", "default", "reviews-v1-pod-0")
        .unwrap();
    eventually("the deleted pod is no longer an endpoint", || {
        !sidecar.has(type_url::ENDPOINT, &reviews_v1)
    })
    .await;
    assert!(sidecar.has(type_url::ENDPOINT, &reviews_v2));
    client.abort();
    control_plane.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_control_plane_waits_for_a_late_api_server() {
    // A free port nobody listens on yet.
    let api_address = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = write_kubeconfig(dir.path(), &format!("http://{api_address}"));
    let options = options(&kubeconfig, dir.path(), LATE_API_CONTROL_PLANE_IP);
    let control_plane = tokio::spawn(trellis_control::run(options));
    // The IP the fake gives productpage's pod, the sixth Bookinfo creates
    // (checked below).
    let productpage_ip = "10.244.0.15".parse().unwrap();
    let (sidecar, client) = connect_sidecar(LATE_API_CONTROL_PLANE_IP, productpage_ip);

    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!control_plane.is_finished(), "the control plane exited");
    assert!(!sidecar.has(type_url::CLUSTER, "reviews"));

    let api = FakeKubeApi::start_at(api_address, 1000, Duration::from_secs(1))
        .await
        .unwrap();
    api.create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}}))
        .unwrap();
    api.apply_yaml(BOOKINFO, "default").unwrap();
    assert_eq!(
        pod_ip(&api, "productpage-v1-pod-0"),
        productpage_ip.to_string()
    );
    let reviews = pod_ip(&api, "reviews-v1-pod-0");
    eventually("the reviews pods are endpoints", || {
        sidecar.has(type_url::ENDPOINT, &reviews)
    })
    .await;
    client.abort();
    control_plane.abort();
}
