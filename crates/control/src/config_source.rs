//! Where the control plane's config comes from: a watched directory of
//! YAML, or the Kubernetes API. Both publish the same snapshots.

use std::path::PathBuf;

use anyhow::Context;
use trellis_config::{DirectoryWatcher, SnapshotReceiver, ValidationMetrics};
use trellis_kube_source::KubeSource;

/// `trellis control-plane --kube [--kubeconfig FILE]`.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct KubernetesOptions {
    /// Read config from the Kubernetes API (Namespaces, Services, Pods,
    /// EndpointSlices and Istio resources) instead of a directory. An API
    /// server that does not answer yet is retried in the background.
    #[arg(long, conflicts_with = "config_dir")]
    pub kube: bool,
    /// The kubeconfig to use with `--kube` (its current context). Default:
    /// as kubectl, `KUBECONFIG` or ~/.kube/config, else in-cluster config.
    #[arg(long, value_name = "FILE", requires = "kube")]
    pub kubeconfig: Option<PathBuf>,
}

/// Keeps a source running; dropping it stops watching.
pub enum ConfigSource {
    Directory { _watcher: DirectoryWatcher },
    Kubernetes { _source: KubeSource },
}

/// Starts the chosen source: Kubernetes with `--kube`, else the directory.
/// Either counts the resources it validates in `validation`.
pub async fn start(
    config_dir: Option<&PathBuf>,
    kubernetes: &KubernetesOptions,
    debounce: trellis_config::Debounce,
    validation: &ValidationMetrics,
) -> anyhow::Result<(ConfigSource, SnapshotReceiver)> {
    if kubernetes.kube {
        // A bad kubeconfig is fatal; an API server that does not answer
        // yet is retried in the background while the control plane serves.
        let client = trellis_kube_source::client(kubernetes.kubeconfig.as_deref()).await?;
        let settings = trellis_kube_source::WatchSettings::new(debounce.quiet);
        let (source, snapshots) = trellis_kube_source::watch(client, settings, validation.clone());
        tracing::info!("config source: Kubernetes API");
        return Ok((ConfigSource::Kubernetes { _source: source }, snapshots));
    }
    let dir = config_dir.context("--config-dir or --kube is required")?;
    let (watcher, snapshots) =
        trellis_config::watch_debounced(dir.clone(), debounce, validation.clone())
            .with_context(|| format!("watching {}", dir.display()))?;
    Ok((ConfigSource::Directory { _watcher: watcher }, snapshots))
}
