//! Incremental (delta) ADS: the proxy says which resources it wants and
//! which versions it already holds; each push carries only resources whose
//! version changed and the names of those removed. A NACKed response leaves
//! the server's view of the proxy unchanged, so the next change retries.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, Resource,
};
use tokio::sync::watch;
use tokio_stream::StreamExt;
use tonic::{Status, Streaming};

use crate::auth::Caller;
use crate::metrics::Convergence;
use crate::node::NodeInfo;
use crate::resources::{EncodedResources, TypedResources};
use crate::server::{ProxyRegistry, ResourceGenerator, generate_latest, gone};
use crate::type_url;

/// Names a client subscribes to for "everything of this type".
const WILDCARD: &str = "*";

/// What one stream knows about one resource type.
#[derive(Default)]
struct TypeState {
    wildcard: bool,
    names: BTreeSet<String>,
    /// Versions the proxy holds (as far as ACKs tell), by resource name.
    held: HashMap<String, String>,
    /// The response awaiting an answer: its nonce, its system version, and
    /// what `held` was before it.
    pending: Option<(String, String, HashMap<String, String>)>,
    /// A system version the proxy rejected: not sent again.
    rejected: Option<String>,
    /// The system version `held` was last brought to, while the
    /// subscription stayed as it is: nothing to compare again.
    synced: Option<String>,
}

pub(crate) struct DeltaStream<G> {
    id: u64,
    generator: Arc<G>,
    generations: watch::Receiver<u64>,
    proxies: Arc<ProxyRegistry>,
    responses: crate::throttle::Sender<Result<DeltaDiscoveryResponse, Status>>,
    caller: Option<Caller>,
    node: Option<NodeInfo>,
    current: Option<EncodedResources>,
    types: BTreeMap<&'static str, TypeState>,
    nonce: u64,
    convergence: Convergence,
}

impl<G: ResourceGenerator> DeltaStream<G> {
    pub(crate) fn new(
        id: u64,
        generator: Arc<G>,
        generations: watch::Receiver<u64>,
        proxies: Arc<ProxyRegistry>,
        responses: crate::throttle::Sender<Result<DeltaDiscoveryResponse, Status>>,
        caller: Option<Caller>,
    ) -> Self {
        DeltaStream {
            id,
            generator,
            generations,
            proxies,
            responses,
            caller,
            node: None,
            current: None,
            types: BTreeMap::new(),
            nonce: 0,
            convergence: Convergence::default(),
        }
    }

    pub(crate) async fn run(mut self, mut requests: Streaming<DeltaDiscoveryRequest>) {
        if let Err(status) = self.serve(&mut requests).await {
            let _ = self.responses.send_unthrottled(Err(status)).await;
        }
        self.proxies.remove(self.id);
    }

    async fn serve(
        &mut self,
        requests: &mut Streaming<DeltaDiscoveryRequest>,
    ) -> Result<(), Status> {
        loop {
            tokio::select! {
                request = requests.next() => match request {
                    Some(Ok(request)) => self.on_request(request).await?,
                    Some(Err(_)) | None => return Ok(()),
                },
                changed = self.generations.changed() => {
                    if changed.is_err() {
                        return Err(Status::unavailable("control plane is shutting down"));
                    }
                    if self.node.is_some() {
                        self.convergence.begin();
                        self.regenerate();
                        for type_url in type_url::PUSH_ORDER {
                            if self.types.contains_key(type_url) {
                                self.push(type_url).await?;
                            }
                        }
                        self.convergence.settle_if_nothing_sent();
                    }
                }
            }
        }
    }

    async fn on_request(&mut self, request: DeltaDiscoveryRequest) -> Result<(), Status> {
        if self.node.is_none() {
            self.identify(&request)?;
        }
        let Some(type_url) = type_url::PUSH_ORDER
            .into_iter()
            .find(|t| *t == request.type_url)
        else {
            tracing::warn!(type_url = %request.type_url, "ignoring a delta request for an unserved type");
            return Ok(());
        };
        if !request.response_nonce.is_empty() {
            self.responses.answered(&request.response_nonce);
        }
        let first = !self.types.contains_key(type_url);
        let state = self.types.entry(type_url).or_default();
        if first {
            state.held = request
                .initial_resource_versions
                .clone()
                .into_iter()
                .collect();
            state.wildcard =
                type_url::is_wildcard(type_url) && request.resource_names_subscribe.is_empty();
        }
        if !request.response_nonce.is_empty() {
            let Some((nonce, version, before)) = state.pending.take() else {
                return Ok(());
            };
            if nonce != request.response_nonce {
                state.pending = Some((nonce, version, before)); // a stale answer
                return Ok(());
            }
            match &request.error_detail {
                Some(error) => {
                    state.held = before;
                    state.synced = None;
                    state.rejected = Some(version);
                    self.proxies.metrics.rejected(type_url);
                    self.convergence.failed();
                    let message = error.message.clone();
                    tracing::warn!(stream = self.id, r#type = type_url::short_name(type_url), %message, "proxy rejected config (delta NACK)");
                    self.proxies.update(self.id, |s| {
                        s.types.entry(type_url).or_default().last_nack = Some(message)
                    });
                }
                None => {
                    self.convergence.acked(type_url, &self.proxies.metrics);
                    // The answered response's version: a newer one may be
                    // waiting to be sent.
                    self.proxies.update(self.id, |s| {
                        let entry = s.types.entry(type_url).or_default();
                        entry.acked_version = version;
                        entry.last_nack = None;
                    });
                }
            }
        }
        let state = self.types.entry(type_url).or_default();
        if !request.resource_names_subscribe.is_empty()
            || !request.resource_names_unsubscribe.is_empty()
        {
            state.synced = None;
        }
        for name in request.resource_names_subscribe {
            if name == WILDCARD {
                state.wildcard = true;
            } else {
                state.names.insert(name);
            }
        }
        for name in request.resource_names_unsubscribe {
            if name == WILDCARD {
                state.wildcard = false;
            } else {
                state.names.remove(&name);
                state.held.remove(&name);
            }
        }
        if state.pending.is_none() {
            self.push(type_url).await?;
        }
        Ok(())
    }

    fn identify(&mut self, request: &DeltaDiscoveryRequest) -> Result<(), Status> {
        let info = self
            .proxies
            .register(self.id, request.node.as_ref(), self.caller.as_ref())?;
        self.node = Some(info);
        self.regenerate();
        Ok(())
    }

    fn regenerate(&mut self) {
        let node = self.node.as_ref().expect("regenerate runs after identify");
        if let Some(resources) = generate_latest(self.generator.as_ref(), node, self.id) {
            self.current = Some(resources);
        }
    }

    /// Sends what differs between the proxy's resources and what it holds.
    async fn push(&mut self, type_url: &'static str) -> Result<(), Status> {
        let Some(typed) = self.current.as_ref().and_then(|c| c.get(type_url)) else {
            return Ok(());
        };
        let state = self.types.entry(type_url).or_default();
        // One response in flight per type; a rejected version waits for the next change.
        if state.rejected.as_ref() == Some(&typed.version) {
            return Ok(());
        }
        if state.pending.is_some() {
            self.convergence.deferred(type_url); // sent once the proxy answers
            return Ok(());
        }
        if state.synced.as_ref() == Some(&typed.version) {
            return Ok(()); // the common case of a push that changed other types
        }
        // Room first, so that waiting streams hold no copy of their response.
        let slot = self.responses.reserve().await.map_err(|_| gone())?;
        self.convergence.dequeued(&self.proxies.metrics);
        let building = std::time::Instant::now();
        let wanted = wanted(typed, state);
        let (changed, removed) = diff(&wanted, &state.held);
        state.synced = Some(typed.version.clone());
        if changed.is_empty() && removed.is_empty() {
            return Ok(());
        }
        self.nonce += 1;
        let nonce = self.nonce.to_string();
        let before = std::mem::replace(
            &mut state.held,
            wanted
                .iter()
                .map(|(n, (v, _))| (n.clone(), v.clone()))
                .collect(),
        );
        state.pending = Some((nonce.clone(), typed.version.clone(), before));
        let response = DeltaDiscoveryResponse {
            system_version_info: typed.version.clone(),
            resources: changed,
            type_url: type_url.to_string(),
            removed_resources: removed,
            nonce: nonce.clone(),
            ..Default::default()
        };
        let version = typed.version.clone();
        self.proxies.update(self.id, |s| {
            s.types.entry(type_url).or_default().sent_version = version
        });
        self.proxies.metrics.pushed(type_url, building);
        self.convergence.sent(type_url);
        self.responses.send(slot, Ok(response), nonce);
        Ok(())
    }
}

/// The resources the subscription covers, with per-resource versions.
fn wanted<'a>(
    typed: &'a TypedResources,
    state: &TypeState,
) -> BTreeMap<String, (String, &'a crate::Any)> {
    typed
        .by_name
        .iter_versioned()
        .filter(|(name, _, _)| state.wildcard || state.names.contains(*name))
        .map(|(name, version, any)| (name.clone(), (version.to_string(), any)))
        .collect()
}

fn diff(
    wanted: &BTreeMap<String, (String, &crate::Any)>,
    held: &HashMap<String, String>,
) -> (Vec<Resource>, Vec<String>) {
    let changed = wanted
        .iter()
        .filter(|(name, (version, _))| held.get(*name) != Some(version))
        .map(|(name, (version, any))| Resource {
            name: name.clone(),
            version: version.clone(),
            resource: Some((*any).clone()),
            ..Default::default()
        })
        .collect();
    let mut removed: Vec<String> = held
        .keys()
        .filter(|name| !wanted.contains_key(*name))
        .cloned()
        .collect();
    removed.sort();
    (changed, removed)
}
