//! How `trellis control-plane` is started.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Runs the control plane: config store, translator, xDS server and CA.
#[derive(Clone, Debug, clap::Args)]
pub struct ControlPlaneOptions {
    /// Directory of Istio and Kubernetes YAML; watched, so edits apply live.
    #[arg(long, value_name = "DIR", required_unless_present = "kube")]
    pub config_dir: Option<PathBuf>,
    #[command(flatten)]
    pub kubernetes: crate::KubernetesOptions,
    /// Address every port of the control plane listens on.
    #[arg(long, default_value = "127.0.0.1")]
    pub listen_address: IpAddr,
    /// Plaintext xDS port (Istio's 15010). It authenticates no one, so it
    /// is for local use: served by default in directory mode, and with
    /// `--kube` only when this flag is given.
    #[arg(long, value_name = "PORT")]
    pub xds_port: Option<u16>,
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
    /// Plug-in CA in Istio's `cacerts` layout (ca-cert.pem, ca-key.pem,
    /// cert-chain.pem, root-cert.pem): workloads are signed by that
    /// intermediate and trust root-cert.pem. Replaces the self-signed root.
    #[arg(long, value_name = "DIR", conflicts_with = "ca_dir")]
    pub cacerts: Option<PathBuf>,
    /// JSON file of workload tokens the CA accepts, each bound to one identity.
    #[arg(long, value_name = "FILE")]
    pub workload_tokens: Option<PathBuf>,
    /// Also write the mesh root certificate (PEM) here.
    #[arg(long, value_name = "FILE")]
    pub root_cert_out: Option<PathBuf>,
    /// The mesh's SPIFFE trust domain. Default: the mesh config's
    /// `trustDomain`, else cluster.local.
    #[arg(long, value_name = "DOMAIN")]
    pub trust_domain: Option<String>,
    /// Istio's mesh config file (as istiod's `--meshConfig`). Without it, in
    /// directory mode, the `mesh` key of the `istio` ConfigMap in
    /// istio-system is read, if the config dir has one. Flags given
    /// explicitly win over it. Read once, at startup.
    #[arg(long, value_name = "FILE")]
    pub mesh_config: Option<PathBuf>,
    /// Where every sidecar writes its access log (Istio's mesh config
    /// `accessLogFile`, e.g. /dev/stdout; "" turns logs off). Default: the
    /// mesh config's, else off, as in Istio.
    #[arg(long, value_name = "PATH")]
    pub access_log_file: Option<String>,
    /// Envoy TEXT format of those logs (Istio's mesh config
    /// `accessLogFormat`), e.g. adding
    /// `%DYNAMIC_METADATA(istio_authn:request.auth.principal)%`. Default:
    /// Istio's format.
    #[arg(long, value_name = "FORMAT")]
    pub access_log_format: Option<String>,
    /// TEXT or JSON access log lines (Istio's mesh config
    /// `accessLogEncoding`); with JSON, a custom format is a JSON object of
    /// fields. Default: the mesh config's, else TEXT.
    #[arg(long, value_name = "ENCODING", value_parser = crate::mesh_config::parse_access_log_encoding)]
    pub access_log_encoding: Option<trellis_translate::AccessLogEncoding>,
    /// What capture-mode sidecars do with traffic to destinations outside
    /// the registry (Istio's mesh config `outboundTrafficPolicy.mode`).
    /// Default: the mesh config's, else ALLOW_ANY.
    #[arg(long, value_enum, ignore_case = true)]
    pub outbound_traffic_policy: Option<OutboundTrafficMode>,
    /// How often the keys at each RequestAuthentication `jwksUri` are
    /// fetched again (Istio's `PILOT_JWT_PUB_KEY_REFRESH_INTERVAL`); a
    /// failed fetch is retried sooner, backing off from 1s.
    #[arg(
        long,
        env = "PILOT_JWT_PUB_KEY_REFRESH_INTERVAL",
        value_name = "DURATION",
        default_value = "20m",
        value_parser = positive_duration
    )]
    pub jwks_refresh_interval: Duration,
    /// How long config must stay unchanged before it is pushed (Istio's
    /// `PILOT_DEBOUNCE_AFTER`): an editor's save, or a rollout, is many
    /// changes.
    #[arg(
        long,
        env = "PILOT_DEBOUNCE_AFTER",
        value_name = "DURATION",
        default_value = "100ms",
        value_parser = positive_duration
    )]
    pub debounce_after: Duration,
    /// However busy the config, a push happens at most this long after
    /// the first change (Istio's `PILOT_DEBOUNCE_MAX`).
    #[arg(
        long,
        env = "PILOT_DEBOUNCE_MAX",
        value_name = "DURATION",
        default_value = "10s",
        value_parser = positive_duration
    )]
    pub debounce_max: Duration,
    /// At most this many responses are built and in flight at once across
    /// all proxies (Istio's `PILOT_PUSH_THROTTLE`): a change that reaches
    /// every proxy is pushed in waves, so memory stays flat with the mesh's
    /// size.
    #[arg(
        long,
        env = "PILOT_PUSH_THROTTLE",
        value_name = "COUNT",
        default_value_t = trellis_xds::DEFAULT_PUSH_THROTTLE,
        value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..)
    )]
    pub push_throttle: usize,
    #[command(flatten)]
    pub dashboard: crate::DashboardOptions,
}

pub(crate) fn positive_duration(text: &str) -> Result<Duration, String> {
    match trellis_api::parse_duration(text) {
        Ok(duration) if !duration.is_zero() => Ok(duration),
        Ok(_) => Err("must be more than 0".into()),
        Err(error) => Err(error.to_string()),
    }
}

/// Istio's `outboundTrafficPolicy.mode` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
#[value(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OutboundTrafficMode {
    AllowAny,
    RegistryOnly,
}

impl ControlPlaneOptions {
    /// The plaintext xDS port, if it is served at all.
    pub fn plaintext_xds_port(&self) -> Option<u16> {
        match (self.xds_port, self.kubernetes.kube) {
            (Some(port), _) => Some(port),
            (None, false) => Some(15010),
            (None, true) => None,
        }
    }

    pub fn debounce(&self) -> trellis_config::Debounce {
        trellis_config::Debounce {
            quiet: self.debounce_after,
            max: self.debounce_max.max(self.debounce_after),
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
