//! `trellis proxy-config`: what one proxy is running, read from its admin
//! port (or a saved config dump) and shown as istioctl's `proxy-config`
//! tables, or as the raw resources in JSON or YAML.

mod clusters;
mod dump;
mod endpoints;
mod listeners;
mod routes;
mod secrets;

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use serde_json::Value;

use crate::http_get::{call, get_json};
use crate::sync::SyncReport;
use crate::text_table::align;

pub use clusters::ClusterFilter;
pub use endpoints::EndpointFilter;
pub use listeners::ListenerFilter;
pub use routes::RouteFilter;

/// Shows one proxy's clusters, listeners, routes, endpoints, secrets,
/// bootstrap or log levels (istioctl proxy-config).
#[derive(Clone, Debug, clap::Args)]
pub struct ProxyConfigArgs {
    #[command(subcommand)]
    pub view: View,
}

#[derive(Clone, Debug, clap::Subcommand)]
pub enum View {
    /// The proxy's clusters: service, port, subset, direction, discovery
    /// type and the DestinationRule behind each.
    #[command(alias = "clusters", alias = "c")]
    Cluster {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        filter: ClusterFilter,
    },
    /// The proxy's listeners, one row per filter chain: its match and
    /// where its traffic goes.
    #[command(alias = "listeners", alias = "l")]
    Listener {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        filter: ListenerFilter,
    },
    /// The proxy's routes, one row per route of each virtual host.
    #[command(alias = "routes", alias = "r")]
    Route {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        filter: RouteFilter,
    },
    /// The endpoints of the proxy's clusters with health and outlier state
    /// (`--file` takes a saved `/clusters?format=json`).
    #[command(alias = "endpoints", alias = "ep")]
    Endpoint {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        filter: EndpointFilter,
    },
    /// The workload certificate and the mesh root the proxy holds: serial
    /// number and validity.
    #[command(alias = "secrets", alias = "s")]
    Secret {
        #[command(flatten)]
        target: Target,
    },
    /// The proxy's bootstrap: its node (id, cluster, metadata).
    #[command(alias = "b")]
    Bootstrap {
        #[command(flatten)]
        target: Target,
    },
    /// Shows or changes the proxy's log levels per component (Envoy's
    /// logger names: admin, config, connection, http, router, upstream,
    /// rbac, jwt, tls, ... and misc for the rest).
    #[command(alias = "o")]
    Log {
        #[command(flatten)]
        target: Target,
        /// A level for every component (trace, debug, info, warning, error,
        /// critical, off), or `NAME:LEVEL` pairs separated by commas.
        #[arg(long, conflicts_with = "reset")]
        level: Option<String>,
        /// Back to the default level (warning) for every component.
        #[arg(short, long)]
        reset: bool,
    },
    /// Clusters, listeners, routes and secrets together.
    #[command(alias = "a")]
    All {
        #[command(flatten)]
        target: Target,
    },
}

/// Which proxy to read, and how to print it.
#[derive(Clone, Debug, clap::Args)]
pub struct Target {
    /// The proxy, `POD.NAMESPACE` as `trellis proxy-status` lists it (the
    /// namespace defaults to `default`); not needed with `--admin` or
    /// `--file`.
    #[arg(required_unless_present_any = ["admin", "file"])]
    pub proxy: Option<String>,
    /// The control plane's monitoring address (Istio's port 15014), which
    /// knows where each proxy is.
    #[arg(long, default_value = "127.0.0.1:15014", value_name = "HOST:PORT")]
    pub control_plane: SocketAddr,
    /// Admin port of the proxies, on their own address.
    #[arg(long, default_value_t = 15000)]
    pub proxy_admin_port: u16,
    /// Read this admin address directly instead of asking the control plane.
    #[arg(long, value_name = "HOST:PORT", conflicts_with = "file")]
    pub admin: Option<SocketAddr>,
    /// Read a saved `/config_dump` (or, for `endpoint`, `/clusters?format=json`).
    #[arg(short, long, value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// short (a table), json or yaml (the resources themselves).
    #[arg(short, long, value_enum, default_value_t = Output::Short)]
    pub output: Output,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    Short,
    Json,
    Yaml,
}

pub async fn run_proxy_config(args: ProxyConfigArgs) -> anyhow::Result<()> {
    print!("{}", render(&args.view).await?);
    Ok(())
}

async fn render(view: &View) -> anyhow::Result<String> {
    let now = std::time::SystemTime::now();
    Ok(match view {
        View::Cluster { target, filter } => {
            let dump = config_dump(target).await?;
            let all = cluster_resources(&dump);
            match target.output {
                Output::Short => align(&clusters::table(&all, filter)),
                format => raw(&clusters::filtered(&all, filter), format)?,
            }
        }
        View::Listener { target, filter } => {
            let dump = config_dump(target).await?;
            let all = listener_resources(&dump);
            match target.output {
                Output::Short => align(&listeners::table(&all, filter)),
                format => raw(&listeners::filtered(&all, filter), format)?,
            }
        }
        View::Route { target, filter } => {
            let dump = config_dump(target).await?;
            let all = route_configs(&dump);
            match target.output {
                Output::Short => align(&routes::table(&all, filter)),
                format => raw(&routes::filtered(&all, filter), format)?,
            }
        }
        View::Endpoint { target, filter } => {
            let clusters = read(target, "/clusters?format=json").await?;
            match target.output {
                Output::Short => align(&endpoints::table(&clusters, filter)),
                format => raw(&endpoints::filtered(&clusters, filter), format)?,
            }
        }
        View::Secret { target } => {
            let dump = config_dump(target).await?;
            let all = secret_resources(&dump);
            match target.output {
                Output::Short => align(&secrets::table(&all, now)),
                format => raw(&all, format)?,
            }
        }
        View::Bootstrap { target } => {
            let dump = config_dump(target).await?;
            let bootstrap: Vec<&Value> = dump::list(&dump, "configs")
                .iter()
                .filter(|s| section_is(s, "BootstrapConfigDump"))
                .collect();
            let format = match target.output {
                Output::Short => Output::Json,
                other => other,
            };
            raw(&bootstrap, format)?
        }
        View::Log {
            target,
            level,
            reset,
        } => log(target, level.as_deref(), *reset).await?,
        View::All { target } => {
            let dump = config_dump(target).await?;
            let clusters = cluster_resources(&dump);
            let listeners = listener_resources(&dump);
            let routes = route_configs(&dump);
            let secrets = secret_resources(&dump);
            match target.output {
                Output::Short => [
                    align(&clusters::table(&clusters, &ClusterFilter::default())),
                    align(&listeners::table(&listeners, &ListenerFilter::default())),
                    align(&routes::table(&routes, &RouteFilter::default())),
                    align(&secrets::table(&secrets, now)),
                ]
                .join("\n"),
                format => raw(&dump, format)?,
            }
        }
    })
}

fn cluster_resources(dump: &Value) -> Vec<&Value> {
    dump::resources(
        dump,
        "ClustersConfigDump",
        "dynamic_active_clusters",
        "cluster",
    )
}

fn listener_resources(dump: &Value) -> Vec<&Value> {
    dump::resources(
        dump,
        "ListenersConfigDump",
        "dynamic_listeners",
        "active_state",
    )
    .into_iter()
    .map(listener_of)
    .collect()
}

/// Envoy nests the listener in `active_state.listener`; Trellis' dump puts
/// it at `active_state` itself.
fn listener_of(active_state: &Value) -> &Value {
    dump::field(active_state, "listener").unwrap_or(active_state)
}

fn route_configs(dump: &Value) -> Vec<&Value> {
    dump::resources(
        dump,
        "RoutesConfigDump",
        "dynamic_route_configs",
        "route_config",
    )
}

fn secret_resources(dump: &Value) -> Vec<&Value> {
    dump::resources(
        dump,
        "SecretsConfigDump",
        "dynamic_active_secrets",
        "secret",
    )
}

fn section_is(section: &Value, dump_type: &str) -> bool {
    section
        .get("@type")
        .and_then(Value::as_str)
        .is_some_and(|t| t.ends_with(dump_type))
}

fn raw(resources: &impl serde::Serialize, format: Output) -> anyhow::Result<String> {
    Ok(match format {
        Output::Yaml => serde_saphyr::to_string(resources).context("writing YAML")?,
        _ => format!("{}\n", serde_json::to_string_pretty(resources)?),
    })
}

async fn config_dump(target: &Target) -> anyhow::Result<Value> {
    read(target, "/config_dump").await
}

/// The admin endpoint's JSON, from the file when one is given.
async fn read(target: &Target, path: &str) -> anyhow::Result<Value> {
    if let Some(file) = &target.file {
        let text =
            std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        return serde_json::from_str(&text)
            .with_context(|| format!("{} is not JSON", file.display()));
    }
    let admin = admin_address(target).await?;
    get_json(admin, path)
        .await
        .with_context(|| format!("reading {path} from the proxy's admin at {admin}"))
}

async fn admin_address(target: &Target) -> anyhow::Result<SocketAddr> {
    if let Some(admin) = target.admin {
        return Ok(admin);
    }
    let name = target
        .proxy
        .as_deref()
        .context("name a proxy (POD.NAMESPACE), or give --admin or --file")?;
    let name = if name.contains('.') {
        name.to_string()
    } else {
        format!("{name}.default")
    };
    let report: SyncReport = get_json(target.control_plane, "/debug/syncz")
        .await
        .with_context(|| format!("asking the control plane at {}", target.control_plane))?;
    let proxy = report
        .proxies
        .iter()
        .find(|p| p.name() == name || p.node_id == name)
        .with_context(|| {
            format!(
                "no proxy {name} is connected to the control plane at {}",
                target.control_plane
            )
        })?;
    let ip = proxy
        .ip()
        .with_context(|| format!("no address in node id {}", proxy.node_id))?;
    Ok(SocketAddr::new(ip, target.proxy_admin_port))
}

async fn log(target: &Target, level: Option<&str>, reset: bool) -> anyhow::Result<String> {
    anyhow::ensure!(
        target.file.is_none(),
        "log levels are read from a running proxy, not a file"
    );
    let admin = admin_address(target).await?;
    let query = match (level, reset) {
        (_, true) => Some("level=warning".to_string()),
        (Some(level), false) if level.contains(':') => Some(format!("paths={level}")),
        (Some(level), false) => Some(format!("level={level}")),
        (None, false) => None,
    };
    let body = match query {
        Some(query) => call(admin, hyper::Method::POST, &format!("/logging?{query}")).await?,
        None => call(admin, hyper::Method::GET, "/logging").await?,
    };
    Ok(String::from_utf8_lossy(&body).into_owned())
}
