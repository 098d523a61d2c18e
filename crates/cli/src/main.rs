//! `trellis`: the one binary of the mesh, with a subcommand for every role.
#![deny(unsafe_code)]
#![deny(rust_2018_idioms)]

mod dashboard;
mod logging;

use clap::{Parser, Subcommand};

/// The proxy allocates per request (headers, bodies, futures); mimalloc's
/// thread-local free lists make that markedly cheaper than glibc malloc.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Trellis: a service mesh that speaks Istio's API.
#[derive(Parser)]
#[command(name = "trellis", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a whole mesh on this machine: control plane, every workload of
    /// the given manifests with its sidecar (Bookinfo by default).
    Up(trellis_local::UpArgs),
    /// Run the control plane on a config directory.
    ControlPlane(trellis_control::ControlPlaneOptions),
    /// Run a sidecar proxy for one workload.
    Proxy(trellis_proxy::ProxyOptions),
    /// Run a demo workload (what `up` runs in place of container images).
    DemoApp(trellis_local::DemoAppArgs),
    /// Check manifests as Istio's admission webhook would (istioctl validate).
    Validate(trellis_analyze::ValidateArgs),
    /// Find cross-resource mistakes in manifests (istioctl analyze).
    Analyze(trellis_analyze::AnalyzeArgs),
    /// Set up or remove a workload's traffic capture (Istio's istio-iptables).
    Iptables(trellis_capture::IptablesArgs),
    /// Show which proxies are connected to a control plane and whether each
    /// holds the latest config (istioctl proxy-status).
    ProxyStatus(trellis_control::ProxyStatusArgs),
    /// Show what one proxy runs: clusters, listeners, routes, endpoints,
    /// secrets, bootstrap, log levels (istioctl proxy-config).
    ProxyConfig(trellis_control::ProxyConfigArgs),
    /// Print (or open) the mesh dashboard of a running `trellis up`.
    Dashboard(dashboard::DashboardArgs),
    /// Add the sidecar to the pods of Kubernetes manifests, offline
    /// (istioctl kube-inject).
    KubeInject(trellis_inject::KubeInjectArgs),
    /// Serve the sidecar injection webhook (Kubernetes admission, HTTPS).
    InjectWebhook(trellis_inject::InjectWebhookArgs),
    /// Print the version.
    Version,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    logging::init();
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Command::Proxy(trellis_proxy::ProxyOptions {
        concurrency: Some(threads),
        ..
    }) = &cli.command
    {
        runtime.worker_threads(usize::from(*threads));
    }
    let runtime = runtime.enable_all().build()?;
    runtime.block_on(async move {
        match cli.command {
            Command::Up(args) => trellis_local::run_up(args).await,
            Command::ControlPlane(options) => trellis_control::run(options).await,
            Command::Proxy(options) => run_proxy(options).await,
            Command::DemoApp(args) => trellis_local::run_demo_app(args).await,
            Command::Validate(args) => std::process::exit(trellis_analyze::run_validate(&args)?),
            Command::Analyze(args) => std::process::exit(trellis_analyze::run_analyze(&args)?),
            Command::Iptables(args) => Ok(trellis_capture::run(&args)?),
            Command::ProxyStatus(args) => trellis_control::run_proxy_status(args).await,
            Command::ProxyConfig(args) => trellis_control::run_proxy_config(args).await,
            Command::Dashboard(args) => dashboard::run(&args),
            Command::KubeInject(args) => Ok(trellis_inject::run_kube_inject(&args)?),
            Command::InjectWebhook(args) => Ok(trellis_inject::run_webhook(&args).await?),
            Command::Version => {
                println!("trellis {}", env!("CARGO_PKG_VERSION"));
                Ok(())
            }
        }
    })
}

/// How long a stopping proxy lets open connections finish (Istio's
/// default termination drain duration).
const PROXY_DRAIN: std::time::Duration = std::time::Duration::from_secs(5);

async fn run_proxy(options: trellis_proxy::ProxyOptions) -> anyhow::Result<()> {
    let state = trellis_proxy::start(&options).await?;
    tokio::select! {
        () = shutdown_signal() => {}
        () = state.quit.notified() => tracing::info!("asked to quit (/quitquitquit)"),
    }
    if !state.drain.drain(PROXY_DRAIN).await {
        tracing::warn!("connections still open after the drain period; closing them");
    }
    state.access_logs.finish();
    Ok(())
}

async fn shutdown_signal() {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing a SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
}
