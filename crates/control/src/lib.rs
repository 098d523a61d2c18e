//! The control plane (Istio's istiod): watches config, translates it for
//! each connected proxy, serves ADS, and runs the mesh CA.
#![deny(unsafe_code)]
#![deny(rust_2018_idioms)]

mod generator;
mod http_get;
mod monitoring;
mod options;
mod status;
mod sync;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::watch;
use tonic::transport::{Identity, Server, ServerTlsConfig};
use trellis_ca::{CertificateService, MeshCa, StaticTokens};
use trellis_xds::server::AdsServer;

pub use generator::SnapshotGenerator;
pub use options::ControlPlaneOptions;
pub use status::{ProxyStatusArgs, run_proxy_status};

/// How long config changes settle before a push (an editor's save is
/// often several file events).
const DEBOUNCE: Duration = Duration::from_millis(50);

/// Runs the control plane until the process is told to stop.
pub async fn run(options: ControlPlaneOptions) -> anyhow::Result<()> {
    let ca = Arc::new(
        MeshCa::load_or_create(&options.ca_dir(), &options.trust_domain)
            .context("loading the mesh CA")?,
    );
    if let Some(path) = &options.root_cert_out {
        write_atomically(path, ca.root_cert_pem())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    let tokens = match &options.workload_tokens {
        Some(path) => StaticTokens::load(path, &options.trust_domain)
            .with_context(|| format!("loading {}", path.display()))?,
        None => StaticTokens::default(),
    };
    let (_watcher, snapshots) = trellis_config::watch(options.config_dir.clone(), DEBOUNCE)
        .with_context(|| format!("watching {}", options.config_dir.display()))?;
    let generator = Arc::new(SnapshotGenerator::new(options.mesh_options()));
    let generations = follow_snapshots(snapshots, generator.clone());
    let ads = AdsServer::new(generator.clone(), generations);
    let proxies = ads.proxies();
    let ads = ads.into_service();
    let certificates = CertificateService::new(ca.clone(), Arc::new(tokens)).into_server();

    let ip = options.listen_address;
    let (chain, key) = ca
        .issue_server_cert(&[trellis_ca::CONTROL_PLANE_SERVER_NAME.to_string()], &[ip])
        .context("issuing the control plane's serving certificate")?;
    let tls = ServerTlsConfig::new().identity(Identity::from_pem(chain, key));
    let secure = Server::builder()
        .tls_config(tls)?
        .add_service(ads.clone())
        .add_service(certificates)
        .serve(SocketAddr::new(ip, options.secure_port));
    let plaintext = Server::builder()
        .add_service(ads)
        .serve(SocketAddr::new(ip, options.xds_port));
    monitoring::serve(
        SocketAddr::new(ip, options.monitoring_port),
        proxies,
        generator,
    )
    .await?;
    tracing::info!(%ip, xds = options.xds_port, secure = options.secure_port, "control plane serving");
    tokio::select! {
        result = secure => result.context("secure xDS/CA server")?,
        result = plaintext => result.context("plaintext xDS server")?,
    }
    Ok(())
}

/// Installs each new snapshot in the generator and ticks the generation
/// counter that wakes every ADS stream.
fn follow_snapshots(
    mut snapshots: watch::Receiver<Option<Arc<trellis_config::Snapshot>>>,
    generator: Arc<SnapshotGenerator>,
) -> watch::Receiver<u64> {
    let (tick, generations) = watch::channel(0u64);
    tokio::spawn(async move {
        loop {
            let snapshot = snapshots.borrow_and_update().clone();
            if let Some(snapshot) = snapshot {
                tracing::info!(
                    version = snapshot.version,
                    resources = snapshot.resources.len(),
                    "config snapshot"
                );
                generator.install(snapshot);
                tick.send_modify(|g| *g += 1);
            }
            if snapshots.changed().await.is_err() {
                return;
            }
        }
    });
    generations
}

fn write_atomically(path: &std::path::Path, content: &str) -> std::io::Result<()> {
    let temporary = path.with_extension("tmp");
    std::fs::write(&temporary, content)?;
    std::fs::rename(temporary, path)
}
