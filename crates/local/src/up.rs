//! `trellis up`: a whole mesh on one machine, as local processes, without
//! root or Kubernetes.
//!
//! `up` is a supervisor. It reads the manifests (the bundled Bookinfo by
//! default), gives the control plane the first address of the address range
//! and each Deployment replica the next one, writes the watched config
//! directory (networking documents, Services, one WorkloadEntry per
//! workload) and a credential per workload, then starts `trellis
//! control-plane`, for each replica a `trellis proxy`, and once the proxies
//! are ready a `trellis demo-app` per container beside them. With
//! `--netns` (root) each workload runs in a network namespace of its own
//! with iptables capture, as in a pod (see `up/netns.rs`). Like Istio's default profile it also
//! runs the ingress gateway `istio-ingressgateway` (a router proxy alone;
//! see `up/ingress_gateway.rs`). It writes `up.json` (see [`UpState`]), waits
//! until the mesh answers, prints one `NAME: URL` line per Service,
//! `gateway: URL` when a Gateway gives the ingress gateway an HTTP port,
//! `config: DIR` and `ready` on stdout, and runs until Ctrl-C or SIGTERM,
//! when it stops every process and removes its temporary state.
//!
//! The state directory:
//! - `up.json`: see [`UpState`].
//! - `config/`: watched by the control plane. Each input manifest's
//!   documents other than Deployments and ServiceAccounts (so networking
//!   resources, Services, Namespaces), verbatim under the input's own file
//!   name, and `workload-NAMESPACE.POD.yaml`, one WorkloadEntry per
//!   workload. Add `credentials/NAME/tls.crt` and `tls.key` for Gateway
//!   servers whose `credentialName` is NAME (the ingress gateway reads
//!   them; the control plane ignores them).
//! - `tokens/NAMESPACE.POD.token`: each sidecar's credential (mode 0600);
//!   `workload-tokens.json`: the control plane's table of them.
//! - `root-cert.pem`: the mesh root, written by the control plane.
//!
//! Pods are named `DEPLOYMENT-INDEX` (stable across runs). A given state
//! directory is reused: `config/`, `tokens/` and `up.json` are replaced at
//! start, and a `config/` that `up` did not make is refused, not emptied.
//! Demo apps read the pod annotations [`LATENCY_ANNOTATION`] and
//! [`ERROR_RATE_ANNOTATION`] (on the pod template, else on the Deployment).

mod addresses;
mod config_files;
mod ingress_gateway;
mod launch;
mod manifests;
mod netns;
mod plan;
mod readiness;
mod start;
mod state;
mod state_dir;
mod supervisor;
mod workload_entry;

use std::collections::BTreeMap;
use std::io::Write as _;
use std::net::Ipv4Addr;
use std::os::unix::fs::DirBuilderExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, anyhow};
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::time::Instant;

pub use addresses::{AddressRange, AddressRangeError, DEFAULT_ADDRESS_RANGE};
pub use launch::{
    ADMIN_PORT, HEALTH_PORT, MONITORING_PORT, OUTBOUND_PORT, SECURE_PORT, STATS_PORT, XDS_PORT,
};
pub use netns::{APP_UID, DEFAULT_SERVICE_RANGE, NetnsError, PROXY_UID};
pub use plan::{ERROR_RATE_ANNOTATION, LATENCY_ANNOTATION};
pub use state::{
    ControlPlaneState, GatewayPort, GatewayProtocol, GatewayState, NetworkState, ProxyRole,
    SCHEMA_VERSION, ServiceState, UP_JSON, UpState, WorkloadState,
};

use launch::{Isolation, MeshFlags, Paths};
use manifests::{ManifestError, Manifests};
use netns::Network;
use plan::MeshPlan;
use start::{start_processes, until_exit};
use state_dir::StateDir;
use supervisor::{ChildExit, Supervisor};
use trellis_api::parse_duration;
use trellis_xds::node::Interception;

/// How long children get to exit after SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// The control plane's name among `up`'s children.
const CONTROL_PLANE: &str = "control-plane";

/// `trellis up` command line.
#[derive(Debug, Clone, clap::Args)]
pub struct UpArgs {
    /// Manifest file, or directory of manifests (repeatable). Default: the
    /// bundled Bookinfo, with reviews routed 90/10 between v1 and v2 and
    /// its Gateway (bookinfo-gateway.yaml) on the ingress gateway.
    #[arg(short = 'f', long = "filename", value_name = "FILE|DIR")]
    pub files: Vec<PathBuf>,
    /// Where to keep up.json, the watched config dir and credentials.
    /// Default: a fresh temporary directory, removed at exit (a given
    /// directory is kept).
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Run each workload in a network namespace of its own, with real
    /// iptables capture, as in a Kubernetes pod (needs root).
    #[arg(long)]
    pub netns: bool,
    /// Addresses for the control plane (the first) and workloads. Default:
    /// 127.42.0.0/16 (loopback); with --netns, the first of 10.42.0.0/16,
    /// 10.43.0.0/16, ... that no route of the host covers.
    #[arg(long, value_name = "CIDR")]
    pub address_range: Option<AddressRange>,
    /// With --netns: where Services without a clusterIP get one.
    #[arg(long, value_name = "CIDR", default_value = DEFAULT_SERVICE_RANGE)]
    pub service_range: AddressRange,
    /// The mesh CA's root key and certificate, kept across runs. Default:
    /// $XDG_DATA_HOME/trellis/ca (~/.local/share/trellis/ca).
    #[arg(long, value_name = "DIR")]
    pub ca_dir: Option<PathBuf>,
    /// How long to wait for the mesh to answer before giving up.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "60s")]
    pub ready_timeout: Duration,
    /// Istio's mesh config file, for the control plane (its access log
    /// settings replace up's /dev/stdout default; the trust domain stays
    /// cluster.local).
    #[arg(long, value_name = "FILE")]
    pub mesh_config: Option<PathBuf>,
    /// ALLOW_ANY or REGISTRY_ONLY, for the control plane (wins over the
    /// mesh config's `outboundTrafficPolicy.mode`).
    #[arg(
        long,
        value_name = "MODE",
        ignore_case = true,
        value_parser = clap::builder::PossibleValuesParser::new(["ALLOW_ANY", "REGISTRY_ONLY"])
    )]
    pub outbound_traffic_policy: Option<String>,
    /// TEXT or JSON sidecar access logs, for the control plane (wins over
    /// the mesh config's `accessLogEncoding`).
    #[arg(
        long,
        value_name = "ENCODING",
        ignore_case = true,
        value_parser = clap::builder::PossibleValuesParser::new(["TEXT", "JSON"])
    )]
    pub access_log_encoding: Option<String>,
    /// The dashboard reads the sidecars' metrics from this Prometheus
    /// (`http://HOST:PORT`, its federation API) instead of scraping them.
    #[arg(long, value_name = "URL")]
    pub dashboard_prometheus_url: Option<String>,
}

/// Runs `trellis up` until Ctrl-C or SIGTERM (or a startup failure).
pub async fn run_up(args: UpArgs) -> anyhow::Result<()> {
    let mut stop = StopSignals::install()?;
    if args.netns {
        netns::preflight()?;
    }
    let (manifests, plan) = load_manifests(&args.files)?;
    let state_dir = StateDir::prepare(args.state_dir.as_deref())?;
    let mut network = if args.netns {
        let given = args.address_range;
        Some(Network::create(
            state_dir.root(),
            given,
            args.service_range,
        )?)
    } else {
        None
    };
    let mut supervisor = Supervisor::new();
    let mesh = Mesh {
        args: &args,
        manifests: &manifests,
        plan: &plan,
        state_dir: &state_dir,
    };
    let outcome = tokio::select! {
        result = mesh.run(&mut supervisor, network.as_mut()) => result,
        name = stop.recv() => {
            eprintln!("up: {name}: stopping");
            Ok(())
        }
    };
    supervisor.shutdown(STOP_GRACE).await;
    // Only once their processes are gone: a namespace lives on while any
    // process is in it.
    let network_removed = network.map_or(Ok(()), |mut network| network.teardown());
    let removed = state_dir.finish();
    outcome?;
    network_removed.context("removing the pods' network")?;
    removed.context("removing the state dir")
}

/// Reads and plans the manifests, printing every problem (as
/// `error: FILE:LINE:COL: FIELD: message`) before anything starts.
fn load_manifests(files: &[PathBuf]) -> anyhow::Result<(Manifests, MeshPlan)> {
    let manifests = match manifests::load(files) {
        Ok(manifests) => manifests,
        Err(ManifestError::Invalid(errors)) => return Err(report_config_errors(&errors)),
        Err(other) => return Err(other.into()),
    };
    for warning in &manifests.warnings {
        eprintln!("warning: {warning}");
    }
    let mut plan =
        plan::plan(manifests.resources()).map_err(|errors| report_config_errors(&errors))?;
    ingress_gateway::add_to(&mut plan);
    Ok((manifests, plan))
}

fn report_config_errors(errors: &[trellis_api::ConfigError]) -> anyhow::Error {
    for error in errors {
        eprintln!("error: {error}");
    }
    anyhow!(
        "{} error(s) in the manifests; nothing was started",
        errors.len()
    )
}

/// What one `up` runs.
struct Mesh<'a> {
    args: &'a UpArgs,
    manifests: &'a Manifests,
    plan: &'a MeshPlan,
    state_dir: &'a StateDir,
}

impl Mesh<'_> {
    /// Starts the mesh, announces it once ready, then reports unexpected
    /// exits until cancelled.
    async fn run(
        &self,
        supervisor: &mut Supervisor,
        network: Option<&mut Network>,
    ) -> anyhow::Result<()> {
        let paths = paths(self.args, self.state_dir)?;
        let (range, isolation, interception) = match &network {
            Some(network) => (network.range(), Isolation::Netns, Interception::Redirect),
            None => (
                loopback_range(self.args)?,
                Isolation::Loopback,
                Interception::None,
            ),
        };
        let mesh = mesh_flags(self.args)?;
        let mut state = place(range, isolation, self.plan, self.state_dir, &paths, &mesh)?;
        let gateway_ports = ingress_gateway::served_ports(self.manifests.resources(), interception);
        state.gateways = ingress_gateway::state(self.plan, &state.workloads, gateway_ports, &paths)
            .into_iter()
            .collect();
        let cluster_ips = match network {
            Some(network) => self.make_pods(network, &mut state, &paths)?,
            None => BTreeMap::new(),
        };
        config_files::write_config(
            &paths.config_dir,
            self.manifests,
            self.plan,
            &state.workloads,
            &cluster_ips,
        )?;
        config_files::write_tokens(&paths.workload_tokens, &state.workloads)?;
        if state.network.is_some() {
            netns::share_with_proxies(&state)?;
        }
        let deadline = Instant::now() + self.args.ready_timeout;
        start_processes(supervisor, &paths, self.plan, &mut state, deadline).await?;
        state.write().context("writing up.json")?;
        let remaining = deadline.saturating_duration_since(Instant::now());
        until_exit(supervisor, readiness::wait_until_ready(&state, remaining)).await??;
        announce(&state);
        loop {
            report_exit(&supervisor.next_exit().await, &state);
        }
    }

    /// `--netns`: a namespace per workload, cluster IPs for Services, the
    /// pods' hosts files and capture. Returns the cluster IPs `up`
    /// allocated, to write into the Services' copies.
    fn make_pods(
        &self,
        network: &mut Network,
        state: &mut UpState,
        paths: &Paths,
    ) -> anyhow::Result<BTreeMap<(String, String), Ipv4Addr>> {
        for workload in &mut state.workloads {
            workload.netns = Some(network.add_pod(&workload.pod, workload.address)?);
        }
        let services = netns::assign(
            self.manifests.resources(),
            &network.service_range(),
            &state.workloads,
        )?;
        netns::prepare_pods(state, &services, &paths.exe)?;
        state.network = Some(NetworkState {
            bridge: network.bridge().to_owned(),
            bridge_address: state.control_plane.address,
            service_range: network.service_range().to_string(),
        });
        Ok(netns::allocated(&services))
    }
}

/// The loopback range: the given one, else the default.
fn loopback_range(args: &UpArgs) -> anyhow::Result<AddressRange> {
    let range = match args.address_range {
        Some(range) => range,
        None => DEFAULT_ADDRESS_RANGE.parse()?,
    };
    range.require_loopback()?;
    Ok(range)
}

fn paths(args: &UpArgs, state_dir: &StateDir) -> anyhow::Result<Paths> {
    let exe = std::env::current_exe().context("locating the trellis binary")?;
    let exe = exe
        .to_str()
        .context("the trellis binary's path is not UTF-8")?;
    Ok(Paths {
        exe: exe.to_owned(),
        config_dir: state_dir.config_dir(),
        root_cert: state_dir.root_cert(),
        workload_tokens: state_dir.workload_tokens(),
        tokens_dir: state_dir.tokens_dir(),
        ca_dir: ca_dir(args.ca_dir.as_deref())?,
    })
}

/// The mesh settings for the control plane; a mesh config is checked here
/// so that a bad one stops `up` before anything starts.
fn mesh_flags(args: &UpArgs) -> anyhow::Result<MeshFlags> {
    let mesh_config = match &args.mesh_config {
        Some(file) => {
            let file = std::path::absolute(file)
                .with_context(|| format!("locating {}", file.display()))?;
            trellis_api::MeshConfig::from_file(&file)?;
            Some(file)
        }
        None => None,
    };
    Ok(MeshFlags {
        mesh_config,
        outbound_traffic_policy: args.outbound_traffic_policy.clone(),
        access_log_encoding: args.access_log_encoding.clone(),
        dashboard_prometheus_url: args.dashboard_prometheus_url.clone(),
    })
}

/// Addresses, ports and command lines for everything, before anything
/// runs (pids are filled in as processes start).
fn place(
    range: AddressRange,
    isolation: Isolation,
    plan: &MeshPlan,
    state_dir: &StateDir,
    paths: &Paths,
    mesh: &MeshFlags,
) -> anyhow::Result<UpState> {
    let mut addresses = range.allocator();
    let control_plane = launch::control_plane(paths, mesh, addresses.allocate()?)?;
    let workloads = launch::place_workloads(plan, &mut addresses, paths, isolation)?;
    let services = launch::services(plan, &workloads);
    for service in &plan.services {
        let reachable = services
            .iter()
            .any(|s| s.name == service.name && s.namespace == service.namespace);
        if !reachable {
            eprintln!(
                "up: service {}/{} selects no workload, so it has no URL",
                service.namespace, service.name
            );
        }
    }
    Ok(UpState {
        schema_version: SCHEMA_VERSION,
        pid: std::process::id(),
        state_dir: state_dir.root().to_path_buf(),
        config_dir: paths.config_dir.clone(),
        root_cert: paths.root_cert.clone(),
        address_range: range.to_string(),
        control_plane,
        services,
        network: None,
        gateways: Vec::new(),
        workloads,
    })
}

/// The readiness lines on stdout (a contract: tests wait for `ready`).
/// Write errors are ignored: a closed stdout must not stop the mesh.
fn announce(state: &UpState) {
    let mut stdout = std::io::stdout().lock();
    for service in &state.services {
        let _ = if service.namespace == trellis_api::DEFAULT_NAMESPACE {
            writeln!(stdout, "{}: {}", service.name, service.url)
        } else {
            writeln!(
                stdout,
                "{}.{}: {}",
                service.name, service.namespace, service.url
            )
        };
    }
    ingress_gateway::announce(&mut stdout, &state.gateways);
    if let (Some(network), Some(pod)) = (&state.network, state.workloads.first()) {
        eprintln!(
            "up: each workload runs in a network namespace on bridge {} (e.g. {}); \
             to call the mesh as an app does: ip netns exec NAMESPACE curl http://SERVICE:PORT/",
            network.bridge,
            pod.netns.as_deref().unwrap_or_default(),
        );
    }
    let _ = writeln!(stdout, "dashboard: {}", state.control_plane.dashboard_url());
    let _ = writeln!(stdout, "config: {}", state.config_dir.display());
    let _ = writeln!(stdout, "ready");
    let _ = stdout.flush();
    eprintln!(
        "up: {} workloads running; state in {}; press Ctrl-C to stop",
        state.workloads.len(),
        state.state_dir.join(UP_JSON).display()
    );
}

fn report_exit(exit: &ChildExit, state: &UpState) {
    if exit.name == CONTROL_PLANE {
        eprintln!(
            "up: the control plane exited ({}); sidecars keep their last config. \
             Restart it with controlPlane.command from {}",
            exit.status,
            state.state_dir.join(UP_JSON).display()
        );
    } else {
        eprintln!("up: {} exited ({})", exit.name, exit.status);
    }
}

/// The CA directory, absolute (children run with other working dirs in
/// mind) and created private to the user.
fn ca_dir(given: Option<&Path>) -> anyhow::Result<PathBuf> {
    let dir = match given {
        Some(dir) => std::path::absolute(dir).context("resolving --ca-dir")?,
        None => default_data_dir()?.join("trellis").join("ca"),
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .with_context(|| format!("creating CA dir {}", dir.display()))?;
    Ok(dir)
}

/// The XDG data directory: `$XDG_DATA_HOME`, else `~/.local/share`.
fn default_data_dir() -> anyhow::Result<PathBuf> {
    let absolute = |var: &str| {
        std::env::var_os(var)
            .map(PathBuf::from)
            .filter(|path| path.is_absolute())
    };
    absolute("XDG_DATA_HOME")
        .or_else(|| absolute("HOME").map(|home| home.join(".local").join("share")))
        .context("neither XDG_DATA_HOME nor HOME is set: pass --ca-dir")
}

/// SIGINT (Ctrl-C), SIGTERM and SIGHUP (closed terminal) all stop `up`.
struct StopSignals {
    interrupt: Signal,
    terminate: Signal,
    hangup: Signal,
}

impl StopSignals {
    fn install() -> anyhow::Result<StopSignals> {
        let install = |kind| signal(kind).context("installing signal handlers");
        Ok(StopSignals {
            interrupt: install(SignalKind::interrupt())?,
            terminate: install(SignalKind::terminate())?,
            hangup: install(SignalKind::hangup())?,
        })
    }

    async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.interrupt.recv() => "interrupted",
            _ = self.terminate.recv() => "terminated",
            _ = self.hangup.recv() => "hung up",
        }
    }
}
