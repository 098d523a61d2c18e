//! From the watched kinds' stores to published snapshots.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch as channel;
use trellis_api::{AnyResource, ResourceKey};
use trellis_config::Snapshot;

use crate::Shared;
use crate::convert::ObjectId;
use crate::kinds::{KindId, Readiness, Role};
use crate::store::KindStore;

/// Publishes a snapshot a debounce period after each change, when what is
/// in force differs from the last one published.
pub(crate) async fn publish(
    shared: Arc<Shared>,
    debounce: Duration,
    sender: channel::Sender<Option<Arc<Snapshot>>>,
) {
    let mut current: Option<Arc<Snapshot>> = None;
    loop {
        shared.changed.notified().await;
        tokio::time::sleep(debounce).await;
        let Some(resources) = in_force(&shared.stores.lock().expect("kind stores poisoned")) else {
            continue; // not discovered yet, or some kind is still being listed
        };
        if current
            .as_ref()
            .is_some_and(|current| current.resources == resources)
        {
            continue;
        }
        let version = current.as_ref().map_or(1, |current| current.version + 1);
        let snapshot = Arc::new(Snapshot::new(version, resources));
        tracing::debug!(
            version,
            resources = snapshot.resources.len(),
            "kubernetes snapshot"
        );
        current = Some(snapshot.clone());
        if sender.send(Some(snapshot)).is_err() {
            return; // nobody listens any more
        }
    }
}

/// Everything in force, sorted by key, once discovery found the kinds and
/// every one of them is synced. Pods are workloads when ready by their
/// kind's readiness rule.
pub(crate) fn in_force(stores: &BTreeMap<KindId, KindStore>) -> Option<Vec<Arc<AnyResource>>> {
    // The required core kinds are always there once discovery succeeded.
    if stores.is_empty() || !stores.values().all(KindStore::is_synced) {
        return None;
    }
    let mut resources: BTreeMap<ResourceKey, Arc<AnyResource>> = BTreeMap::new();
    for store in stores.values().filter(|store| store.role() == Role::Config) {
        resources.extend(store.resources().map(|r| (r.key(), r.clone())));
    }
    let ready_in_slices: BTreeSet<&ObjectId> = stores
        .values()
        .filter(|store| store.role() == Role::EndpointSlices)
        .flat_map(KindStore::ready_pods)
        .collect();
    for store in stores.values() {
        let Role::Workloads(readiness) = store.role() else {
            continue;
        };
        for (pod, workload) in store.entries() {
            if readiness == Readiness::EndpointSlices && !ready_in_slices.contains(pod) {
                continue;
            }
            let key = workload.key();
            if resources.contains_key(&key) {
                tracing::warn!(%key, "a WorkloadEntry has the name of a pod; the pod is not used");
                continue;
            }
            resources.insert(key, workload.clone());
        }
    }
    Some(resources.into_values().collect())
}
