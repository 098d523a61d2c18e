//! How `trellis control-plane` is started.

use std::net::IpAddr;
use std::path::PathBuf;

/// Runs the control plane: config store, translator, xDS server and CA.
#[derive(Clone, Debug, clap::Args)]
pub struct ControlPlaneOptions {
    /// Directory of Istio and Kubernetes YAML; watched, so edits apply live.
    #[arg(long, value_name = "DIR")]
    pub config_dir: PathBuf,
    /// Address every port of the control plane listens on.
    #[arg(long, default_value = "127.0.0.1")]
    pub listen_address: IpAddr,
    /// Plaintext xDS port (Istio's 15010; local use only).
    #[arg(long, default_value_t = 15010)]
    pub xds_port: u16,
    /// xDS and CA over TLS (Istio's 15012).
    #[arg(long, default_value_t = 15012)]
    pub secure_port: u16,
    /// Monitoring and debug port (Istio's 15014).
    #[arg(long, default_value_t = 15014)]
    pub monitoring_port: u16,
    /// Where the mesh root key and certificate are kept (created at first
    /// start). Default: $XDG_DATA_HOME/trellis/ca or ~/.local/share/trellis/ca.
    #[arg(long, value_name = "DIR")]
    pub ca_dir: Option<PathBuf>,
    /// JSON file of workload tokens the CA accepts, each bound to one identity.
    #[arg(long, value_name = "FILE")]
    pub workload_tokens: Option<PathBuf>,
    /// Also write the mesh root certificate (PEM) here.
    #[arg(long, value_name = "FILE")]
    pub root_cert_out: Option<PathBuf>,
    #[arg(long, default_value = "cluster.local")]
    pub trust_domain: String,
    /// Where every sidecar writes its access log (Istio's mesh config
    /// `accessLogFile`, e.g. /dev/stdout). Off by default, as in Istio.
    #[arg(long, value_name = "PATH")]
    pub access_log_file: Option<String>,
}

impl ControlPlaneOptions {
    pub fn mesh_options(&self) -> trellis_translate::MeshOptions {
        trellis_translate::MeshOptions {
            access_log_file: self.access_log_file.clone().filter(|path| !path.is_empty()),
        }
    }

    pub fn ca_dir(&self) -> PathBuf {
        if let Some(dir) = &self.ca_dir {
            return dir.clone();
        }
        let data = std::env::var_os("XDG_DATA_HOME")
            .map(PathBuf::from)
            .or_else(|| {
                std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".local/share"))
            })
            .unwrap_or_else(|| PathBuf::from("."));
        data.join("trellis").join("ca")
    }
}
