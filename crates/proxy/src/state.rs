//! The proxy's live configuration: applies xDS updates (compiling them
//! first, so a bad update is NACKed and changes nothing), and keeps raw
//! resources for `/config_dump`.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use envoy_types::pb::envoy::config::cluster::v3::Cluster as XdsCluster;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::listener::v3::Listener as XdsListener;
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use prost::Message;
use tokio::sync::watch;
use trellis_xds::Any;
use trellis_xds::client::ResourceHandler;
use trellis_xds::type_url;

use crate::access_log::AccessLogs;
use crate::cluster::{Cluster, ClusterSpec, endpoints_of};
use crate::drain::Drain;
use crate::identity::Identity;
use crate::listener::ListenerSpec;
use crate::listeners::Listeners;
use crate::metric_labels::ProxyLabels;
use crate::metrics::Metrics;
use crate::peer_metadata::PeerMetadata;
use crate::route::RouteTable;
use trellis_xds::NodeInfo;

pub type ClusterMap = HashMap<String, Arc<Cluster>>;
pub type RouteMap = HashMap<String, Arc<RouteTable>>;

pub struct ProxyState {
    pub identity: Arc<Identity>,
    pub node: NodeInfo,
    pub metrics: Arc<Metrics>,
    pub labels: ProxyLabels,
    /// Sent to mesh peers so that they can name this workload.
    pub peer_metadata: PeerMetadata,
    pub access_logs: AccessLogs,
    pub drain: Drain,
    /// Signalled by the admin `/quitquitquit`: the process drains and exits.
    pub quit: tokio::sync::Notify,
    pub clusters: ArcSwap<ClusterMap>,
    pub routes: ArcSwap<RouteMap>,
    pub listeners: Listeners,
    /// Gateway certificates (`credentialName`) read from files.
    pub credentials: crate::gateway_tls::Credentials,
    /// Accepted resources by type and name, for config dumps.
    accepted: Mutex<BTreeMap<String, BTreeMap<String, Any>>>,
    /// Endpoints by cluster, kept across CDS updates that recreate a cluster.
    assignments: Mutex<HashMap<String, Vec<crate::cluster::Endpoint>>>,
    /// Ready once both clusters and listeners have been applied.
    configured: watch::Sender<(bool, bool)>,
    pub xds_updates: crate::xds_stats::XdsUpdateStats,
    pub started: std::time::Instant,
}

impl ProxyState {
    pub fn new(identity: Arc<Identity>, node: NodeInfo, metrics: Arc<Metrics>) -> Arc<Self> {
        let labels = ProxyLabels::new(&node, identity.id.to_string());
        let peer_metadata = PeerMetadata::new(&node);
        let access_logs = AccessLogs::new(metrics.access_log_dropped.clone());
        Arc::new_cyclic(|state| ProxyState {
            identity,
            labels,
            peer_metadata,
            access_logs,
            drain: Drain::default(),
            quit: tokio::sync::Notify::new(),
            node,
            metrics,
            clusters: ArcSwap::default(),
            routes: ArcSwap::default(),
            listeners: Listeners::new(state.clone()),
            credentials: Default::default(),
            accepted: Mutex::default(),
            assignments: Mutex::default(),
            configured: watch::Sender::new((false, false)),
            xds_updates: Default::default(),
            started: std::time::Instant::now(),
        })
    }

    pub fn is_configured(&self) -> bool {
        *self.configured.borrow() == (true, true)
    }

    pub fn accepted(&self) -> BTreeMap<String, BTreeMap<String, Any>> {
        self.accepted
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn apply_clusters(&self, resources: &[Any]) -> Result<Vec<String>, String> {
        let decoded = decode_all::<XdsCluster>(resources)?;
        let specs = decoded
            .iter()
            .map(|c| ClusterSpec::compile(c).map_err(|e| format!("cluster {}: {e}", c.name)))
            .collect::<Result<Vec<_>, _>>()?;
        let current = self.clusters.load();
        let assignments = self.assignments.lock().unwrap_or_else(|e| e.into_inner());
        let clusters = specs
            .into_iter()
            .map(|spec| {
                let name = spec.name.clone();
                let cluster = match current.get(&name) {
                    Some(existing) if existing.spec == spec => existing.clone(),
                    _ => {
                        let cluster = Cluster::new(spec, self.identity.clone());
                        if let (true, Some(endpoints)) = (cluster.spec.eds, assignments.get(&name))
                        {
                            cluster.set_endpoints(endpoints);
                        }
                        Cluster::start(cluster)
                    }
                };
                (name, cluster)
            })
            .collect();
        self.clusters.store(Arc::new(clusters));
        self.configured.send_modify(|c| c.0 = true);
        Ok(decoded.into_iter().map(|c| c.name).collect())
    }

    fn apply_endpoints(&self, resources: &[Any]) -> Result<Vec<String>, String> {
        let assignments = decode_all::<ClusterLoadAssignment>(resources)?;
        let mut compiled = HashMap::new();
        for assignment in &assignments {
            let endpoints = endpoints_of(assignment)
                .map_err(|e| format!("endpoints of {}: {e}", assignment.cluster_name))?;
            compiled.insert(assignment.cluster_name.clone(), endpoints);
        }
        let clusters = self.clusters.load();
        for (name, endpoints) in &compiled {
            if let Some(cluster) = clusters.get(name) {
                cluster.set_endpoints(endpoints);
            }
        }
        *self.assignments.lock().unwrap_or_else(|e| e.into_inner()) = compiled;
        Ok(assignments.into_iter().map(|a| a.cluster_name).collect())
    }

    fn apply_listeners(&self, resources: &[Any]) -> Result<Vec<String>, String> {
        let specs = decode_all::<XdsListener>(resources)?
            .iter()
            .zip(resources)
            .map(|(l, any)| {
                let spec =
                    ListenerSpec::compile(l).map_err(|e| format!("listener {}: {e}", l.name))?;
                Ok(ListenerSpec {
                    digest: digest(&any.value),
                    ..spec
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        let names = specs.iter().map(|l| l.name.clone()).collect();
        self.listeners.update(specs)?;
        self.configured.send_modify(|c| c.1 = true);
        Ok(names)
    }

    fn apply_routes(&self, resources: &[Any]) -> Result<Vec<String>, String> {
        let decoded = decode_all::<RouteConfiguration>(resources)?;
        let routes = decoded
            .iter()
            .map(|r| {
                Ok((
                    r.name.clone(),
                    Arc::new(RouteTable::compile(r).map_err(|e| format!("route {}: {e}", r.name))?),
                ))
            })
            .collect::<Result<RouteMap, String>>()?;
        self.routes.store(Arc::new(routes));
        Ok(decoded.into_iter().map(|r| r.name).collect())
    }
}

impl ResourceHandler for ProxyState {
    fn apply(&self, type_url: &str, resources: &[Any]) -> Result<(), String> {
        // Each apply_* returns the accepted resources' names in input order.
        let applied = match type_url {
            type_url::CLUSTER => self.apply_clusters(resources),
            type_url::ENDPOINT => self.apply_endpoints(resources),
            type_url::LISTENER => self.apply_listeners(resources),
            type_url::ROUTE => self.apply_routes(resources),
            other => return Err(format!("resource type {other} is not supported")),
        };
        self.xds_updates.record(type_url, applied.is_ok());
        let names = applied?;
        let by_name = names.into_iter().zip(resources.iter().cloned()).collect();
        self.accepted
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(type_url.to_string(), by_name);
        Ok(())
    }

    fn wanted_names(&self, type_url: &str) -> Vec<String> {
        match type_url {
            type_url::ENDPOINT => self
                .clusters
                .load()
                .values()
                .filter(|c| c.spec.eds)
                .map(|c| c.spec.name.clone())
                .collect(),
            type_url::ROUTE => self.listeners.rds_names(),
            _ => Vec::new(),
        }
    }
}

/// Tells one version of a resource from another.
fn digest(bytes: &[u8]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut hasher);
    hasher.finish()
}

fn decode_all<T: Message + Default>(resources: &[Any]) -> Result<Vec<T>, String> {
    resources
        .iter()
        .map(|any| {
            T::decode(any.value.as_slice())
                .map_err(|e| format!("cannot decode {}: {e}", any.type_url))
        })
        .collect()
}
