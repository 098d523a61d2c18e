//! ADS server and client together on loopback: initial push, ACK, NACK
//! (the rejected version is recorded and the last good one stays), pushes
//! on a new generation, and dependent EDS subscriptions.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::cluster::v3::cluster::{ClusterDiscoveryType, DiscoveryType};
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use prost::Message;
use tokio::sync::watch;
use tokio_stream::wrappers::TcpListenerStream;
use trellis_xds::client::{AdsClient, ResourceHandler};
use trellis_xds::node::{Interception, ProxyKind};
use trellis_xds::server::{AdsServer, ProxyRegistry, ResourceGenerator};
use trellis_xds::{Any, EncodedResources, NodeInfo, ProxyResources, type_url};

/// Serves one EDS cluster whose name carries the generation.
struct Generator {
    clusters: Mutex<Vec<&'static str>>,
}

impl ResourceGenerator for Generator {
    fn generate(&self, _node: &NodeInfo) -> Result<Option<EncodedResources>, String> {
        let names = self.clusters.lock().unwrap().clone();
        let resources = ProxyResources {
            clusters: names
                .iter()
                .map(|name| Cluster {
                    name: name.to_string(),
                    cluster_discovery_type: Some(ClusterDiscoveryType::Type(
                        DiscoveryType::Eds as i32,
                    )),
                    ..Default::default()
                })
                .collect(),
            endpoints: names
                .iter()
                .map(|name| ClusterLoadAssignment {
                    cluster_name: name.to_string(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        };
        Ok(Some(resources.encode()))
    }
}

/// Accepts everything except clusters named `bad`, and wants EDS for every cluster.
#[derive(Default)]
struct Recorder {
    clusters: Mutex<Vec<String>>,
    endpoints: Mutex<Vec<String>>,
}

impl ResourceHandler for Recorder {
    fn apply(&self, type_url: &str, resources: &[Any]) -> Result<(), String> {
        match type_url {
            type_url::CLUSTER => {
                let names: Vec<String> = resources
                    .iter()
                    .map(|a| Cluster::decode(a.value.as_slice()).unwrap().name)
                    .collect();
                if names.iter().any(|n| n == "bad") {
                    return Err("cluster bad is not acceptable".into());
                }
                *self.clusters.lock().unwrap() = names;
            }
            type_url::ENDPOINT => {
                *self.endpoints.lock().unwrap() = resources
                    .iter()
                    .map(|a| {
                        ClusterLoadAssignment::decode(a.value.as_slice())
                            .unwrap()
                            .cluster_name
                    })
                    .collect();
            }
            _ => {}
        }
        Ok(())
    }

    fn wanted_names(&self, type_url: &str) -> Vec<String> {
        match type_url {
            type_url::ENDPOINT => self.clusters.lock().unwrap().clone(),
            _ => Vec::new(),
        }
    }
}

fn node() -> NodeInfo {
    NodeInfo {
        kind: ProxyKind::Sidecar,
        ip: "127.0.0.1".parse().unwrap(),
        pod_name: "test-0".into(),
        namespace: "default".into(),
        service_account: "default".into(),
        workload_name: "test".into(),
        labels: BTreeMap::new(),
        interception: Interception::None,
        app_ports: BTreeMap::new(),
        outbound_port: 15001,
        locality: String::new(),
    }
}

async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    for _ in 0..500 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

/// Serves `server` on a loopback port; a channel to it.
async fn serve_on_loopback(server: AdsServer<Generator>) -> tonic::transport::Channel {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(server.into_service())
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );
    tonic::transport::Endpoint::from_shared(format!("http://{address}"))
        .unwrap()
        .connect_lazy()
}

fn cds_status(proxies: &ProxyRegistry) -> Option<(String, String, Option<String>)> {
    let all = proxies.snapshot();
    let status = all.first()?.types.get(type_url::CLUSTER)?.clone();
    Some((status.sent_version, status.acked_version, status.last_nack))
}

#[tokio::test]
async fn pushes_acks_nacks_and_follows_dependent_subscriptions() {
    let generator = Arc::new(Generator {
        clusters: Mutex::new(vec!["a"]),
    });
    let (generations, receiver) = watch::channel(0u64);
    let server = AdsServer::new(generator.clone(), receiver);
    let proxies = server.proxies();
    let channel = serve_on_loopback(server).await;
    let recorder = Arc::new(Recorder::default());
    let client = tokio::spawn(AdsClient::new(channel, node().to_node()).run(recorder.clone()));

    eventually("the first push and its EDS follow-up", || {
        *recorder.endpoints.lock().unwrap() == ["a"]
    })
    .await;
    eventually("the ACK", || {
        cds_status(&proxies).is_some_and(|(sent, acked, _)| !sent.is_empty() && sent == acked)
    })
    .await;
    let (good_version, _, _) = cds_status(&proxies).unwrap();

    *generator.clusters.lock().unwrap() = vec!["bad"];
    generations.send_modify(|g| *g += 1);
    eventually("the NACK", || {
        cds_status(&proxies).is_some_and(|(_, _, nack)| nack.is_some())
    })
    .await;
    let (sent, acked, nack) = cds_status(&proxies).unwrap();
    assert_ne!(sent, good_version, "the rejected config was sent");
    assert_eq!(
        acked, good_version,
        "the proxy still runs the last good config"
    );
    assert!(nack.unwrap().contains("cluster bad"));
    assert_eq!(*recorder.clusters.lock().unwrap(), ["a"]);

    *generator.clusters.lock().unwrap() = vec!["a", "b"];
    generations.send_modify(|g| *g += 1);
    eventually("the next good push", || {
        *recorder.endpoints.lock().unwrap() == ["a", "b"]
    })
    .await;
    eventually("its ACK clears the NACK", || {
        cds_status(&proxies).is_some_and(|(s, a, n)| s == a && n.is_none())
    })
    .await;

    let mut registry = prometheus_client::registry::Registry::default();
    proxies.metrics.register(&mut registry);
    let exposition = || {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        text
    };
    let value = |text: &str, series: &str| {
        text.lines()
            .find_map(|line| {
                let (name, value) = line.rsplit_once(' ')?;
                (name == series).then(|| value.parse::<f64>().ok())?
            })
            .unwrap_or_else(|| panic!("no {series} in\n{text}"))
    };
    let version = format!("trellis {}", env!("CARGO_PKG_VERSION"));
    let connected = format!("pilot_xds{{version=\"{version}\"}}");
    let by_revision = format!("trellis_xds_proxies{{revision=\"default\",version=\"{version}\"}}");
    let text = exposition();
    assert_eq!(value(&text, &connected), 1.0);
    assert_eq!(value(&text, &by_revision), 1.0);
    // Istio's counter names, without OpenMetrics' `_total`.
    assert!(value(&text, "pilot_xds_pushes{type=\"cds\"}") >= 3.0);
    assert_eq!(value(&text, "pilot_total_xds_rejects{type=\"cds\"}"), 1.0);
    assert!(
        value(&text, "pilot_proxy_convergence_time_count") >= 1.0,
        "the good push after the NACK converged"
    );
    assert!(value(&text, "pilot_proxy_queue_time_count") >= 1.0);
    assert!(value(&text, "pilot_xds_push_time_count{type=\"cds\"}") >= 3.0);

    client.abort();
    eventually("the disconnection", || proxies.snapshot().is_empty()).await;
    let text = exposition();
    assert_eq!(value(&text, &connected), 0.0, "the gauge goes back down");
    assert_eq!(value(&text, &by_revision), 0.0);
}

/// The service is routed by hand (see `trellis_xds::AdsService`): a
/// stream's error reaches the client as a gRPC status in the trailers, and
/// an unknown method is UNIMPLEMENTED, as tonic's own server answers.
#[tokio::test]
async fn errors_reach_the_client_as_grpc_statuses() {
    use envoy_types::pb::envoy::service::discovery::v3::DiscoveryRequest;
    use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;

    let generator = Arc::new(Generator {
        clusters: Mutex::new(vec!["a"]),
    });
    let (_generations, receiver) = watch::channel(0u64);
    let channel = serve_on_loopback(AdsServer::new(generator, receiver)).await;
    let mut client = AggregatedDiscoveryServiceClient::new(channel.clone());
    // The first request must name the node.
    let nameless = DiscoveryRequest {
        type_url: type_url::CLUSTER.into(),
        ..Default::default()
    };
    let mut responses = client
        .stream_aggregated_resources(tokio_stream::iter([nameless]))
        .await
        .unwrap()
        .into_inner();
    let status = tokio::time::timeout(Duration::from_secs(30), responses.message())
        .await
        .expect("an answer")
        .expect_err("a status, not a response");
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(status.message().contains("node"), "{status:?}");

    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let unknown = grpc
        .unary::<DiscoveryRequest, DiscoveryRequest, _>(
            tonic::Request::new(DiscoveryRequest::default()),
            "/envoy.service.discovery.v3.AggregatedDiscoveryService/Nothing"
                .parse()
                .unwrap(),
            tonic_prost::ProstCodec::default(),
        )
        .await
        .expect_err("no such method");
    assert_eq!(unknown.code(), tonic::Code::Unimplemented);
}
