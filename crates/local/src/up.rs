//! `trellis up`: a whole mesh on one machine, as local processes, without
//! root or Kubernetes.
//!
//! `up` is a supervisor. It reads the manifests (the bundled Bookinfo by
//! default), gives the control plane the first address of the address range
//! and each Deployment replica the next one, writes the watched config
//! directory (networking documents, Services, one WorkloadEntry per
//! workload) and a credential per workload, then starts `trellis
//! control-plane`, and for each replica a `trellis demo-app` per container
//! and a `trellis proxy` beside them. It writes `up.json` (see
//! [`UpState`]), waits until the mesh answers, prints one `NAME: URL` line
//! per Service, `config: DIR` and `ready` on stdout, and runs until Ctrl-C
//! or SIGTERM, when it stops every process and removes its temporary state.
//!
//! The state directory:
//! - `up.json`: see [`UpState`].
//! - `config/`: watched by the control plane. Each input manifest's
//!   documents other than Deployments and ServiceAccounts (so networking
//!   resources, Services, Namespaces), verbatim under the input's own file
//!   name, and `workload-NAMESPACE.POD.yaml`, one WorkloadEntry per
//!   workload.
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
mod launch;
mod manifests;
mod plan;
mod readiness;
mod state;
mod state_dir;
mod supervisor;
mod workload_entry;

use std::future::Future;
use std::io::Write as _;
use std::os::unix::fs::DirBuilderExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::time::Instant;

pub use addresses::{AddressRange, AddressRangeError, DEFAULT_ADDRESS_RANGE};
pub use launch::{
    ADMIN_PORT, HEALTH_PORT, MONITORING_PORT, OUTBOUND_PORT, SECURE_PORT, STATS_PORT, XDS_PORT,
};
pub use plan::{ERROR_RATE_ANNOTATION, LATENCY_ANNOTATION};
pub use state::{ControlPlaneState, SCHEMA_VERSION, ServiceState, UP_JSON, UpState, WorkloadState};

use launch::Paths;
use manifests::{ManifestError, Manifests};
use plan::MeshPlan;
use state_dir::StateDir;
use supervisor::{ChildExit, Role, Supervisor};
use trellis_api::parse_duration;

/// How long children get to exit after SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);
const ROOT_CERT_POLL: Duration = Duration::from_millis(100);
const CONTROL_PLANE: &str = "control-plane";

/// `trellis up` command line.
#[derive(Debug, Clone, clap::Args)]
pub struct UpArgs {
    /// Manifest file, or directory of manifests (repeatable). Default: the
    /// bundled Bookinfo, with reviews routed 90/10 between v1 and v2.
    #[arg(short = 'f', long = "filename", value_name = "FILE|DIR")]
    pub files: Vec<PathBuf>,
    /// Where to keep up.json, the watched config dir and credentials.
    /// Default: a fresh temporary directory, removed at exit (a given
    /// directory is kept).
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Loopback addresses for the control plane (the first) and workloads.
    #[arg(long, value_name = "CIDR", default_value = DEFAULT_ADDRESS_RANGE)]
    pub address_range: AddressRange,
    /// The mesh CA's root key and certificate, kept across runs. Default:
    /// $XDG_DATA_HOME/trellis/ca (~/.local/share/trellis/ca).
    #[arg(long, value_name = "DIR")]
    pub ca_dir: Option<PathBuf>,
    /// How long to wait for the mesh to answer before giving up.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "60s")]
    pub ready_timeout: Duration,
}

/// Runs `trellis up` until Ctrl-C or SIGTERM (or a startup failure).
pub async fn run_up(args: UpArgs) -> anyhow::Result<()> {
    let mut stop = StopSignals::install()?;
    let (manifests, plan) = load_manifests(&args.files)?;
    let state_dir = StateDir::prepare(args.state_dir.as_deref())?;
    let mut supervisor = Supervisor::new();
    let outcome = tokio::select! {
        result = run_mesh(&args, &manifests, &plan, &state_dir, &mut supervisor) => result,
        name = stop.recv() => {
            eprintln!("up: {name}: stopping");
            Ok(())
        }
    };
    supervisor.shutdown(STOP_GRACE).await;
    let removed = state_dir.finish();
    outcome?;
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
    let plan = plan::plan(manifests.resources()).map_err(|errors| report_config_errors(&errors))?;
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

/// Starts the mesh, announces it once ready, then reports unexpected exits
/// until cancelled.
async fn run_mesh(
    args: &UpArgs,
    manifests: &Manifests,
    plan: &MeshPlan,
    state_dir: &StateDir,
    supervisor: &mut Supervisor,
) -> anyhow::Result<()> {
    let paths = paths(args, state_dir)?;
    let mut state = place(args, plan, state_dir, &paths)?;
    config_files::write_config(&paths.config_dir, manifests, plan, &state.workloads)?;
    config_files::write_tokens(&paths.workload_tokens, &state.workloads)?;
    let deadline = Instant::now() + args.ready_timeout;
    start_processes(supervisor, &paths, plan, &mut state, deadline).await?;
    state.write().context("writing up.json")?;
    let remaining = deadline.saturating_duration_since(Instant::now());
    until_exit(supervisor, readiness::wait_until_ready(&state, remaining)).await??;
    announce(&state);
    loop {
        report_exit(&supervisor.next_exit().await, &state);
    }
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

/// Addresses, ports and command lines for everything, before anything
/// runs (pids are filled in as processes start).
fn place(
    args: &UpArgs,
    plan: &MeshPlan,
    state_dir: &StateDir,
    paths: &Paths,
) -> anyhow::Result<UpState> {
    let mut addresses = args.address_range.allocator();
    let control_plane = launch::control_plane(paths, addresses.allocate()?)?;
    let workloads = launch::place_workloads(plan, &mut addresses, paths)?;
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
        address_range: args.address_range.to_string(),
        control_plane,
        services,
        workloads,
    })
}

/// The control plane first; the workloads once it has written the mesh
/// root their sidecars must trust.
async fn start_processes(
    supervisor: &mut Supervisor,
    paths: &Paths,
    plan: &MeshPlan,
    state: &mut UpState,
    deadline: Instant,
) -> anyhow::Result<()> {
    let control_plane = &mut state.control_plane;
    control_plane.pid =
        supervisor.spawn(CONTROL_PLANE, &control_plane.command, Role::ControlPlane)?;
    until_exit(supervisor, wait_for_root_cert(&paths.root_cert, deadline)).await??;
    for (planned, placed) in plan.workloads.iter().zip(&mut state.workloads) {
        start_workload(supervisor, paths, &state.control_plane, planned, placed)?;
    }
    Ok(())
}

fn start_workload(
    supervisor: &mut Supervisor,
    paths: &Paths,
    control_plane: &ControlPlaneState,
    planned: &plan::WorkloadPlan,
    placed: &mut WorkloadState,
) -> anyhow::Result<()> {
    for container in &planned.containers {
        let command = launch::demo_app(&paths.exe, planned, placed, container);
        let name = format!("{}/{}", placed.pod, container.name);
        placed
            .app_pids
            .push(supervisor.spawn(&name, &command, Role::Workload)?);
    }
    let command = launch::proxy(paths, control_plane, placed)?;
    let name = format!("{}/sidecar", placed.pod);
    placed.proxy_pid = supervisor.spawn(&name, &command, Role::Workload)?;
    Ok(())
}

/// Runs `work` unless a child exits first, which fails the startup.
async fn until_exit<T>(
    supervisor: &mut Supervisor,
    work: impl Future<Output = T>,
) -> anyhow::Result<T> {
    tokio::select! {
        output = work => Ok(output),
        exit = supervisor.next_exit() => {
            let hint = if exit.name == CONTROL_PLANE {
                "; is another `trellis up` using this address range? Try another --address-range"
            } else {
                ""
            };
            Err(anyhow!("{} exited during startup ({}); see its output above{hint}", exit.name, exit.status))
        }
    }
}

/// The control plane writes the mesh root once its CA is up; proxies need
/// it to trust the control plane.
async fn wait_for_root_cert(path: &Path, deadline: Instant) -> anyhow::Result<()> {
    loop {
        let written = tokio::fs::read_to_string(path).await.unwrap_or_default();
        if written.contains("-----END CERTIFICATE-----") {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!(
                "the control plane did not write the mesh root certificate to {} in time",
                path.display()
            );
        }
        tokio::time::sleep(ROOT_CERT_POLL).await;
    }
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
