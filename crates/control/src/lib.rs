//! The control plane (Istio's istiod): watches config, translates it for
//! each connected proxy, serves ADS, and runs the mesh CA.
#![deny(unsafe_code)]
#![deny(rust_2018_idioms)]

mod config_source;
mod dashboard;
mod generator;
mod http_get;
mod jwks;
mod mesh_config;
mod monitoring;
mod options;
mod proxy_auth;
mod proxy_config;
mod status;
mod sync;
mod text_table;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::watch;
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};
use trellis_ca::{CertificateService, MeshCa, StaticTokens};
use trellis_xds::server::AdsServer;

use jwks::{FetchJwks, HttpFetcher, JwksCache, JwksMetrics, RefreshPolicy};

pub use config_source::KubernetesOptions;
pub use dashboard::DashboardOptions;
pub use generator::SnapshotGenerator;
pub use options::{ControlPlaneOptions, OutboundTrafficMode};
pub use proxy_config::{ProxyConfigArgs, run_proxy_config};
pub use status::{ProxyStatusArgs, run_proxy_status};

/// Runs the control plane until the process is told to stop.
pub async fn run(options: ControlPlaneOptions) -> anyhow::Result<()> {
    // The config source starts first: in directory mode it may hold the
    // mesh config (the `istio` ConfigMap).
    let validation = trellis_config::ValidationMetrics::default();
    let (_source, snapshots) = config_source::start(
        options.config_dir.as_ref(),
        &options.kubernetes,
        options.debounce(),
        &validation,
    )
    .await?;
    let mesh_config = mesh_config::load(&options, &snapshots).await?;
    let settings = mesh_config::resolve(&options, mesh_config.as_ref())?;
    let ca = match &options.cacerts {
        Some(dir) => MeshCa::from_plugin_dir(dir, &settings.trust_domain)
            .with_context(|| format!("loading the plug-in CA from {}", dir.display()))?,
        None => MeshCa::load_or_create(&options.ca_dir(), &settings.trust_domain)
            .context("loading the mesh CA")?,
    };
    let ca = Arc::new(ca);
    if let Some(path) = &options.root_cert_out {
        write_atomically(path, ca.root_cert_pem())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    let tokens = match &options.workload_tokens {
        Some(path) => StaticTokens::load(path, &settings.trust_domain)
            .with_context(|| format!("loading {}", path.display()))?,
        None => StaticTokens::default(),
    };
    let generator = Arc::new(SnapshotGenerator::new(settings.mesh));
    let jwks_metrics = JwksMetrics::default();
    let jwks = JwksCache::new(
        HttpFetcher::with_system_roots(),
        RefreshPolicy::new(options.jwks_refresh_interval),
        jwks_metrics.clone(),
    );
    let config = snapshots.clone();
    let generations = follow_config(snapshots, jwks, generator.clone(), options.debounce_after);
    let ads =
        AdsServer::new(generator.clone(), generations).with_push_throttle(options.push_throttle);
    let proxies = ads.proxies();
    let dashboard = dashboard::Dashboard::start(&options.dashboard, proxies.clone(), config);
    let ads = ads.into_service();
    let tokens: Arc<dyn trellis_ca::Authenticator> = Arc::new(tokens);
    let certificates = CertificateService::new(ca.clone(), tokens.clone());
    let ca_metrics = certificates.metrics().clone();
    let certificates = certificates.into_server();
    let callers = proxy_auth::MeshCallers::new(
        tokens,
        trellis_ca::TrustDomains::only(&settings.trust_domain),
    );
    let secure_ads = ads.authenticated(Arc::new(callers));

    let ip = options.listen_address;
    let (chain, key) = ca
        .issue_server_cert(&[trellis_ca::CONTROL_PLANE_SERVER_NAME.to_string()], &[ip])
        .context("issuing the control plane's serving certificate")?;
    // A proxy's mesh certificate, when it presents one, authenticates it;
    // a proxy that has none yet (its first certificate request) sends its
    // bootstrap token instead.
    let tls = ServerTlsConfig::new()
        .identity(Identity::from_pem(chain, key))
        .client_ca_root(Certificate::from_pem(ca.root_cert_pem()))
        .client_auth_optional(true);
    let secure = Server::builder()
        .tls_config(tls)?
        .add_service(secure_ads)
        .add_service(certificates)
        .serve(SocketAddr::new(ip, options.secure_port));
    let plaintext = async {
        match options.plaintext_xds_port() {
            Some(port) => {
                Server::builder()
                    .add_service(ads)
                    .serve(SocketAddr::new(ip, port))
                    .await
            }
            None => std::future::pending().await,
        }
    };
    let metric_sources = monitoring::MetricSources {
        jwks: &jwks_metrics,
        ca: &ca_metrics,
        validation: &validation,
    };
    monitoring::serve(
        SocketAddr::new(ip, options.monitoring_port),
        proxies,
        generator,
        metric_sources,
        &dashboard,
    )
    .await?;
    tracing::info!(%ip, xds = ?options.plaintext_xds_port(), secure = options.secure_port, "control plane serving");
    tokio::select! {
        result = secure => result.context("secure xDS/CA server")?,
        result = plaintext => result.context("plaintext xDS server")?,
    }
    Ok(())
}

/// Installs each new snapshot, with the JWKS fetched so far filled in, in
/// the generator, and ticks the generation counter that wakes every ADS
/// stream. New keys at some `jwksUri` (a first fetch, a rotation) do the
/// same: translation never waits for a fetch, the push follows it.
fn follow_config<F: FetchJwks>(
    mut snapshots: watch::Receiver<Option<Arc<trellis_config::Snapshot>>>,
    jwks: JwksCache<F>,
    generator: Arc<SnapshotGenerator>,
    debounce: Duration,
) -> watch::Receiver<u64> {
    let (tick, generations) = watch::channel(0u64);
    let mut keys = jwks.subscribe();
    tokio::spawn(async move {
        let mut current: Option<Arc<trellis_config::Snapshot>> = None;
        let mut new_snapshot = true; // the one already in the channel, if any
        loop {
            if new_snapshot && let Some(snapshot) = snapshots.borrow_and_update().clone() {
                tracing::info!(
                    version = snapshot.version,
                    resources = snapshot.resources.len(),
                    "config snapshot"
                );
                jwks.want(&jwks::wanted_sources(&snapshot));
                current = Some(snapshot);
            }
            if let Some(snapshot) = &current {
                let cached = keys.borrow_and_update().clone();
                let resolved = jwks::with_resolved_keys(snapshot, &cached);
                // Translating the shared halves takes a while with a big
                // mesh: off the runtime, so that streams keep being served.
                let installing = generator.clone();
                if tokio::task::spawn_blocking(move || installing.install(resolved))
                    .await
                    .is_err()
                {
                    tracing::error!("translating the new config failed; keeping the last");
                } else {
                    tick.send_modify(|g| *g += 1);
                }
            }
            new_snapshot = tokio::select! {
                changed = snapshots.changed() => match changed {
                    Ok(()) => true,
                    Err(_) => return,
                },
                changed = keys.changed() => match changed {
                    // Several URIs often land together: one push for all.
                    Ok(()) => {
                        tokio::time::sleep(debounce).await;
                        false
                    }
                    Err(_) => return,
                },
            };
        }
    });
    generations
}

fn write_atomically(path: &std::path::Path, content: &str) -> std::io::Result<()> {
    let temporary = path.with_extension("tmp");
    std::fs::write(&temporary, content)?;
    std::fs::rename(temporary, path)
}
