//! The proxy's ADS client: subscribes, applies, ACKs or NACKs, follows
//! dependent subscriptions (EDS after CDS, RDS after LDS), and reconnects
//! forever with backoff while the proxy keeps serving its last config.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use envoy_types::pb::google::protobuf::Any;
use envoy_types::pb::google::rpc::Status as RpcStatus;
use tokio::sync::mpsc;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tonic::metadata::errors::InvalidMetadataValue;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::Channel;

use crate::type_url;

/// Applies resources pushed by the control plane.
pub trait ResourceHandler: Send + Sync + 'static {
    /// Replaces every resource of `type_url` with `resources` (a
    /// state-of-the-world update). An error rejects the whole update (NACK)
    /// and the previous resources stay in force.
    fn apply(&self, type_url: &str, resources: &[Any]) -> Result<(), String>;

    /// Names to subscribe to for a type that is not wildcard (EDS: the
    /// clusters that use EDS; RDS: the route configs listeners refer to).
    fn wanted_names(&self, type_url: &str) -> Vec<String>;
}

const INITIAL_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
const DEPENDENT_TYPES: [&str; 2] = [type_url::ENDPOINT, type_url::ROUTE];

pub struct AdsClient {
    channel: Channel,
    node: Node,
    /// `authorization` metadata proving the proxy's identity on the TLS port.
    authorization: Option<MetadataValue<Ascii>>,
    /// What was accepted last, per type, so a reconnect resumes from it.
    accepted: BTreeMap<&'static str, TypeState>,
}

#[derive(Clone, Default)]
struct TypeState {
    version: String,
    nonce: String,
    names: Vec<String>,
}

impl AdsClient {
    pub fn new(channel: Channel, node: Node) -> Self {
        AdsClient {
            channel,
            node,
            authorization: None,
            accepted: BTreeMap::new(),
        }
    }

    /// Authenticates every stream with `authorization: Bearer TOKEN` (the
    /// workload's bootstrap credential, as the CA takes it).
    pub fn with_bearer_token(mut self, token: &str) -> Result<Self, InvalidMetadataValue> {
        self.authorization = Some(MetadataValue::try_from(format!("Bearer {token}"))?);
        Ok(self)
    }

    /// Runs until the process ends; connection failures only delay updates.
    pub async fn run(mut self, handler: Arc<dyn ResourceHandler>) {
        let mut backoff = INITIAL_BACKOFF;
        loop {
            match self.run_stream(handler.as_ref()).await {
                Ok(()) => {
                    tracing::warn!("control plane closed the ADS stream; reconnecting");
                    backoff = INITIAL_BACKOFF;
                }
                Err(status) => {
                    tracing::warn!(%status, ?backoff, "ADS stream failed; keeping the last config and retrying");
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    async fn run_stream(&mut self, handler: &dyn ResourceHandler) -> Result<(), tonic::Status> {
        let (requests, outbound) = mpsc::channel(16);
        for type_url in [type_url::CLUSTER, type_url::LISTENER] {
            let resume = self.accepted.get(type_url).cloned().unwrap_or_default();
            let mut request = self.request(type_url, &resume.version, "", Vec::new());
            if type_url == type_url::CLUSTER {
                // Only a stream's first request carries the node, as Envoy does.
                request.node = Some(self.node.clone());
            }
            send(&requests, request).await?;
        }
        for type_url in DEPENDENT_TYPES {
            if let Some(state) = self.accepted.get(type_url).cloned() {
                self.accepted.insert(
                    type_url,
                    TypeState {
                        nonce: String::new(),
                        ..state.clone()
                    },
                );
                send(
                    &requests,
                    self.request(type_url, &state.version, "", state.names),
                )
                .await?;
            }
        }
        let mut client = AggregatedDiscoveryServiceClient::new(self.channel.clone())
            .max_decoding_message_size(64 << 20);
        let mut call = tonic::Request::new(ReceiverStream::new(outbound));
        if let Some(authorization) = &self.authorization {
            call.metadata_mut()
                .insert("authorization", authorization.clone());
        }
        let mut responses = client.stream_aggregated_resources(call).await?.into_inner();
        while let Some(response) = responses.next().await {
            let response = response?;
            let reply = self.on_response(handler, response);
            send(&requests, reply).await?;
            for request in self.dependent_requests(handler) {
                send(&requests, request).await?;
            }
        }
        Ok(())
    }

    fn on_response(
        &mut self,
        handler: &dyn ResourceHandler,
        response: DiscoveryResponse,
    ) -> DiscoveryRequest {
        let Some(type_url) = type_url::PUSH_ORDER
            .into_iter()
            .find(|t| *t == response.type_url)
        else {
            let mut nack = self.request(&response.type_url, "", &response.nonce, Vec::new());
            nack.error_detail = Some(invalid(format!(
                "type {} is not supported",
                response.type_url
            )));
            return nack;
        };
        let state = self.accepted.entry(type_url).or_default();
        state.nonce = response.nonce.clone();
        let names = state.names.clone();
        match handler.apply(type_url, &response.resources) {
            Ok(()) => {
                tracing::debug!(r#type = type_url::short_name(type_url), version = %response.version_info, count = response.resources.len(), "applied");
                state.version = response.version_info.clone();
                self.request(type_url, &response.version_info, &response.nonce, names)
            }
            Err(message) => {
                tracing::warn!(r#type = type_url::short_name(type_url), version = %response.version_info, %message, "rejected config (NACK)");
                let last_good = state.version.clone();
                let mut nack = self.request(type_url, &last_good, &response.nonce, names);
                nack.error_detail = Some(invalid(message));
                nack
            }
        }
    }

    /// New EDS/RDS subscriptions after clusters or listeners changed.
    fn dependent_requests(&mut self, handler: &dyn ResourceHandler) -> Vec<DiscoveryRequest> {
        let mut requests = Vec::new();
        for type_url in DEPENDENT_TYPES {
            let mut wanted = handler.wanted_names(type_url);
            wanted.sort();
            wanted.dedup();
            let state = self.accepted.entry(type_url).or_default();
            if state.names == wanted {
                continue;
            }
            state.names = wanted.clone();
            let (version, nonce) = (state.version.clone(), state.nonce.clone());
            requests.push(self.request(type_url, &version, &nonce, wanted));
        }
        requests
    }

    fn request(
        &self,
        type_url: &str,
        version: &str,
        nonce: &str,
        names: Vec<String>,
    ) -> DiscoveryRequest {
        DiscoveryRequest {
            version_info: version.to_string(),
            resource_names: names,
            type_url: type_url.to_string(),
            response_nonce: nonce.to_string(),
            ..Default::default()
        }
    }
}

fn invalid(message: String) -> RpcStatus {
    RpcStatus {
        code: tonic::Code::InvalidArgument as i32,
        message,
        details: Vec::new(),
    }
}

async fn send(
    requests: &mpsc::Sender<DiscoveryRequest>,
    request: DiscoveryRequest,
) -> Result<(), tonic::Status> {
    requests
        .send(request)
        .await
        .map_err(|_| tonic::Status::cancelled("ADS request stream closed"))
}
