//! Discovery and the watch tasks: discovery is retried with backoff until
//! the API server answers, then runs again periodically; each run starts
//! watching newly served kinds and stops watching kinds no longer served.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kube::Client;
use kube::api::{Api, DynamicObject};
use kube::discovery::Discovery;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use tokio::task::JoinHandle;

use crate::kinds::{self, KindId, Resolved, ServedKind};
use crate::store::KindStore;
use crate::{KubeSourceError, Shared, WatchSettings};

/// The longest wait between failed discoveries.
const MAX_RETRY: Duration = Duration::from_secs(30);

/// Runs until aborted (when the source is dropped).
pub(crate) async fn run(client: Client, shared: Arc<Shared>, settings: WatchSettings) {
    let mut watchers = Watchers::default();
    let mut not_served: Option<Vec<KindId>> = None;
    let mut retry = settings.first_retry;
    loop {
        match discover(&client).await {
            Ok(resolved) => {
                retry = settings.first_retry;
                if not_served.as_ref() != Some(&resolved.not_served) {
                    for (group, kind) in &resolved.not_served {
                        tracing::info!(group, kind, "not served by the API server; not watched");
                    }
                    not_served = Some(resolved.not_served.clone());
                }
                watchers.update(&client, &shared, resolved);
                tokio::time::sleep(settings.rediscovery_interval).await;
            }
            Err(error) => {
                tracing::warn!(
                    error = %error_chain(&error),
                    retry_in = ?retry,
                    "Kubernetes API discovery failed; proxies keep their last config"
                );
                tokio::time::sleep(retry).await;
                retry = (retry * 2).min(MAX_RETRY);
            }
        }
    }
}

async fn discover(client: &Client) -> Result<Resolved, KubeSourceError> {
    let discovery = Discovery::new(client.clone())
        .filter(&kinds::wanted_groups())
        .run()
        .await
        .map_err(KubeSourceError::Discovery)?;
    kinds::resolve(&discovery).map_err(|missing| KubeSourceError::NotServed {
        group: missing.group.to_string(),
        kind: missing.kind.to_string(),
    })
}

/// One watch task per served kind; dropping them stops the watches.
#[derive(Default)]
struct Watchers {
    tasks: BTreeMap<KindId, (ServedKind, JoinHandle<()>)>,
}

impl Drop for Watchers {
    fn drop(&mut self) {
        for (_, task) in self.tasks.values() {
            task.abort();
        }
    }
}

impl Watchers {
    /// Watches what discovery found: a kind no longer served (or served
    /// at another version or role) is dropped, a new one starts unsynced,
    /// which holds publishing back until it has been listed.
    fn update(&mut self, client: &Client, shared: &Arc<Shared>, resolved: Resolved) {
        let wanted: BTreeMap<KindId, ServedKind> = resolved.served.into_iter().collect();
        let mut stores = shared.stores.lock().expect("kind stores poisoned");
        let mut dropped = false;
        self.tasks.retain(|id, (kind, task)| {
            let keep = wanted.get(id) == Some(kind);
            if !keep {
                tracing::info!(kind = %kind.resource.kind, version = %kind.resource.version, "no longer watched");
                task.abort();
                stores.remove(id);
                dropped = true;
            }
            keep
        });
        for (id, kind) in wanted {
            if self.tasks.contains_key(&id) {
                continue;
            }
            tracing::info!(kind = %kind.resource.kind, version = %kind.resource.version, "watching");
            let store = KindStore::new(kind.clone(), shared.validation.clone());
            stores.insert(id, store);
            let watch = watch_kind(client.clone(), id, kind.clone(), shared.clone());
            self.tasks.insert(id, (kind, tokio::spawn(watch)));
        }
        drop(stores);
        if dropped {
            shared.changed.notify_one();
        }
    }
}

async fn watch_kind(client: Client, id: KindId, kind: ServedKind, shared: Arc<Shared>) {
    let api: Api<DynamicObject> = Api::all_with(client, &kind.resource);
    let mut events = watcher::watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    while let Some(event) = events.next().await {
        match event {
            Ok(event) => {
                let list_done = matches!(event, Event::InitDone);
                let mut stores = shared.stores.lock().expect("kind stores poisoned");
                // A store replaced by a newer discovery is not this task's.
                let Some(store) = stores.get_mut(&id).filter(|store| store.is_for(&kind)) else {
                    return;
                };
                if store.handle(event) || list_done {
                    shared.changed.notify_one();
                }
            }
            Err(error) => {
                tracing::warn!(kind = %kind.resource.kind, %error, "watch failed; retrying with backoff");
            }
        }
    }
}

/// An error and its causes, `outer: inner: ...`.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
