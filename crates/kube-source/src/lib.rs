#![deny(unsafe_code)]
#![deny(rust_2018_idioms)]
//! Trellis's Kubernetes config source: watches the API server and publishes
//! the same [`Snapshot`]s the directory source does, so translation does
//! not care where config comes from.
//!
//! - Namespaces, Services and ServiceAccounts, and every Istio kind the
//!   server serves (at its preferred version), are read with
//!   `trellis_api`'s parser: validation is the same as for files. An
//!   invalid object is logged with its kind, namespace and name and its
//!   last good version stays in force. Each object version is counted in
//!   the `galley_validation_*` metrics once.
//! - Pods are workloads: each running, ready pod with an IP becomes a
//!   WorkloadEntry named after it (labels, IP, service account, named
//!   container ports), which is how the registry finds endpoints. A real
//!   WorkloadEntry with the same name and namespace wins.
//! - Nothing is published until every kind has been listed once, so a
//!   proxy never gets a config built from half the cluster; then changes
//!   are debounced into one snapshot.
//! - Watches resume from their last resourceVersion; after 410 Gone a
//!   kind is relisted and its contents replaced at once when the list is
//!   complete. Errors are retried with exponential backoff.

mod convert;
mod kinds;
mod snapshot;
mod store;
mod supervisor;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube::Client;
use kube::config::{Config, KubeConfigOptions, Kubeconfig};
use tokio::sync::{Notify, watch as channel};
use tokio::task::JoinHandle;
use trellis_config::SnapshotReceiver;

use kinds::KindId;
use store::KindStore;

#[derive(Debug, thiserror::Error)]
pub enum KubeSourceError {
    #[error("reading the kubeconfig {path}")]
    Kubeconfig {
        path: PathBuf,
        #[source]
        source: kube::config::KubeconfigError,
    },
    #[error("loading the Kubernetes client configuration (KUBECONFIG or in-cluster)")]
    InferConfig(#[source] kube::config::InferConfigError),
    #[error("creating the Kubernetes client")]
    Client(#[source] kube::Error),
    #[error("discovering the API server's resources")]
    Discovery(#[source] kube::Error),
    #[error("the API server does not serve {kind} (group {group:?})")]
    NotServed { group: String, kind: String },
}

/// A client configured from `kubeconfig` when given (its current
/// context), else as `kubectl` does: `KUBECONFIG` or `~/.kube/config`, or
/// the pod's service account when running in a cluster.
pub async fn client(kubeconfig: Option<&Path>) -> Result<Client, KubeSourceError> {
    let config = match kubeconfig {
        Some(path) => {
            let file_error = |source| KubeSourceError::Kubeconfig {
                path: path.to_path_buf(),
                source,
            };
            let file = Kubeconfig::read_from(path).map_err(file_error)?;
            Config::from_custom_kubeconfig(file, &KubeConfigOptions::default())
                .await
                .map_err(file_error)?
        }
        None => Config::infer()
            .await
            .map_err(KubeSourceError::InferConfig)?,
    };
    Client::try_from(config).map_err(KubeSourceError::Client)
}

/// How the source watches.
#[derive(Debug, Clone, Copy)]
pub struct WatchSettings {
    /// Quiet time after a change before a snapshot is published.
    pub debounce: Duration,
    /// How often discovery runs again, to watch CRDs installed later.
    pub rediscovery_interval: Duration,
    /// The first wait before retrying failed discovery; it doubles on
    /// each failure, up to 30 s.
    pub first_retry: Duration,
}

impl WatchSettings {
    /// Rediscovery every 60 s; retries from 500 ms.
    pub fn new(debounce: Duration) -> WatchSettings {
        WatchSettings {
            debounce,
            rediscovery_interval: Duration::from_secs(60),
            first_retry: Duration::from_millis(500),
        }
    }
}

/// Watches the cluster until dropped.
pub struct KubeSource {
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for KubeSource {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// What the watch tasks fill and the publisher reads.
struct Shared {
    /// Empty until discovery first succeeds.
    stores: Mutex<BTreeMap<KindId, KindStore>>,
    changed: Notify,
    /// Where every kind's store counts its objects' validation.
    validation: trellis_config::ValidationMetrics,
}

/// Starts watching in the background (within a Tokio runtime). The
/// receiver holds `None` until discovery succeeded and every kind has been
/// listed, then each new snapshot (version 1, 2, ...). An unreachable API
/// server is not an error: it is logged and retried until it answers.
/// Config objects are counted in `validation` as they change.
pub fn watch(
    client: Client,
    settings: WatchSettings,
    validation: trellis_config::ValidationMetrics,
) -> (KubeSource, SnapshotReceiver) {
    let shared = Arc::new(Shared {
        stores: Mutex::default(),
        changed: Notify::new(),
        validation,
    });
    let (sender, receiver) = channel::channel(None);
    let tasks = vec![
        tokio::spawn(supervisor::run(client, shared.clone(), settings)),
        tokio::spawn(snapshot::publish(shared, settings.debounce, sender)),
    ];
    (KubeSource { tasks }, receiver)
}
