//! An incremental (delta) ADS client that behaves like a sidecar: wildcard
//! CDS and LDS, EDS and RDS subscriptions kept in step with the clusters
//! and listeners it holds, every response ACKed.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::DeltaDiscoveryRequest;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;
use tonic::{Request, Status};
use trellis_xds::type_url;

use crate::record::Recorder;
use crate::wire::{DeltaResponse, eds_cluster_name, resource_bytes, route_names};

const PATH: &str =
    "/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources";

/// What the proxy holds that decides its dependent subscriptions.
#[derive(Default)]
struct Held {
    /// EDS cluster names, by cluster.
    eds: BTreeMap<String, Option<String>>,
    /// Route names, by listener.
    routes: BTreeMap<String, Vec<String>>,
    subscribed_eds: BTreeSet<String>,
    subscribed_routes: BTreeSet<String>,
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
    let (requests, outbound) = mpsc::channel::<DeltaDiscoveryRequest>(8);
    let gone = |_| Status::cancelled("request stream closed");
    for (i, type_url) in [type_url::CLUSTER, type_url::LISTENER]
        .into_iter()
        .enumerate()
    {
        let request = DeltaDiscoveryRequest {
            node: (i == 0).then(|| node.clone()),
            type_url: type_url.into(),
            ..Default::default()
        };
        requests.send(request).await.map_err(gone)?;
    }
    let codec = tonic_prost::ProstCodec::<DeltaDiscoveryRequest, DeltaResponse>::default();
    let path = tonic::codegen::http::uri::PathAndQuery::from_static(PATH);
    let mut responses = grpc
        .streaming(Request::new(ReceiverStream::new(outbound)), path, codec)
        .await?
        .into_inner();
    let mut held = Held::default();
    while let Some(response) = responses.message().await? {
        let bytes = resource_bytes(
            response
                .resources
                .iter()
                .filter_map(|r| r.resource.as_ref()),
        );
        recorder.received(proxy, bytes);
        let Some(type_url) = crate::known_type(&response.type_url) else {
            continue;
        };
        let change = match type_url {
            type_url::CLUSTER => {
                for resource in &response.resources {
                    let eds = resource.resource.as_ref().and_then(eds_cluster_name);
                    held.eds.insert(resource.name.clone(), eds);
                }
                for name in &response.removed_resources {
                    held.eds.remove(name);
                }
                let wanted = held.eds.values().flatten().cloned().collect();
                Some((
                    type_url::ENDPOINT,
                    subscription_change(&mut held.subscribed_eds, wanted),
                ))
            }
            type_url::LISTENER => {
                for resource in &response.resources {
                    let routes = resource
                        .resource
                        .as_ref()
                        .map(route_names)
                        .unwrap_or_default();
                    held.routes.insert(resource.name.clone(), routes);
                }
                for name in &response.removed_resources {
                    held.routes.remove(name);
                }
                let wanted = held.routes.values().flatten().cloned().collect();
                Some((
                    type_url::ROUTE,
                    subscription_change(&mut held.subscribed_routes, wanted),
                ))
            }
            _ => None,
        };
        if let Some((dependent, (subscribe, unsubscribe))) = change
            && !(subscribe.is_empty() && unsubscribe.is_empty())
        {
            let request = DeltaDiscoveryRequest {
                type_url: dependent.into(),
                resource_names_subscribe: subscribe,
                resource_names_unsubscribe: unsubscribe,
                ..Default::default()
            };
            requests.send(request).await.map_err(gone)?;
        }
        let ack = DeltaDiscoveryRequest {
            type_url: type_url.into(),
            response_nonce: response.nonce,
            ..Default::default()
        };
        requests.send(ack).await.map_err(gone)?;
        recorder.acked(proxy, crate::type_bit(type_url));
    }
    Ok(())
}

/// Names to subscribe and unsubscribe to go from `subscribed` to `wanted`.
fn subscription_change(
    subscribed: &mut BTreeSet<String>,
    wanted: BTreeSet<String>,
) -> (Vec<String>, Vec<String>) {
    let subscribe = wanted.difference(subscribed).cloned().collect();
    let unsubscribe = subscribed.difference(&wanted).cloned().collect();
    *subscribed = wanted;
    (subscribe, unsubscribe)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscription_change_is_the_difference_both_ways() {
        let mut subscribed: BTreeSet<String> = ["a", "b"].map(String::from).into();
        let wanted: BTreeSet<String> = ["b", "c"].map(String::from).into();
        let (subscribe, unsubscribe) = subscription_change(&mut subscribed, wanted.clone());
        assert_eq!(subscribe, vec!["c"]);
        assert_eq!(unsubscribe, vec!["a"]);
        assert_eq!(subscribed, wanted);
        let (subscribe, unsubscribe) = subscription_change(&mut subscribed, wanted);
        assert!(subscribe.is_empty() && unsubscribe.is_empty());
    }
}
