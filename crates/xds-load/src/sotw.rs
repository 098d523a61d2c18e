//! A state-of-the-world ADS client that behaves like a sidecar: wildcard
//! CDS and LDS, EDS for the EDS clusters, RDS for the routes the listeners
//! name, every response ACKed with the names it currently wants.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::DiscoveryRequest;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;
use tonic::{Request, Status};
use trellis_xds::type_url;

use crate::record::Recorder;
use crate::wire::{SotwResponse, eds_cluster_name, resource_bytes, route_names};

const PATH: &str =
    "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources";

#[derive(Default)]
struct TypeState {
    version: String,
    nonce: String,
    names: Vec<String>,
}

pub async fn run(
    channel: Channel,
    node: Node,
    proxy: usize,
    recorder: Arc<Recorder>,
) -> Result<(), Status> {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready()
        .await
        .map_err(|e| Status::unavailable(e.to_string()))?;
    let (requests, outbound) = mpsc::channel::<DiscoveryRequest>(8);
    let gone = |_| Status::cancelled("request stream closed");
    for (i, type_url) in [type_url::CLUSTER, type_url::LISTENER]
        .into_iter()
        .enumerate()
    {
        let request = DiscoveryRequest {
            node: (i == 0).then(|| node.clone()),
            type_url: type_url.into(),
            ..Default::default()
        };
        requests.send(request).await.map_err(gone)?;
    }
    let codec = tonic_prost::ProstCodec::<DiscoveryRequest, SotwResponse>::default();
    let path = tonic::codegen::http::uri::PathAndQuery::from_static(PATH);
    let mut responses = grpc
        .streaming(Request::new(ReceiverStream::new(outbound)), path, codec)
        .await?
        .into_inner();
    let mut types: BTreeMap<&'static str, TypeState> = BTreeMap::new();
    while let Some(response) = responses.message().await? {
        recorder.received(proxy, resource_bytes(response.resources.iter()));
        let Some(type_url) = crate::known_type(&response.type_url) else {
            continue;
        };
        let dependent = match type_url {
            type_url::CLUSTER => Some((
                type_url::ENDPOINT,
                response
                    .resources
                    .iter()
                    .filter_map(eds_cluster_name)
                    .collect::<BTreeSet<_>>(),
            )),
            type_url::LISTENER => Some((
                type_url::ROUTE,
                response
                    .resources
                    .iter()
                    .flat_map(route_names)
                    .collect::<BTreeSet<_>>(),
            )),
            _ => None,
        };
        // Envoy asks for the new dependent names before ACKing.
        if let Some((dependent, names)) = dependent {
            let names: Vec<String> = names.into_iter().collect();
            let state = types.entry(dependent).or_default();
            if state.names != names {
                state.names = names;
                let request = DiscoveryRequest {
                    version_info: state.version.clone(),
                    response_nonce: state.nonce.clone(),
                    resource_names: state.names.clone(),
                    type_url: dependent.into(),
                    ..Default::default()
                };
                requests.send(request).await.map_err(gone)?;
            }
        }
        let state = types.entry(type_url).or_default();
        state.version = response.version_info;
        state.nonce = response.nonce;
        let ack = DiscoveryRequest {
            version_info: state.version.clone(),
            response_nonce: state.nonce.clone(),
            resource_names: state.names.clone(),
            type_url: type_url.into(),
            ..Default::default()
        };
        requests.send(ack).await.map_err(gone)?;
        recorder.acked(proxy, crate::type_bit(type_url));
    }
    Ok(())
}
