//! The TLS xDS port (15012) serves only authenticated proxies, and each
//! only as itself: a bootstrap token or a mesh certificate names the
//! caller, and a node claiming another identity is refused. The plaintext
//! port stays open in directory (local) mode.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use clap::Parser;
use tokio_stream::StreamExt as _;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tonic::{Code, Status};
use trellis_ca::{CONTROL_PLANE_SERVER_NAME, SpiffeId, TokenEntry};
use trellis_control::ControlPlaneOptions;
use trellis_xds::node::Interception;
use trellis_xds::pb::envoy::service::discovery::v3::DiscoveryRequest;
use trellis_xds::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use trellis_xds::{NodeInfo, ProxyKind, type_url};

const DEADLINE: Duration = Duration::from_secs(30);

#[derive(Parser)]
struct Command {
    #[command(flatten)]
    options: ControlPlaneOptions,
}

struct ControlPlane {
    ip: &'static str,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    root_pem: String,
    token: String,
    _dir: tempfile::TempDir,
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A control plane whose one known token stands for default/bookinfo-reviews.
async fn start(ip: &'static str) -> ControlPlane {
    let dir = tempfile::tempdir().unwrap();
    let config_dir = dir.path().join("config");
    std::fs::create_dir(&config_dir).unwrap();
    let tokens = dir.path().join("tokens.json");
    let token = trellis_ca::generate_token();
    let entry = TokenEntry {
        token: token.clone(),
        namespace: "default".into(),
        service_account: "bookinfo-reviews".into(),
    };
    trellis_ca::write_tokens_file(&tokens, &[entry]).unwrap();
    let root = dir.path().join("root-cert.pem");
    let ca_dir = dir.path().join("ca");
    let argv = [
        "control-plane",
        "--listen-address",
        ip,
        "--config-dir",
        path(&config_dir),
        "--ca-dir",
        path(&ca_dir),
        "--workload-tokens",
        path(&tokens),
        "--root-cert-out",
        path(&root),
    ];
    let options = Command::try_parse_from(argv).unwrap().options;
    let task = tokio::spawn(trellis_control::run(options));
    let started = Instant::now();
    while tokio::net::TcpStream::connect((ip, 15012)).await.is_err() {
        assert!(
            started.elapsed() < DEADLINE,
            "the control plane never listened"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    ControlPlane {
        ip,
        task,
        root_pem: std::fs::read_to_string(&root).unwrap(),
        token,
        _dir: dir,
    }
}

fn path(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn node(service_account: &str) -> NodeInfo {
    NodeInfo {
        kind: ProxyKind::Sidecar,
        ip: "127.93.0.2".parse().unwrap(),
        pod_name: "reviews-v1-0".into(),
        namespace: "default".into(),
        service_account: service_account.into(),
        workload_name: "reviews-v1".into(),
        labels: BTreeMap::from([("app".into(), "reviews".into())]),
        interception: Interception::None,
        app_ports: BTreeMap::from([(9080, 29080)]),
        outbound_port: 15001,
        locality: String::new(),
    }
}

async fn tls_channel(control_plane: &ControlPlane, client: Option<Identity>) -> Channel {
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&control_plane.root_pem))
        .domain_name(CONTROL_PLANE_SERVER_NAME);
    if let Some(identity) = client {
        tls = tls.identity(identity);
    }
    Endpoint::from_shared(format!("https://{}:15012", control_plane.ip))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect()
        .await
        .unwrap()
}

/// Opens a stream as `node`, asks for clusters, and returns the type of
/// the first response or the status that ended the call.
async fn first_response(
    channel: Channel,
    token: Option<&str>,
    node: &NodeInfo,
) -> Result<String, Status> {
    let request = DiscoveryRequest {
        node: Some(node.to_node()),
        type_url: type_url::CLUSTER.into(),
        ..Default::default()
    };
    let mut call =
        tonic::Request::new(tokio_stream::iter([request]).chain(tokio_stream::pending()));
    if let Some(token) = token {
        let value = format!("Bearer {token}").parse().unwrap();
        call.metadata_mut().insert("authorization", value);
    }
    let mut client = AggregatedDiscoveryServiceClient::new(channel);
    let mut responses = client.stream_aggregated_resources(call).await?.into_inner();
    let response = tokio::time::timeout(DEADLINE, responses.message())
        .await
        .expect("an answer within the deadline")?
        .ok_or_else(|| Status::internal("the stream ended without a response"))?;
    Ok(response.type_url)
}

#[tokio::test]
async fn a_proxy_with_its_token_is_served() {
    let control_plane = start("127.93.0.1").await;
    let channel = tls_channel(&control_plane, None).await;
    let served = first_response(
        channel,
        Some(&control_plane.token),
        &node("bookinfo-reviews"),
    )
    .await
    .unwrap();
    assert_eq!(served, type_url::CLUSTER);
}

#[tokio::test]
async fn a_call_without_a_known_credential_is_unauthenticated() {
    let control_plane = start("127.93.0.2").await;
    let unknown = trellis_ca::generate_token();
    for token in [None, Some(unknown.as_str())] {
        let channel = tls_channel(&control_plane, None).await;
        let status = first_response(channel, token, &node("bookinfo-reviews"))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    }
}

#[tokio::test]
async fn a_node_claiming_another_identity_is_refused() {
    let control_plane = start("127.93.0.3").await;
    let channel = tls_channel(&control_plane, None).await;
    let status = first_response(
        channel,
        Some(&control_plane.token),
        &node("bookinfo-ratings"),
    )
    .await
    .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert!(
        status.message().contains("ns/default/sa/bookinfo-reviews"),
        "{status:?}"
    );
}

#[tokio::test]
async fn a_mesh_certificate_authenticates_without_a_token() {
    let control_plane = start("127.93.0.4").await;
    let id = SpiffeId::new("cluster.local", "default", "bookinfo-reviews");
    let ca = trellis_ca::ca_channel(
        &format!("{}:15012", control_plane.ip),
        &control_plane.root_pem,
    )
    .unwrap();
    let ttl = Duration::from_secs(3600);
    let certificate = trellis_ca::request_certificate(
        ca,
        &control_plane.token,
        &id,
        &control_plane.root_pem,
        ttl,
    )
    .await
    .unwrap();
    let identity = Identity::from_pem(certificate.cert_chain_pem.concat(), &certificate.key_pem);
    let channel = tls_channel(&control_plane, Some(identity)).await;
    let served = first_response(channel.clone(), None, &node("bookinfo-reviews"))
        .await
        .unwrap();
    assert_eq!(served, type_url::CLUSTER);
    // The certificate is the identity: it cannot be used to pose as another.
    let status = first_response(channel, None, &node("bookinfo-ratings"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
}

#[tokio::test]
async fn the_plaintext_port_serves_local_proxies_without_credentials() {
    let control_plane = start("127.93.0.5").await;
    let channel = Endpoint::from_shared(format!("http://{}:15010", control_plane.ip))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let served = first_response(channel, None, &node("bookinfo-ratings"))
        .await
        .unwrap();
    assert_eq!(served, type_url::CLUSTER);
}
