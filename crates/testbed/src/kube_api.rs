//! An in-process fake Kubernetes API server on loopback, for testing
//! Kubernetes clients (kube-rs watchers) without a cluster.
//!
//! It serves what watchers rely on, following the API conventions:
//! discovery, list with a collection `resourceVersion` (paged with `limit`
//! and `continue`), watch from a version (`?watch=1&resourceVersion=N`) as
//! JSON lines of ADDED/MODIFIED/DELETED, BOOKMARKs with
//! `allowWatchBookmarks`, and an `ERROR` event with Status 410 Expired when
//! the version is older than the retained history; get, create, replace
//! and delete; equality-based label selectors. One global version counter
//! orders every change, as etcd's revision does.
//!
//! Tests change objects directly ([`FakeKubeApi::apply_yaml`],
//! [`FakeKubeApi::delete`], [`FakeKubeApi::compact`]) or over HTTP. The
//! helpers also play the EndpointSlice controller: after they change pods
//! or Services, each Service's slice is brought up to date. API groups can
//! be removed and added back, as CRDs are uninstalled and installed.

mod discovery;
mod endpoint_slices;
mod http;
mod selector;
mod store;
mod watch;

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub use store::ApiError;

use discovery::ResourceType;
use selector::LabelSelector;
use store::{ObjectKey, Scope, Store};

/// Fake pods get addresses from 10.244.0.0/16 (kind's pod range): they are
/// only data, nothing connects to them.
const FIRST_POD_IP: u32 = u32::from_be_bytes([10, 244, 0, 10]);

pub struct FakeKubeApi {
    address: SocketAddr,
    shared: http::Shared,
    server: JoinHandle<()>,
    next_pod_ip: AtomicU32,
}

impl Drop for FakeKubeApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl FakeKubeApi {
    /// Serves on a free loopback port, keeping 1000 changes of history and
    /// sending bookmarks every second.
    pub async fn start() -> anyhow::Result<FakeKubeApi> {
        FakeKubeApi::start_with(1000, Duration::from_secs(1)).await
    }

    pub async fn start_with(
        history: usize,
        bookmark_interval: Duration,
    ) -> anyhow::Result<FakeKubeApi> {
        let address = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
        FakeKubeApi::start_at(address, history, bookmark_interval).await
    }

    /// Serves on a given address, so a client can be pointed at it before
    /// the server is up.
    pub async fn start_at(
        address: SocketAddr,
        history: usize,
        bookmark_interval: Duration,
    ) -> anyhow::Result<FakeKubeApi> {
        let listener = TcpListener::bind(address)
            .await
            .with_context(|| format!("binding the fake API server on {address}"))?;
        let address = listener.local_addr()?;
        let shared = http::Shared {
            store: Arc::new(Mutex::new(Store::with_history(history))),
            bookmark_interval,
            lists: Arc::default(),
            hidden_groups: Arc::default(),
        };
        let router = axum::Router::new()
            .fallback(http::handle)
            .with_state(shared.clone());
        let server = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, router).await {
                eprintln!("fake API server stopped: {error}");
            }
        });
        Ok(FakeKubeApi {
            address,
            shared,
            server,
            next_pod_ip: AtomicU32::new(FIRST_POD_IP),
        })
    }

    /// `http://127.0.0.1:PORT`, the server's URL for a client config.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// The current global resource version.
    pub fn resource_version(&self) -> u64 {
        self.store().resource_version()
    }

    /// Drops all history: watches from any earlier version get 410 Gone.
    pub fn compact(&self) {
        self.store().compact();
    }

    /// Ends every open watch and refuses new ones (503) until
    /// [`FakeKubeApi::restore_watches`]: clients fall behind, as in a
    /// network partition; with [`FakeKubeApi::compact`] they must relist.
    pub fn partition_watches(&self) {
        self.store().set_watches_available(false);
    }

    pub fn restore_watches(&self) {
        self.store().set_watches_available(true);
    }

    /// Stops serving a named API group (discovery and paths), as when its
    /// CRDs are uninstalled; its objects are kept.
    pub fn remove_api_group(&self, group: &str) {
        self.hidden_groups().insert(group.to_string());
    }

    /// Serves a group removed with [`FakeKubeApi::remove_api_group`] again.
    pub fn add_api_group(&self, group: &str) {
        self.hidden_groups().remove(group);
    }

    fn hidden_groups(&self) -> std::sync::MutexGuard<'_, BTreeSet<String>> {
        self.shared
            .hidden_groups
            .lock()
            .expect("hidden groups poisoned")
    }

    /// How many list requests were served so far.
    pub fn list_requests(&self) -> u64 {
        self.shared.lists.load(Ordering::Relaxed)
    }

    pub fn create(&self, object: Value) -> Result<Value, ApiError> {
        let key = key_of(&object)?;
        self.store().create(key, object)
    }

    /// Replaces an object, or creates it when absent (`kubectl apply`).
    pub fn apply(&self, object: Value) -> Result<Value, ApiError> {
        let key = key_of(&object)?;
        let mut store = self.store();
        match store.get(&key) {
            Ok(_) => store.replace(key, object),
            Err(_) => store.create(key, object),
        }
    }

    pub fn get(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> Result<Value, ApiError> {
        let key = key_for(api_version, kind, namespace, name)?;
        self.store().get(&key)
    }

    pub fn delete(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> Result<Value, ApiError> {
        let key = key_for(api_version, kind, namespace, name)?;
        let deleted = self.store().delete(&key)?;
        if matches!(kind, "Pod" | "Service") {
            self.sync_endpoint_slices(namespace)?;
        }
        Ok(deleted)
    }

    /// Applies every document of a YAML text in `namespace` (unless a
    /// document names its own) and, for each Deployment, creates the pods
    /// it would run. Returns the objects as stored.
    pub fn apply_yaml(&self, text: &str, namespace: &str) -> anyhow::Result<Vec<Value>> {
        let documents: Vec<Value> =
            serde_saphyr::from_multiple(text).context("reading the manifests")?;
        let mut applied = Vec::new();
        let mut namespaces = BTreeSet::new();
        for mut document in documents.into_iter().filter(|d| !d.is_null()) {
            let namespaced = find_resource(&document).is_ok_and(|resource| resource.namespaced);
            if namespaced && document["metadata"]["namespace"].is_null() {
                document["metadata"]["namespace"] = namespace.into();
            }
            let stored = self.apply(document)?;
            if stored["kind"] == "Deployment" {
                applied.extend(self.create_deployment_pods(&stored)?);
            }
            if let Some(namespace) = stored["metadata"]["namespace"].as_str() {
                namespaces.insert(namespace.to_string());
            }
            applied.push(stored);
        }
        for namespace in namespaces {
            self.sync_endpoint_slices(&namespace)?;
        }
        Ok(applied)
    }

    /// Creates the pods a Deployment runs (`spec.replicas`, default 1):
    /// its template's labels, annotations and spec, running and ready,
    /// each with the next free pod IP.
    pub fn create_deployment_pods(&self, deployment: &Value) -> anyhow::Result<Vec<Value>> {
        let name = deployment["metadata"]["name"]
            .as_str()
            .context("deployment without a name")?;
        let namespace = deployment["metadata"]["namespace"]
            .as_str()
            .unwrap_or("default");
        let replicas = deployment["spec"]["replicas"].as_u64().unwrap_or(1);
        let template = &deployment["spec"]["template"];
        let pods = (0..replicas)
            .map(|index| {
                let ip = Ipv4Addr::from(self.next_pod_ip.fetch_add(1, Ordering::Relaxed));
                let pod = json!({
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {
                        "name": format!("{name}-pod-{index}"),
                        "namespace": namespace,
                        "labels": template["metadata"]["labels"],
                        "annotations": template["metadata"]["annotations"],
                        "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": name}],
                    },
                    "spec": template["spec"],
                    "status": running_status(ip, true),
                });
                Ok(self.create(pod)?)
            })
            .collect::<anyhow::Result<Vec<Value>>>()?;
        self.sync_endpoint_slices(namespace)?;
        Ok(pods)
    }

    /// Flips a pod's Ready condition, as its readiness probe would.
    pub fn set_pod_ready(
        &self,
        namespace: &str,
        name: &str,
        ready: bool,
    ) -> Result<Value, ApiError> {
        let mut pod = self.get("v1", "Pod", namespace, name)?;
        let ip = pod["status"]["podIP"]
            .as_str()
            .and_then(|ip| ip.parse().ok());
        pod["status"] = running_status(ip.unwrap_or(Ipv4Addr::UNSPECIFIED), ready);
        let pod = self.apply(pod)?;
        self.sync_endpoint_slices(namespace)?;
        Ok(pod)
    }

    /// Brings a namespace's controller-managed EndpointSlices in line with
    /// its Services and pods; unchanged slices are left alone.
    pub fn sync_endpoint_slices(&self, namespace: &str) -> Result<(), ApiError> {
        let mut store = self.store();
        let services = list_in(&store, "v1", "Service", namespace)?;
        let pods = list_in(&store, "v1", "Pod", namespace)?;
        let mut desired = endpoint_slices::desired(&services, &pods);
        for existing in list_in(&store, "discovery.k8s.io/v1", "EndpointSlice", namespace)? {
            let key = key_of(&existing)?;
            match desired.remove(&key.name) {
                Some(wanted) if endpoint_slices::same_content(&existing, &wanted) => {}
                Some(wanted) => drop(store.replace(key, wanted)?),
                None if endpoint_slices::is_managed(&existing) => drop(store.delete(&key)?),
                None => {}
            }
        }
        for slice in desired.into_values() {
            store.create(key_of(&slice)?, slice)?;
        }
        Ok(())
    }

    fn store(&self) -> std::sync::MutexGuard<'_, Store> {
        self.shared.store.lock().expect("fake API store poisoned")
    }
}

fn list_in(
    store: &Store,
    api_version: &str,
    kind: &str,
    namespace: &str,
) -> Result<Vec<Value>, ApiError> {
    let scope = Scope {
        resource: find_resource(&json!({"apiVersion": api_version, "kind": kind}))?,
        namespace: Some(namespace.to_string()),
        selector: LabelSelector::default(),
    };
    Ok(store.list(&scope, None, None)?.items)
}

fn running_status(ip: Ipv4Addr, ready: bool) -> Value {
    let ready = if ready { "True" } else { "False" };
    json!({
        "phase": "Running",
        "podIP": ip.to_string(),
        "podIPs": [{"ip": ip.to_string()}],
        "conditions": [{"type": "Ready", "status": ready}],
    })
}

fn find_resource(object: &Value) -> Result<&'static ResourceType, ApiError> {
    let api_version = object["apiVersion"].as_str().unwrap_or_default();
    let kind = object["kind"].as_str().unwrap_or_default();
    discovery::find_by_kind(api_version, kind).ok_or_else(|| {
        ApiError::new(
            404,
            "NotFound",
            format!("no resource type for {kind} ({api_version})"),
        )
    })
}

fn key_of(object: &Value) -> Result<ObjectKey, ApiError> {
    let resource = find_resource(object)?;
    let metadata = &object["metadata"];
    let name = metadata["name"].as_str().filter(|name| !name.is_empty());
    let name = name.ok_or_else(|| ApiError::bad_request("metadata.name is required"))?;
    let namespace = metadata["namespace"].as_str().unwrap_or("default");
    Ok(key_in(resource, namespace, name))
}

fn key_for(
    api_version: &str,
    kind: &str,
    namespace: &str,
    name: &str,
) -> Result<ObjectKey, ApiError> {
    let resource = find_resource(&json!({"apiVersion": api_version, "kind": kind}))?;
    Ok(key_in(resource, namespace, name))
}

fn key_in(resource: &'static ResourceType, namespace: &str, name: &str) -> ObjectKey {
    ObjectKey {
        group: resource.group,
        plural: resource.plural,
        namespace: if resource.namespaced {
            namespace.to_string()
        } else {
            String::new()
        },
        name: name.to_string(),
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.code, self.reason, self.message)
    }
}

impl std::error::Error for ApiError {}
