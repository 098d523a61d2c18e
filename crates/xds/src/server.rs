//! The aggregated discovery service (state of the world): one stream per
//! proxy, pushes on every new config generation only the types whose content
//! changed, and tracks ACK/NACK per proxy and type.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use tokio::sync::{Semaphore, watch};
use tokio_stream::StreamExt;
use tonic::{Status, Streaming};

use crate::auth::Caller;
use crate::metrics::{Convergence, XdsMetrics};
use crate::node::NodeInfo;
use crate::proxy_meta::ProxyMeta;
use crate::resources::EncodedResources;
use crate::throttle;
use crate::type_url;
use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::google::protobuf::Any;

/// Produces one proxy's resources for the current config generation.
pub trait ResourceGenerator: Send + Sync + 'static {
    /// `Ok(None)` while the control plane has no complete config yet: a
    /// proxy is never pushed an empty config it would have to serve.
    fn generate(&self, node: &NodeInfo) -> Result<Option<EncodedResources>, String>;
}

/// What the control plane knows of each connected proxy (for
/// `proxy-status` and debugging).
#[derive(Clone, Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProxyStatus {
    pub node_id: String,
    /// The proxy's cluster ID (node metadata `CLUSTER_ID`; Istio's default
    /// is `Kubernetes`).
    pub cluster_id: String,
    /// The proxy's version: node metadata `ISTIO_VERSION` from Istio's
    /// agent, else its xDS user agent (`trellis 0.1.0`).
    pub proxy_version: String,
    /// The control-plane revision that injected it (`istio.io/rev`), or
    /// `default`.
    pub revision: String,
    pub connected_at: SystemTime,
    /// What the translator works from, to regenerate the proxy's config
    /// for debugging.
    #[serde(skip)]
    pub node: Option<NodeInfo>,
    /// Per type: what was last sent and what the proxy last accepted.
    pub types: BTreeMap<&'static str, TypeStatus>,
}

impl ProxyStatus {
    pub(crate) fn connected(node: &Node, info: &NodeInfo) -> Self {
        let meta = ProxyMeta::of(node, info);
        ProxyStatus {
            node_id: node.id.clone(),
            cluster_id: meta.cluster_id,
            proxy_version: meta.version,
            revision: meta.revision,
            connected_at: SystemTime::now(),
            node: Some(info.clone()),
            types: BTreeMap::new(),
        }
    }
}

#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TypeStatus {
    pub sent_version: String,
    pub acked_version: String,
    pub last_nack: Option<String>,
}

/// Connected proxies, by stream id, and the xDS metrics about them.
#[derive(Debug, Default)]
pub struct ProxyRegistry {
    streams: Mutex<HashMap<u64, ProxyStatus>>,
    pub metrics: XdsMetrics,
}

impl ProxyRegistry {
    pub fn snapshot(&self) -> Vec<ProxyStatus> {
        let streams = self.streams.lock().unwrap_or_else(|e| e.into_inner());
        let mut all: Vec<_> = streams.values().cloned().collect();
        all.sort_by(|a, b| a.node_id.cmp(&b.node_id));
        all
    }

    pub(crate) fn update(&self, stream: u64, change: impl FnOnce(&mut ProxyStatus)) {
        let mut streams = self.streams.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(status) = streams.get_mut(&stream) {
            change(status);
        }
    }

    /// Identifies a new stream's proxy from its first request and records
    /// it as connected.
    /// A stream opened by an authenticated `caller` is only served as that
    /// caller's proxy.
    pub(crate) fn register(
        &self,
        stream: u64,
        node: Option<&Node>,
        caller: Option<&Caller>,
    ) -> Result<NodeInfo, Status> {
        let node =
            node.ok_or_else(|| Status::invalid_argument("the first request must carry a node"))?;
        let info =
            NodeInfo::from_node(node).map_err(|e| Status::invalid_argument(e.to_string()))?;
        if let Some(caller) = caller {
            crate::auth::check_node(caller, &info).inspect_err(|status| {
                tracing::warn!(stream, node = %node.id, %status, "refused an xDS stream");
            })?;
        }
        tracing::info!(stream, node = %node.id, "proxy connected");
        self.insert(stream, ProxyStatus::connected(node, &info));
        Ok(info)
    }

    pub(crate) fn insert(&self, stream: u64, status: ProxyStatus) {
        let mut streams = self.streams.lock().unwrap_or_else(|e| e.into_inner());
        self.metrics
            .connected(&status.proxy_version, &status.revision);
        if let Some(replaced) = streams.insert(stream, status) {
            self.metrics
                .disconnected(&replaced.proxy_version, &replaced.revision);
        }
    }

    pub(crate) fn remove(&self, stream: u64) {
        let mut streams = self.streams.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(status) = streams.remove(&stream) {
            self.metrics
                .disconnected(&status.proxy_version, &status.revision);
        }
    }
}

pub struct AdsServer<G> {
    generator: Arc<G>,
    generations: watch::Receiver<u64>,
    proxies: Arc<ProxyRegistry>,
    next_stream: AtomicU64,
    /// Responses in flight across all streams (see [`throttle`]).
    pushes: Arc<Semaphore>,
}

impl<G: ResourceGenerator> AdsServer<G> {
    /// `generations` ticks whenever the config changes; every stream then
    /// regenerates its proxy's resources.
    pub fn new(generator: Arc<G>, generations: watch::Receiver<u64>) -> Self {
        AdsServer {
            generator,
            generations,
            proxies: Arc::default(),
            next_stream: AtomicU64::new(1),
            pushes: Arc::new(Semaphore::new(throttle::DEFAULT_PUSH_THROTTLE)),
        }
    }

    /// At most `limit` responses are built and in flight at once (Istio's
    /// `PILOT_PUSH_THROTTLE`); the rest of a push waits its turn.
    pub fn with_push_throttle(mut self, limit: usize) -> Self {
        self.pushes = Arc::new(Semaphore::new(limit.max(1)));
        self
    }

    pub fn proxies(&self) -> Arc<ProxyRegistry> {
        self.proxies.clone()
    }

    /// The ADS gRPC service (state of the world and delta) over this server.
    pub fn into_service(self) -> crate::service::AdsService<G> {
        crate::service::AdsService::new(self)
    }

    /// Starts serving one state-of-the-world stream.
    pub(crate) fn open_sotw(
        &self,
        requests: Streaming<DiscoveryRequest>,
        caller: Option<Caller>,
    ) -> throttle::Responses<Result<DiscoveryResponse, Status>> {
        let (responses, outbound) = throttle::channel(&self.pushes);
        let stream = AdsStream {
            id: self.next_stream.fetch_add(1, Ordering::Relaxed),
            generator: self.generator.clone(),
            generations: self.generations.clone(),
            proxies: self.proxies.clone(),
            responses,
            caller,
            node: None,
            current: None,
            types: BTreeMap::new(),
            nonce: 0,
            convergence: Convergence::default(),
        };
        tokio::spawn(stream.run(requests));
        outbound
    }

    /// Starts serving one delta stream.
    pub(crate) fn open_delta(
        &self,
        requests: Streaming<DeltaDiscoveryRequest>,
        caller: Option<Caller>,
    ) -> throttle::Responses<Result<DeltaDiscoveryResponse, Status>> {
        let (responses, outbound) = throttle::channel(&self.pushes);
        let stream = crate::delta::DeltaStream::new(
            self.next_stream.fetch_add(1, Ordering::Relaxed),
            self.generator.clone(),
            self.generations.clone(),
            self.proxies.clone(),
            responses,
            caller,
        );
        tokio::spawn(stream.run(requests));
        outbound
    }
}

/// Per-type subscription state of one stream.
#[derive(Default)]
struct Subscription {
    names: Vec<String>,
    /// Nonce of the last response sent; requests with another nonce are stale.
    nonce: String,
    /// Version and names of the last response, to skip identical pushes.
    sent: Option<(String, Vec<String>)>,
    /// Named CDS and EDS resources as last sent (see [`select_named`]).
    retained: Retained,
}

/// What a named CDS/EDS subscriber was last sent, for make before break:
/// the previous generation's resources (shared with every other stream
/// that got them, not copied) and the few already missing from it.
#[derive(Default)]
struct Retained {
    previous: Option<crate::resources::TypedResources>,
    /// The names sent from `previous`: only what was sent is kept.
    sent: std::collections::HashSet<String>,
    missing: BTreeMap<String, Any>,
}

struct AdsStream<G> {
    id: u64,
    generator: Arc<G>,
    generations: watch::Receiver<u64>,
    proxies: Arc<ProxyRegistry>,
    responses: throttle::Sender<Result<DiscoveryResponse, Status>>,
    /// Who opened the stream, when the port authenticates callers.
    caller: Option<Caller>,
    node: Option<NodeInfo>,
    current: Option<EncodedResources>,
    types: BTreeMap<&'static str, Subscription>,
    nonce: u64,
    convergence: Convergence,
}

impl<G: ResourceGenerator> AdsStream<G> {
    async fn run(mut self, mut requests: Streaming<DiscoveryRequest>) {
        if let Err(status) = self.serve(&mut requests).await {
            let _ = self.responses.send_unthrottled(Err(status)).await;
        }
        self.proxies.remove(self.id);
    }

    async fn serve(&mut self, requests: &mut Streaming<DiscoveryRequest>) -> Result<(), Status> {
        loop {
            tokio::select! {
                request = requests.next() => match request {
                    Some(Ok(request)) => self.on_request(request).await?,
                    Some(Err(status)) => {
                        tracing::debug!(stream = self.id, %status, "ADS stream ended with an error");
                        return Ok(());
                    }
                    None => return Ok(()),
                },
                changed = self.generations.changed() => {
                    if changed.is_err() {
                        return Err(Status::unavailable("control plane is shutting down"));
                    }
                    if self.node.is_some() {
                        self.convergence.begin();
                        self.regenerate();
                        self.push_changed().await?;
                        self.convergence.settle_if_nothing_sent();
                    }
                }
            }
        }
    }

    async fn on_request(&mut self, request: DiscoveryRequest) -> Result<(), Status> {
        if self.node.is_none() {
            self.identify(&request)?;
        }
        let Some(type_url) = known_type(&request.type_url) else {
            tracing::warn!(type_url = %request.type_url, "ignoring a request for an unserved type");
            return Ok(());
        };
        if !request.response_nonce.is_empty() {
            self.responses.answered(&request.response_nonce);
        }
        let subscription = self.types.entry(type_url).or_default();
        if !request.response_nonce.is_empty() && request.response_nonce != subscription.nonce {
            return Ok(()); // answers a response that has since been superseded
        }
        if let Some(error) = &request.error_detail {
            self.record_nack(type_url, &request.version_info, &error.message);
            return Ok(());
        }
        if !request.response_nonce.is_empty() {
            self.convergence.acked(type_url, &self.proxies.metrics);
            let version = request.version_info.clone();
            self.proxies.update(self.id, |status| {
                let entry = status.types.entry(type_url).or_default();
                entry.acked_version = version;
                entry.last_nack = None;
            });
        }
        let subscription = self.types.entry(type_url).or_default();
        subscription.names = request.resource_names;
        self.send_if_changed(type_url).await
    }

    fn identify(&mut self, request: &DiscoveryRequest) -> Result<(), Status> {
        let info = self
            .proxies
            .register(self.id, request.node.as_ref(), self.caller.as_ref())?;
        self.node = Some(info);
        self.regenerate();
        Ok(())
    }

    fn record_nack(&mut self, type_url: &'static str, version: &str, message: &str) {
        self.proxies.metrics.rejected(type_url);
        self.convergence.failed();
        tracing::warn!(
            stream = self.id,
            r#type = type_url::short_name(type_url),
            version,
            message,
            "proxy rejected config (NACK)"
        );
        let message = message.to_string();
        self.proxies.update(self.id, |status| {
            status.types.entry(type_url).or_default().last_nack = Some(message);
        });
    }

    fn regenerate(&mut self) {
        let node = self.node.as_ref().expect("regenerate runs after identify");
        if let Some(resources) = generate_latest(self.generator.as_ref(), node, self.id) {
            self.current = Some(resources);
        }
    }

    async fn push_changed(&mut self) -> Result<(), Status> {
        for type_url in type_url::PUSH_ORDER {
            if self.types.contains_key(type_url) {
                self.send_if_changed(type_url).await?;
            }
        }
        Ok(())
    }

    async fn send_if_changed(&mut self, type_url: &'static str) -> Result<(), Status> {
        let Some(typed) = self.current.as_ref().and_then(|c| c.get(type_url)) else {
            return Ok(());
        };
        let subscription = self.types.entry(type_url).or_default();
        // Compared before cloning: most pushes leave most types unchanged.
        if subscription.sent.as_ref().is_some_and(|(version, names)| {
            *version == typed.version && *names == subscription.names
        }) {
            return Ok(());
        }
        // Room first, so that waiting streams hold no copy of their response.
        let slot = self.responses.reserve().await.map_err(|_| gone())?;
        self.convergence.dequeued(&self.proxies.metrics);
        let building = std::time::Instant::now();
        let key = (typed.version.clone(), subscription.names.clone());
        let resources = if type_url::is_wildcard(type_url) && subscribes_to_all(&subscription.names)
        {
            typed.select(&[])
        } else if subscription.names.is_empty() {
            Vec::new()
        } else {
            select_named(
                type_url,
                typed,
                &subscription.names,
                &mut subscription.retained,
            )
        };
        self.nonce += 1;
        let nonce = self.nonce.to_string();
        subscription.nonce = nonce.clone();
        subscription.sent = Some(key);
        let response = DiscoveryResponse {
            version_info: typed.version.clone(),
            resources,
            type_url: type_url.to_string(),
            nonce: nonce.clone(),
            ..Default::default()
        };
        let version = typed.version.clone();
        self.proxies.update(self.id, |status| {
            status.types.entry(type_url).or_default().sent_version = version;
        });
        self.proxies.metrics.pushed(type_url, building);
        self.convergence.sent(type_url);
        self.responses.send(slot, Ok(response), nonce);
        Ok(())
    }
}

pub(crate) fn gone() -> Status {
    Status::cancelled("proxy went away")
}

/// The proxy's resources now; `None` keeps whatever it was last sent:
/// before the first complete load (never push an empty config), and when
/// translation fails (a translator bug must not take a proxy's config away).
pub(crate) fn generate_latest<G: ResourceGenerator>(
    generator: &G,
    node: &NodeInfo,
    stream: u64,
) -> Option<EncodedResources> {
    match generator.generate(node) {
        Ok(resources) => resources,
        Err(message) => {
            tracing::error!(stream, message, "cannot generate config; keeping the last");
            None
        }
    }
}

/// The resources a client named. A named cluster (or its endpoints) that
/// has gone is sent as last sent until the client unsubscribes: a gRPC
/// client stops routing to a cluster only with the next RDS, pushed after
/// CDS, and calls routed to a cluster removed first would fail in between
/// (make before break, as Envoy's xDS protocol advises).
fn select_named(
    type_url: &str,
    typed: &crate::resources::TypedResources,
    names: &[String],
    retained: &mut Retained,
) -> Vec<Any> {
    let keeps_removed = type_url == type_url::CLUSTER || type_url == type_url::ENDPOINT;
    let mut missing = BTreeMap::new();
    let mut sent = std::collections::HashSet::new();
    let mut selected = Vec::new();
    for name in names {
        if let Some(resource) = typed.by_name.get(name) {
            selected.push(resource.clone());
            if keeps_removed {
                sent.insert(name.clone());
            }
            continue;
        }
        if !keeps_removed {
            continue;
        }
        let last_sent = retained
            .previous
            .as_ref()
            .filter(|_| retained.sent.contains(name))
            .and_then(|previous| previous.by_name.get(name))
            .or_else(|| retained.missing.get(name));
        if let Some(resource) = last_sent {
            missing.insert(name.clone(), resource.clone());
            selected.push(resource.clone());
        }
    }
    if keeps_removed {
        *retained = Retained {
            previous: Some(typed.clone()),
            sent,
            missing,
        };
    }
    selected
}

/// For a wildcard type (LDS, CDS), no names (what Envoy sends) or `*` ask
/// for everything; otherwise the client (a proxyless gRPC client) wants
/// exactly the names it lists, and unknown names are simply absent.
fn subscribes_to_all(names: &[String]) -> bool {
    names.is_empty() || names.iter().any(|name| name == "*")
}

fn known_type(type_url: &str) -> Option<&'static str> {
    type_url::PUSH_ORDER.into_iter().find(|t| *t == type_url)
}
