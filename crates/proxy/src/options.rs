//! How `trellis proxy` is started.

use std::net::IpAddr;
use std::path::PathBuf;

/// Runs the data-plane proxy for one workload: a sidecar, or a gateway.
#[derive(Clone, Debug, clap::Args)]
pub struct ProxyOptions {
    /// The proxy's role, as Istio's `proxy sidecar` / `proxy router`: a
    /// sidecar beside an app, or a gateway (router) serving Gateway servers.
    #[arg(long = "type", value_enum, default_value_t = ProxyType::Sidecar, ignore_case = true)]
    pub proxy_type: ProxyType,
    /// Control plane's TLS address for xDS and the CA (Istio's port 15012).
    #[arg(long, value_name = "HOST:PORT")]
    pub discovery_address: String,
    /// Mesh root certificate (PEM) used to verify the control plane and peers.
    #[arg(long, value_name = "FILE")]
    pub root_cert: PathBuf,
    /// File holding the bearer token that proves this workload's identity to the CA.
    #[arg(long, value_name = "FILE")]
    pub token_file: PathBuf,
    /// The workload's own address; every listener of the proxy binds here.
    #[arg(long)]
    pub ip: IpAddr,
    #[arg(long, default_value = "default")]
    pub namespace: String,
    #[arg(long, default_value = "default")]
    pub service_account: String,
    /// Pod (replica) name, part of the xDS node id.
    #[arg(long)]
    pub pod_name: String,
    /// Workload (Deployment) name, used in metrics.
    #[arg(long)]
    pub workload_name: String,
    /// Workload label, repeatable: `--label app=reviews --label version=v1`.
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = parse_pair::<String, String>)]
    pub labels: Vec<(String, String)>,
    /// Service port owned by the proxy and the app's real port behind it,
    /// repeatable: `--app-port 9080=34567` (local mode, no traffic capture).
    #[arg(long = "app-port", value_name = "PORT=APP_PORT", value_parser = parse_pair::<u16, u16>)]
    pub app_ports: Vec<(u16, u16)>,
    /// The outbound HTTP proxy port the app sends its calls to.
    #[arg(long, default_value_t = 15001)]
    pub outbound_port: u16,
    /// Admin port (config dump, readiness, stats); on 127.0.0.1 under
    /// REDIRECT interception, else on `--ip`.
    #[arg(long, default_value_t = 15000)]
    pub admin_port: u16,
    /// Prometheus port.
    #[arg(long, default_value_t = 15090)]
    pub stats_port: u16,
    /// Health port (`/healthz/ready`).
    #[arg(long, default_value_t = 15021)]
    pub health_port: u16,
    /// Status port (Istio's 15020): `/stats/prometheus` merges the proxy's
    /// metrics with the app's, and `/healthz/ready`.
    #[arg(long, default_value_t = 15020)]
    pub status_port: u16,
    /// The app's own Prometheus annotations as JSON, e.g.
    /// `{"scrape":"true","port":"9102","path":"/metrics"}`: the status port
    /// scrapes the app there and merges its metrics (the injector sets this).
    #[arg(long, env = "ISTIO_PROMETHEUS_ANNOTATIONS", value_name = "JSON")]
    pub app_prometheus: Option<String>,
    #[arg(long, default_value = "cluster.local")]
    pub trust_domain: String,
    /// Another trust domain whose peers are this mesh's too (Istio's mesh
    /// config `trustDomainAliases`, for migrations); repeatable. Peers of
    /// any other trust domain are refused.
    #[arg(long = "trust-domain-alias", value_name = "DOMAIN")]
    pub trust_domain_aliases: Vec<String>,
    /// How the workload's traffic reaches the proxy: REDIRECT (iptables
    /// capture to 15001/15006, as in a pod) or NONE (the app calls the
    /// proxy explicitly; local mode).
    #[arg(long, value_enum, default_value_t = InterceptionMode::None, ignore_case = true)]
    pub interception_mode: InterceptionMode,
    /// Where a gateway reads the certificates its Gateway servers name
    /// (`credentialName`): `DIR/NAME/tls.crt` and `DIR/NAME/tls.key`.
    #[arg(long, value_name = "DIR")]
    pub credentials_dir: Option<PathBuf>,
    /// Where the proxy runs, `region/zone/subzone`, for locality load
    /// balancing (Istio's node locality); default: the control plane's
    /// registry entry for `--ip`, if it has one.
    #[arg(long, value_name = "REGION/ZONE/SUBZONE")]
    pub locality: Option<String>,
    /// Worker threads (Istio's proxy `concurrency`); default: one per CPU.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub concurrency: Option<u16>,
}

/// Istio's `INTERCEPTION_MODE` values the proxy implements.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
#[value(rename_all = "UPPER")]
pub enum InterceptionMode {
    Redirect,
    None,
}

/// Istio's proxy types; a router carries `router~` in its node id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ProxyType {
    Sidecar,
    Router,
}

fn parse_pair<K: std::str::FromStr, V: std::str::FromStr>(raw: &str) -> Result<(K, V), String> {
    let (key, value) = raw
        .split_once('=')
        .ok_or_else(|| format!("expected KEY=VALUE, got {raw:?}"))?;
    let key = key.parse().map_err(|_| format!("invalid key in {raw:?}"))?;
    let value = value
        .parse()
        .map_err(|_| format!("invalid value in {raw:?}"))?;
    Ok((key, value))
}
