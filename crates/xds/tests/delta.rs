//! Delta ADS against the server on loopback: only changed resources are
//! sent, removals are named, versions the client already holds are not
//! resent, and a NACK is recorded without a resend loop.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse,
};
use envoy_types::pb::google::rpc::Status as RpcStatus;
use tokio::sync::{mpsc, watch};
use tokio_stream::StreamExt;
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use trellis_xds::node::{Interception, ProxyKind};
use trellis_xds::server::{AdsServer, ProxyRegistry, ResourceGenerator};
use trellis_xds::{EncodedResources, NodeInfo, ProxyResources, type_url};

/// Clusters by name, each with a connect timeout standing for its content.
struct Generator(Mutex<Vec<(&'static str, i64)>>);

impl ResourceGenerator for Generator {
    fn generate(&self, _node: &NodeInfo) -> Result<Option<EncodedResources>, String> {
        let clusters = self
            .0
            .lock()
            .unwrap()
            .iter()
            .map(|(name, seconds)| Cluster {
                name: name.to_string(),
                connect_timeout: Some(envoy_types::pb::google::protobuf::Duration {
                    seconds: *seconds,
                    nanos: 0,
                }),
                ..Default::default()
            })
            .collect();
        Ok(Some(
            ProxyResources {
                clusters,
                ..Default::default()
            }
            .encode(),
        ))
    }
}

struct Client {
    requests: mpsc::Sender<DeltaDiscoveryRequest>,
    responses: tonic::Streaming<DeltaDiscoveryResponse>,
}

impl Client {
    async fn send(&self, request: DeltaDiscoveryRequest) {
        self.requests
            .send(DeltaDiscoveryRequest {
                type_url: type_url::CLUSTER.into(),
                ..request
            })
            .await
            .unwrap();
    }

    async fn next(&mut self) -> DeltaDiscoveryResponse {
        tokio::time::timeout(Duration::from_secs(5), self.responses.next())
            .await
            .expect("a response")
            .unwrap()
            .unwrap()
    }

    async fn ack(&self, response: &DeltaDiscoveryResponse) {
        self.send(DeltaDiscoveryRequest {
            response_nonce: response.nonce.clone(),
            ..Default::default()
        })
        .await;
    }

    async fn nothing_more(&mut self) {
        assert!(
            tokio::time::timeout(Duration::from_millis(300), self.responses.next())
                .await
                .is_err(),
            "unexpected response"
        );
    }
}

fn node() -> NodeInfo {
    NodeInfo {
        kind: ProxyKind::Sidecar,
        ip: "127.0.0.1".parse().unwrap(),
        pod_name: "delta-0".into(),
        namespace: "default".into(),
        service_account: "default".into(),
        workload_name: "delta".into(),
        labels: Default::default(),
        interception: Interception::None,
        app_ports: Default::default(),
        outbound_port: 15001,
        locality: String::new(),
    }
}

async fn start(generator: Arc<Generator>) -> (watch::Sender<u64>, Arc<ProxyRegistry>, Client) {
    let (generations, receiver) = watch::channel(0);
    let server = AdsServer::new(generator, receiver);
    let proxies = server.proxies();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(server.into_service())
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{address}"))
        .unwrap()
        .connect_lazy();
    let (requests, outbound) = mpsc::channel(16);
    let mut ads = AggregatedDiscoveryServiceClient::new(channel);
    let responses = ads
        .delta_aggregated_resources(ReceiverStream::new(outbound))
        .await
        .unwrap()
        .into_inner();
    (
        generations,
        proxies,
        Client {
            requests,
            responses,
        },
    )
}

fn names(response: &DeltaDiscoveryResponse) -> Vec<&str> {
    response.resources.iter().map(|r| r.name.as_str()).collect()
}

#[tokio::test]
async fn sends_only_what_changed_and_names_removals() {
    let generator = Arc::new(Generator(Mutex::new(vec![("a", 1), ("b", 1)])));
    let (generations, proxies, mut client) = start(generator.clone()).await;
    client
        .send(DeltaDiscoveryRequest {
            node: Some(node().to_node()),
            ..Default::default()
        })
        .await;
    let first = client.next().await;
    assert_eq!(names(&first), ["a", "b"]);
    assert!(first.removed_resources.is_empty());
    client.ack(&first).await;

    *generator.0.lock().unwrap() = vec![("b", 2), ("c", 1)];
    generations.send_modify(|g| *g += 1);
    let second = client.next().await;
    assert_eq!(
        names(&second),
        ["b", "c"],
        "a changed b, a new c; unchanged resources are not resent"
    );
    assert_eq!(second.removed_resources, ["a"]);
    client.ack(&second).await;
    let acked = |proxies: &ProxyRegistry| {
        proxies.snapshot()[0].types[type_url::CLUSTER].acked_version == second.system_version_info
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !acked(&proxies) {
        assert!(
            std::time::Instant::now() < deadline,
            "the ACK was never recorded"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    // Delta pushes count and converge like state-of-the-world ones.
    let mut registry = prometheus_client::registry::Registry::default();
    proxies.metrics.register(&mut registry);
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    for series in [
        "pilot_xds_pushes{type=\"cds\"} 2",
        "pilot_proxy_convergence_time_count 1",
        "pilot_xds_push_time_count{type=\"cds\"} 2",
    ] {
        assert!(
            text.lines().any(|line| line == series),
            "no {series} in\n{text}"
        );
    }

    generations.send_modify(|g| *g += 1); // same content
    client.nothing_more().await;
    let status = &proxies.snapshot()[0].types[type_url::CLUSTER];
    assert_eq!(status.acked_version, second.system_version_info);
}

#[tokio::test]
async fn initial_versions_are_not_resent_and_a_nack_is_not_retried_until_a_change() {
    let generator = Arc::new(Generator(Mutex::new(vec![("a", 1), ("b", 1)])));
    // Learn b's version from a first connection, as a reconnecting proxy would hold it.
    let (_g, _p, mut probe) = start(generator.clone()).await;
    probe
        .send(DeltaDiscoveryRequest {
            node: Some(node().to_node()),
            ..Default::default()
        })
        .await;
    let held: HashMap<String, String> = probe
        .next()
        .await
        .resources
        .iter()
        .filter(|r| r.name == "b")
        .map(|r| (r.name.clone(), r.version.clone()))
        .collect();

    let (generations, proxies, mut client) = start(generator.clone()).await;
    client
        .send(DeltaDiscoveryRequest {
            node: Some(node().to_node()),
            initial_resource_versions: held,
            ..Default::default()
        })
        .await;
    let first = client.next().await;
    assert_eq!(
        names(&first),
        ["a"],
        "b is already held at its current version"
    );

    client
        .send(DeltaDiscoveryRequest {
            response_nonce: first.nonce.clone(),
            error_detail: Some(RpcStatus {
                code: 3,
                message: "cluster a is unacceptable".into(),
                details: vec![],
            }),
            ..Default::default()
        })
        .await;
    client.nothing_more().await;
    let status = proxies.snapshot()[0].types[type_url::CLUSTER].clone();
    assert_eq!(
        status.last_nack.as_deref(),
        Some("cluster a is unacceptable")
    );

    *generator.0.lock().unwrap() = vec![("a", 3), ("b", 1)];
    generations.send_modify(|g| *g += 1);
    let retry = client.next().await;
    assert_eq!(
        names(&retry),
        ["a"],
        "the next change retries what the proxy lacks"
    );
}
