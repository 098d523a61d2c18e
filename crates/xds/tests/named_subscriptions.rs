//! State-of-the-world LDS and CDS by name, as a proxyless gRPC client
//! subscribes: exactly the listed resources come back (unknown names are
//! simply absent), while an empty list or `*` still asks for everything,
//! as Envoy does. A named cluster that goes away is kept until the client
//! unsubscribes (make before break); a listener goes at once.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use prost::Message;
use tokio::sync::{mpsc, watch};
use tokio_stream::StreamExt;
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use trellis_xds::node::{Interception, ProxyKind};
use trellis_xds::server::{AdsServer, ResourceGenerator};
use trellis_xds::{EncodedResources, NodeInfo, ProxyResources, type_url};

const NAMES: [&str; 3] = ["a:80", "b:80", "c:80"];
const DEADLINE: Duration = Duration::from_secs(10);

/// Listeners and clusters named alike (all of `NAMES` at first).
struct Generator(Mutex<Vec<&'static str>>);

impl ResourceGenerator for Generator {
    fn generate(&self, _node: &NodeInfo) -> Result<Option<EncodedResources>, String> {
        let names = self.0.lock().unwrap().clone();
        let resources = ProxyResources {
            listeners: names
                .iter()
                .map(|name| Listener {
                    name: name.to_string(),
                    ..Default::default()
                })
                .collect(),
            clusters: names
                .iter()
                .map(|name| Cluster {
                    name: name.to_string(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        };
        Ok(Some(resources.encode()))
    }
}

fn grpc_client() -> NodeInfo {
    NodeInfo {
        kind: ProxyKind::ProxylessGrpc,
        ip: "127.0.0.1".parse().unwrap(),
        pod_name: "client-0".into(),
        namespace: "default".into(),
        service_account: "default".into(),
        workload_name: "client".into(),
        labels: BTreeMap::new(),
        interception: Interception::None,
        app_ports: BTreeMap::new(),
        outbound_port: 15001,
        locality: String::new(),
    }
}

/// A raw ADS stream: requests in, responses out.
struct Stream {
    /// Ticked to make the server push (dropped, it would mean the control
    /// plane is shutting down).
    generations: watch::Sender<u64>,
    requests: mpsc::Sender<DiscoveryRequest>,
    responses: tonic::Streaming<DiscoveryResponse>,
}

impl Stream {
    async fn open(generator: Arc<Generator>) -> Stream {
        let (generations, receiver) = watch::channel(0u64);
        let server = AdsServer::new(generator, receiver);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(server.into_service())
                .serve_with_incoming(TcpListenerStream::new(listener)),
        );
        let mut client = AggregatedDiscoveryServiceClient::connect(format!("http://{address}"))
            .await
            .unwrap();
        let (requests, outbound) = mpsc::channel(4);
        let responses = client
            .stream_aggregated_resources(ReceiverStream::new(outbound))
            .await
            .unwrap()
            .into_inner();
        Stream {
            generations,
            requests,
            responses,
        }
    }

    /// Asks for `names` of `type_url` (answering `nonce`) and returns the
    /// names in the response, and its nonce.
    async fn ask(&mut self, type_url: &str, names: &[&str], nonce: &str) -> (Vec<String>, String) {
        let request = DiscoveryRequest {
            node: Some(grpc_client().to_node()),
            type_url: type_url.into(),
            resource_names: names.iter().map(|n| n.to_string()).collect(),
            response_nonce: nonce.into(),
            ..Default::default()
        };
        self.requests.send(request).await.unwrap();
        self.next(type_url).await
    }

    /// The names in the next response, and its nonce.
    async fn next(&mut self, type_url: &str) -> (Vec<String>, String) {
        let response = tokio::time::timeout(DEADLINE, self.responses.next())
            .await
            .expect("a response in time")
            .expect("the stream stays open")
            .expect("a response, not an error");
        assert_eq!(response.type_url, type_url);
        let names = response
            .resources
            .iter()
            .map(|any| match type_url {
                type_url::LISTENER => Listener::decode(any.value.as_slice()).unwrap().name,
                _ => Cluster::decode(any.value.as_slice()).unwrap().name,
            })
            .collect();
        (names, response.nonce)
    }
}

#[tokio::test]
async fn named_lds_and_cds_subscriptions_get_exactly_what_they_name() {
    for type_url in [type_url::LISTENER, type_url::CLUSTER] {
        let mut stream = Stream::open(all_names()).await;
        let (names, nonce) = stream.ask(type_url, &["b:80", "unknown:1"], "").await;
        assert_eq!(names, ["b:80"], "{type_url}");
        let (names, nonce) = stream.ask(type_url, &["c:80", "a:80"], &nonce).await;
        assert_eq!(names, ["c:80", "a:80"], "{type_url}: in the order asked");
        let (names, nonce) = stream.ask(type_url, &["*"], &nonce).await;
        assert_eq!(names, NAMES, "{type_url}: * is everything");
        let (names, _) = stream.ask(type_url, &[], &nonce).await;
        assert_eq!(names, NAMES, "{type_url}: no names is everything");
    }
}

fn all_names() -> Arc<Generator> {
    Arc::new(Generator(Mutex::new(NAMES.to_vec())))
}

#[tokio::test]
async fn a_removed_cluster_stays_until_unsubscribed_and_a_listener_goes_at_once() {
    for type_url in [type_url::CLUSTER, type_url::LISTENER] {
        let generator = all_names();
        let mut stream = Stream::open(generator.clone()).await;
        let (names, _) = stream.ask(type_url, &["a:80", "b:80"], "").await;
        assert_eq!(names, ["a:80", "b:80"]);

        *generator.0.lock().unwrap() = vec!["a:80", "c:80"];
        stream.generations.send_modify(|g| *g += 1);
        let (names, pushed) = stream.next(type_url).await;
        let expected: &[&str] = match type_url {
            type_url::CLUSTER => &["a:80", "b:80"], // routes may still use b
            _ => &["a:80"],
        };
        assert_eq!(names, expected, "{type_url}");

        let (names, nonce) = stream.ask(type_url, &["a:80"], &pushed).await;
        assert_eq!(names, ["a:80"], "{type_url}: unsubscribed");
        let (names, _) = stream.ask(type_url, &["a:80", "b:80"], &nonce).await;
        assert_eq!(names, ["a:80"], "{type_url}: b is gone for good");
    }
}
