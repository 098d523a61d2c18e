//! `UpMesh`: a `trellis up` started for one test, read through its
//! `up.json`, and stopped (with everything it started) when dropped.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use nix::errno::Errno;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tempfile::TempDir;
use tokio::sync::mpsc;
use trellis_local::{GatewayState, UpState, WorkloadState, die_with_parent};

use crate::address_range::address_range_for;
use crate::http::{HttpClient, Reply};
use crate::output::{Lines, spawn_reader};

/// How long `up` may take to print `ready` (builds run in parallel on
/// small CI machines, so this is generous).
const READY_DEADLINE: Duration = Duration::from_secs(120);
/// `up`'s own readiness timeout: shorter, so that `up` explains what is not
/// ready before the test gives up on it.
const UP_READY_TIMEOUT: &str = "110s";
/// `up` stops its children within ~5s of SIGTERM; allow for a slow machine.
const STOP_DEADLINE: Duration = Duration::from_secs(15);
const CONTROL_PLANE_DEADLINE: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(50);
/// Lines of `up`'s stderr quoted in failure messages.
const TAIL: usize = 60;

/// Options for starting `trellis up`; see [`UpMesh::builder`].
pub struct UpMeshBuilder {
    binary: PathBuf,
    test_name: String,
    files: Vec<PathBuf>,
    extra_args: Vec<String>,
    netns: bool,
}

impl UpMeshBuilder {
    /// Adds `-f PATH` (a manifest file or directory); without any, `up`
    /// runs the bundled Bookinfo.
    pub fn file(mut self, path: impl Into<PathBuf>) -> Self {
        self.files.push(path.into());
        self
    }

    /// Runs `up --netns` (root only): each workload in a network namespace
    /// of its own, on a private range `up` picks, with real capture.
    pub fn netns(mut self) -> Self {
        self.netns = true;
        self
    }

    /// Adds a raw argument to `trellis up`.
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.extra_args.push(arg.into());
        self
    }

    /// Starts `up` and waits for `ready`; panics, quoting `up`'s output,
    /// when it does not get there.
    pub async fn start(self) -> UpMesh {
        let name = self.test_name.clone();
        match self.try_start().await {
            Ok(mesh) => mesh,
            Err(error) => panic!("trellis up for {name} did not become ready: {error:#}"),
        }
    }

    async fn try_start(self) -> anyhow::Result<UpMesh> {
        let root = tempfile::Builder::new()
            .prefix(&format!("trellis-{}-", self.test_name))
            .tempdir()
            .context("creating the test's temporary dir")?;
        let state_dir = root.path().join("state");
        let mut command = Command::new(&self.binary);
        command.arg("up");
        if self.netns {
            // The proxies run as uid 1337 and must reach their tokens.
            std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755))
                .context("opening the test's temporary dir to the proxies")?;
            command.arg("--netns");
        } else {
            command.args(["--address-range", &address_range_for(&self.test_name)]);
        }
        command
            .arg("--state-dir")
            .arg(&state_dir)
            .arg("--ca-dir")
            .arg(root.path().join("ca"))
            .args(["--ready-timeout", UP_READY_TIMEOUT]);
        for file in &self.files {
            command.arg("-f").arg(file);
        }
        command.args(&self.extra_args);
        let stderr = Lines::default();
        let (stdout_sender, mut stdout) = mpsc::unbounded_channel();
        let up = spawn_child(command, "[up] ", &stderr, Some(stdout_sender))
            .with_context(|| format!("starting {}", self.binary.display()))?;
        let mut mesh = UpMesh {
            up: Some(up),
            _root: root,
            state_dir,
            state: None,
            restarted_control_plane: None,
            stderr,
            http: HttpClient::default(),
        };
        let ready = tokio::time::timeout(READY_DEADLINE, wait_for_ready(&mut stdout)).await;
        match ready {
            Ok(true) => {}
            Ok(false) => bail!(
                "{}\n--- up's stderr ---\n{}",
                mesh.up_exit(),
                mesh.stderr.tail(TAIL)
            ),
            Err(_) => bail!(
                "no `ready` within {READY_DEADLINE:?}\n--- up's stderr ---\n{}",
                mesh.stderr.tail(TAIL)
            ),
        }
        mesh.state = Some(UpState::read(&mesh.state_dir).context("reading up.json")?);
        Ok(mesh)
    }
}

/// True once `ready` is printed; false when `up` closed its stdout first.
async fn wait_for_ready(stdout: &mut mpsc::UnboundedReceiver<String>) -> bool {
    while let Some(line) = stdout.recv().await {
        if line == "ready" {
            return true;
        }
    }
    false
}

/// Starts `command` with its output collected; it dies with this thread.
fn spawn_child(
    mut command: Command,
    label: &str,
    stderr: &Lines,
    stdout: Option<mpsc::UnboundedSender<String>>,
) -> std::io::Result<Child> {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    die_with_parent(&mut command);
    let mut child = command.spawn()?;
    if let Some(pipe) = child.stdout.take() {
        spawn_reader(pipe, label.to_owned(), Lines::default(), stdout);
    }
    if let Some(pipe) = child.stderr.take() {
        spawn_reader(pipe, label.to_owned(), stderr.clone(), None);
    }
    Ok(child)
}

/// A running `trellis up` (the bundled Bookinfo unless told otherwise).
///
/// ```no_run
/// # async fn scenario() {
/// use trellis_testbed::UpMesh;
/// # let trellis = "target/debug/trellis"; // env!("CARGO_BIN_EXE_trellis") in tests
/// let mesh = UpMesh::start(trellis, "reviews_split").await;
/// let reply = mesh.get(&mesh.url("productpage")).await.unwrap();
/// assert_eq!(reply.status, 200);
/// println!("reviews {:?}", reply.version_of("reviews"));
/// # }
/// ```
pub struct UpMesh {
    up: Option<Child>,
    /// Holds the state and CA dirs; removed after `up` has stopped.
    _root: TempDir,
    state_dir: PathBuf,
    state: Option<UpState>,
    restarted_control_plane: Option<Child>,
    stderr: Lines,
    http: HttpClient,
}

impl UpMesh {
    /// `up` with the bundled Bookinfo. `binary` is the `trellis` binary
    /// (`env!("CARGO_BIN_EXE_trellis")`); `test_name` picks the test's own
    /// address range and names its temporary dir.
    pub async fn start(binary: impl AsRef<Path>, test_name: &str) -> UpMesh {
        UpMesh::builder(binary, test_name).start().await
    }

    pub fn builder(binary: impl AsRef<Path>, test_name: &str) -> UpMeshBuilder {
        UpMeshBuilder {
            binary: binary.as_ref().to_path_buf(),
            test_name: test_name.to_owned(),
            files: Vec::new(),
            extra_args: Vec::new(),
            netns: false,
        }
    }

    /// Everything `up.json` records.
    pub fn state(&self) -> &UpState {
        self.state
            .as_ref()
            .expect("a started mesh has read up.json")
    }

    /// The URL `up` printed for `service` (its first workload's sidecar).
    pub fn url(&self, service: &str) -> String {
        let state = self.state();
        match state.services.iter().find(|s| s.name == service) {
            Some(found) => found.url.clone(),
            None => panic!("no service {service} in up.json: {:?}", state.services),
        }
    }

    /// The ingress gateway `up` runs (Istio's `istio-ingressgateway`).
    pub fn ingress_gateway(&self) -> &GatewayState {
        let state = self.state();
        state
            .gateways
            .iter()
            .find(|g| g.name == "istio-ingressgateway")
            .unwrap_or_else(|| panic!("no ingress gateway in up.json: {:?}", state.gateways))
    }

    /// The ingress gateway's base URL for a Gateway server `port`
    /// (`http://ADDRESS:LISTEN_PORT`, the listen port differing for ports
    /// below 1024), as recorded in `up.json`.
    pub fn gateway_base_url(&self, port: u16) -> String {
        let gateway = self.ingress_gateway();
        let served = gateway
            .ports
            .iter()
            .find(|p| p.port == port)
            .unwrap_or_else(|| panic!("the gateway serves no port {port}: {:?}", gateway.ports));
        format!("http://{}:{}", gateway.address, served.listen_port)
    }

    /// A workload by pod name (`reviews-v2-0`), or the first replica of a
    /// Deployment (`reviews-v2`).
    pub fn workload(&self, name: &str) -> &WorkloadState {
        let workloads = &self.state().workloads;
        workloads
            .iter()
            .find(|w| w.pod == name)
            .or_else(|| workloads.iter().find(|w| w.name == name))
            .unwrap_or_else(|| panic!("no workload {name} in up.json"))
    }

    /// Every workload replica behind `service`.
    pub fn workloads_of(&self, service: &str) -> Vec<&WorkloadState> {
        let workloads = &self.state().workloads;
        workloads
            .iter()
            .filter(|w| w.services.iter().any(|s| s == service))
            .collect()
    }

    /// The watched config directory: write YAML here to change routing.
    pub fn config_dir(&self) -> &Path {
        &self.state().config_dir
    }

    pub fn root_cert(&self) -> &Path {
        &self.state().root_cert
    }

    /// Replaces (or adds) `config_dir/name` the way editors and
    /// `kubectl`-like tools do: write a temporary file, rename it over.
    pub fn write_config(&self, name: &str, yaml: &str) {
        let temporary = self.config_dir().join(format!(".{name}.tmp"));
        std::fs::write(&temporary, yaml).expect("writing the temporary config file");
        std::fs::rename(&temporary, self.config_dir().join(name))
            .expect("renaming the config file into place");
    }

    pub fn remove_config(&self, name: &str) {
        std::fs::remove_file(self.config_dir().join(name)).expect("removing the config file");
    }

    /// GET through the mesh's loopback addresses (no proxy in between).
    pub async fn get(&self, url: &str) -> anyhow::Result<Reply> {
        self.http.get(url).await
    }

    pub async fn get_with_headers(
        &self,
        url: &str,
        headers: &[(&str, &str)],
    ) -> anyhow::Result<Reply> {
        self.http.get_with_headers(url, headers).await
    }

    /// `up`'s stderr so far (its own notices, and every child's output,
    /// including the control plane's `error: FILE:LINE:COL: ...` lines).
    pub fn output(&self) -> Vec<String> {
        self.stderr.snapshot()
    }

    /// The first line of `up`'s stderr containing `needle`, waiting up to
    /// `timeout` for it to appear.
    pub async fn wait_for_output(&self, needle: &str, timeout: Duration) -> Option<String> {
        self.stderr.wait_for(needle, timeout).await
    }

    /// SIGKILLs the control plane (the one `up` started, or the one
    /// [`restart_control_plane`](Self::restart_control_plane) started) and
    /// waits until it is gone.
    pub fn kill_control_plane(&mut self) {
        if let Some(mut restarted) = self.restarted_control_plane.take() {
            let _ = restarted.kill();
            restarted
                .wait()
                .expect("waiting for the restarted control plane");
            return;
        }
        let pid = pid(self.state().control_plane.pid);
        kill(pid, Signal::SIGKILL).expect("killing the control plane");
        // `up` is its parent and reaps it; wait until it has.
        let deadline = Instant::now() + STOP_DEADLINE;
        while kill(pid, None) != Err(Errno::ESRCH) {
            assert!(
                Instant::now() < deadline,
                "control plane {pid} did not go away"
            );
            std::thread::sleep(POLL);
        }
    }

    /// Starts the control plane again with the exact command line `up`
    /// recorded, and waits until it accepts connections on its TLS port.
    pub async fn restart_control_plane(&mut self) {
        assert!(
            self.restarted_control_plane.is_none(),
            "the control plane is already restarted"
        );
        let argv = &self.state().control_plane.command;
        let mut command = Command::new(&argv[0]);
        command.args(&argv[1..]);
        let child = spawn_child(command, "[control-plane, restarted] ", &self.stderr, None)
            .expect("restarting the control plane");
        self.restarted_control_plane = Some(child);
        let address = self.state().control_plane.secure_address;
        let deadline = Instant::now() + CONTROL_PLANE_DEADLINE;
        while tokio::net::TcpStream::connect(address).await.is_err() {
            assert!(
                Instant::now() < deadline,
                "the restarted control plane never listened on {address}"
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// How `up` ended, for failure messages.
    fn up_exit(&mut self) -> String {
        let Some(up) = self.up.as_mut() else {
            return "up was already stopped".to_owned();
        };
        match wait_until(up, Duration::from_secs(5)) {
            Some(status) => format!("up exited early ({status})"),
            None => "up closed its stdout but is still running".to_owned(),
        }
    }
}

fn pid(raw: u32) -> Pid {
    Pid::from_raw(i32::try_from(raw).expect("pids fit in i32"))
}

fn wait_until(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(POLL),
            _ => return None,
        }
    }
}

/// Stops a child politely (SIGTERM), then surely (SIGKILL).
fn stop(child: &mut Child, timeout: Duration) {
    let _ = kill(pid(child.id()), Signal::SIGTERM);
    if wait_until(child, timeout).is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for UpMesh {
    /// Stops `up` (which stops everything it started) and a restarted
    /// control plane, even when the test failed, before the temporary
    /// directories go.
    fn drop(&mut self) {
        if let Some(mut control_plane) = self.restarted_control_plane.take() {
            stop(&mut control_plane, STOP_DEADLINE);
        }
        if let Some(mut up) = self.up.take() {
            stop(&mut up, STOP_DEADLINE);
        }
    }
}
