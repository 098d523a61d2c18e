//! The mesh config in a running control plane: given as a file
//! (`--mesh-config`) or as the `istio` ConfigMap of the config dir, its
//! `outboundTrafficPolicy: REGISTRY_ONLY` reaches a connected sidecar's
//! translated config (checked on /debug/config_dump); an invalid one stops
//! the control plane at startup with an error naming file, line and field.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use trellis_control::ControlPlaneOptions;
use trellis_xds::client::{AdsClient, ResourceHandler};
use trellis_xds::node::{Interception, ProxyKind};
use trellis_xds::{Any, NodeInfo};

const DEADLINE: Duration = Duration::from_secs(20);
const POD_NAME: &str = "productpage-v1-0";
/// The virtual host a REGISTRY_ONLY sidecar answers unknown hosts with.
const BLOCK_ALL: &str = "block_all";
const REGISTRY_ONLY: &str = "outboundTrafficPolicy:\n  mode: REGISTRY_ONLY\n";

#[derive(Parser)]
struct Command {
    #[command(flatten)]
    options: ControlPlaneOptions,
}

/// Control plane options as the command line gives them, all ports on `ip`.
fn options(ip: &str, config_dir: &Path, ca_dir: &Path, flags: &[&str]) -> ControlPlaneOptions {
    let config_dir = config_dir.to_str().unwrap();
    let ca_dir = ca_dir.to_str().unwrap();
    let base = ["control-plane", "--listen-address", ip];
    let dirs = ["--config-dir", config_dir, "--ca-dir", ca_dir];
    let argv = base.iter().chain(&dirs).chain(flags);
    Command::try_parse_from(argv).unwrap().options
}

/// A sidecar that accepts whatever it is sent: only the control plane's
/// view of it (config_dump) is checked.
struct Sidecar;

impl ResourceHandler for Sidecar {
    fn apply(&self, _type_url: &str, _resources: &[Any]) -> Result<(), String> {
        Ok(())
    }

    fn wanted_names(&self, _type_url: &str) -> Vec<String> {
        Vec::new()
    }
}

fn node() -> NodeInfo {
    NodeInfo {
        kind: ProxyKind::Sidecar,
        ip: "127.0.0.1".parse().unwrap(),
        pod_name: POD_NAME.into(),
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

/// The body of a 200 answer to GET `path` on the monitoring port.
async fn get(ip: &str, path: &str) -> Option<String> {
    let address: SocketAddr = format!("{ip}:15014").parse().unwrap();
    let stream = tokio::net::TcpStream::connect(address).await.ok()?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .ok()?;
    tokio::spawn(connection);
    let request = hyper::Request::get(path)
        .header(hyper::header::HOST, address.to_string())
        .body(Empty::<Bytes>::new())
        .unwrap();
    let response = sender.send_request(request).await.ok()?;
    if !response.status().is_success() {
        return None;
    }
    let body = response.into_body().collect().await.ok()?.to_bytes();
    Some(String::from_utf8_lossy(&body).into_owned())
}

/// Runs a control plane with `options` and a sidecar connected to it, and
/// returns what the control plane would send that sidecar.
async fn config_dump_of_sidecar(ip: &str, options: ControlPlaneOptions) -> String {
    let control_plane = tokio::spawn(trellis_control::run(options));
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{ip}:15010"))
        .unwrap()
        .connect_lazy();
    let client = tokio::spawn(AdsClient::new(channel, node().to_node()).run(Arc::new(Sidecar)));
    let path = format!("/debug/config_dump?proxyID={POD_NAME}.default");
    let deadline = Instant::now() + DEADLINE;
    let dump = loop {
        if let Some(dump) = get(ip, &path).await {
            break dump;
        }
        assert!(
            !control_plane.is_finished(),
            "the control plane stopped: {:?}",
            control_plane.await
        );
        assert!(Instant::now() < deadline, "no config_dump for the sidecar");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    client.abort();
    control_plane.abort();
    dump
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mesh_config_file_makes_sidecars_registry_only() {
    let ip = "127.88.0.1";
    let (config, ca, mesh) = (tempdir(), tempdir(), tempdir());
    let mesh_file = mesh.path().join("mesh.yaml");
    std::fs::write(&mesh_file, REGISTRY_ONLY).unwrap();
    let flags = ["--mesh-config", mesh_file.to_str().unwrap()];
    let dump = config_dump_of_sidecar(ip, options(ip, config.path(), ca.path(), &flags)).await;
    assert!(dump.contains(BLOCK_ALL), "no {BLOCK_ALL} route:\n{dump}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_istio_config_map_in_the_config_dir_is_the_mesh_config() {
    let ip = "127.89.0.1";
    let (config, ca) = (tempdir(), tempdir());
    let mesh = REGISTRY_ONLY.replace('\n', "\n    ");
    let config_map = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: istio, namespace: istio-system}}\ndata:\n  mesh: |\n    {mesh}\n"
    );
    std::fs::write(config.path().join("istio.yaml"), config_map).unwrap();
    let dump = config_dump_of_sidecar(ip, options(ip, config.path(), ca.path(), &[])).await;
    assert!(dump.contains(BLOCK_ALL), "no {BLOCK_ALL} route:\n{dump}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_explicit_flag_wins_over_the_mesh_config() {
    let ip = "127.90.0.1";
    let (config, ca, mesh) = (tempdir(), tempdir(), tempdir());
    let mesh_file = mesh.path().join("mesh.yaml");
    std::fs::write(&mesh_file, REGISTRY_ONLY).unwrap();
    let mesh_flag = ["--mesh-config", mesh_file.to_str().unwrap()];
    let flags = [&mesh_flag[..], &["--outbound-traffic-policy", "ALLOW_ANY"]].concat();
    let dump = config_dump_of_sidecar(ip, options(ip, config.path(), ca.path(), &flags)).await;
    assert!(dump.contains("\"routes\""), "no routes in:\n{dump}");
    assert!(!dump.contains(BLOCK_ALL), "ALLOW_ANY, yet:\n{dump}");
}

#[tokio::test]
async fn an_invalid_mesh_config_stops_the_control_plane_at_startup() {
    let (config, ca, mesh) = (tempdir(), tempdir(), tempdir());
    let mesh_file = mesh.path().join("mesh.yaml");
    std::fs::write(
        &mesh_file,
        "accessLogFile: /dev/stdout\noutboundTrafficPolicy:\n  mode: SOMETIMES\n",
    )
    .unwrap();
    let flags = ["--mesh-config", mesh_file.to_str().unwrap()];
    let options = options("127.91.0.1", config.path(), ca.path(), &flags);
    let run = tokio::time::timeout(DEADLINE, trellis_control::run(options));
    let error = run.await.expect("startup fails fast").unwrap_err();
    let message = format!("{error:#}");
    let location = format!("{}:3:", mesh_file.display());
    assert!(message.contains(&location), "{message}");
    assert!(message.contains("outboundTrafficPolicy.mode"), "{message}");
}

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}
