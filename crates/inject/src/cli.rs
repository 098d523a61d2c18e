//! `trellis kube-inject` and `trellis inject-webhook`.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::Args;

use crate::config::{DEFAULT_REVISION, InjectConfig, MeshConfig, Revision};
use crate::error::InjectError;
use crate::manifest::inject_manifest;
use crate::server::{serve, tls_config};
use crate::webhook::WebhookOptions;
use crate::webhook_config::webhook_configuration;

/// What both commands inject: flags win over the mesh config, which wins
/// over the revision's defaults.
#[derive(Debug, Args)]
pub struct InjectorFlags {
    /// The control-plane revision (`istio.io/rev`) doing the injection.
    #[arg(long, default_value = DEFAULT_REVISION)]
    pub revision: String,
    /// Image of the injected containers (both run the `trellis` binary).
    #[arg(long, value_name = "IMAGE")]
    pub image_proxy: Option<String>,
    /// Where proxies reach the control plane [default: istiod[-REV].istio-system.svc:15012].
    #[arg(long, value_name = "HOST:PORT")]
    pub discovery_address: Option<String>,
    /// Istio MeshConfig YAML (`trustDomain`, `defaultConfig.discoveryAddress`,
    /// `defaultConfig.holdApplicationUntilProxyStarts`).
    #[arg(long, value_name = "FILE")]
    pub mesh_config: Option<PathBuf>,
}

impl InjectorFlags {
    pub fn config(&self) -> Result<InjectConfig, InjectError> {
        let mut config = InjectConfig::for_revision(Revision::new(&self.revision));
        if let Some(path) = &self.mesh_config {
            config.apply_mesh_config(&MeshConfig::load(path)?);
        }
        if let Some(image) = &self.image_proxy {
            config.proxy_image.clone_from(image);
        }
        if let Some(address) = &self.discovery_address {
            config.discovery_address.clone_from(address);
        }
        Ok(config)
    }
}

/// Add the sidecar to the pods of Kubernetes manifests, offline
/// (istioctl kube-inject).
#[derive(Debug, Args)]
pub struct KubeInjectArgs {
    /// Manifest to inject (`-` for standard input).
    #[arg(
        short = 'f',
        long = "filename",
        value_name = "FILE",
        required_unless_present = "print_webhook_config"
    )]
    pub filename: Option<PathBuf>,
    /// Where to write the injected manifest [default: standard output].
    #[arg(short = 'o', long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Print the revision's MutatingWebhookConfiguration instead.
    #[arg(long, conflicts_with = "filename")]
    pub print_webhook_config: bool,
    #[command(flatten)]
    pub injector: InjectorFlags,
}

/// Serve the sidecar injection webhook (AdmissionReview v1 over HTTPS).
#[derive(Debug, Args)]
pub struct InjectWebhookArgs {
    /// Address to listen on (port 0 picks one; the bound address is printed).
    #[arg(long, default_value = "0.0.0.0:15017")]
    pub listen: SocketAddr,
    /// Serving certificate chain (PEM).
    #[arg(long, value_name = "FILE")]
    pub tls_cert: PathBuf,
    /// Serving private key (PEM).
    #[arg(long, value_name = "FILE")]
    pub tls_key: PathBuf,
    /// Deny pods whose injection fails instead of admitting them without a sidecar.
    #[arg(long)]
    pub reject_on_error: bool,
    #[command(flatten)]
    pub injector: InjectorFlags,
}

pub fn run_kube_inject(args: &KubeInjectArgs) -> Result<(), InjectError> {
    let config = args.injector.config()?;
    let output = match &args.filename {
        Some(path) => inject_manifest(&read_input(path)?, &config)?,
        None => serde_saphyr::to_string(&webhook_configuration(&config.revision))?,
    };
    match &args.output {
        Some(path) => std::fs::write(path, output).map_err(|source| InjectError::Write {
            path: path.clone(),
            source,
        }),
        None => std::io::stdout()
            .write_all(output.as_bytes())
            .map_err(|source| InjectError::Write {
                path: "-".into(),
                source,
            }),
    }
}

fn read_input(path: &Path) -> Result<String, InjectError> {
    let read_error = |source| InjectError::Read {
        path: path.to_owned(),
        source,
    };
    if path == Path::new("-") {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(read_error)?;
        return Ok(text);
    }
    std::fs::read_to_string(path).map_err(read_error)
}

/// Serves until SIGINT or SIGTERM.
pub async fn run_webhook(args: &InjectWebhookArgs) -> Result<(), InjectError> {
    let options = WebhookOptions {
        config: args.injector.config()?,
        reject_on_error: args.reject_on_error,
    };
    let tls = tls_config(&args.tls_cert, &args.tls_key)?;
    let listen_error = |source| InjectError::Listen {
        address: args.listen,
        source,
    };
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(listen_error)?;
    let address = listener.local_addr().map_err(listen_error)?;
    println!("inject webhook listening on {address}");
    serve(listener, tls, options, shutdown_signal()).await;
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut terminate) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = terminate.recv() => {}
            }
        }
        Err(error) => {
            tracing::warn!(%error, "cannot watch SIGTERM; stopping on Ctrl-C only");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
