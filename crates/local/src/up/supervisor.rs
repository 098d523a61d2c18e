//! The child processes of `up`: started with their output passed through,
//! watched for unexpected exits, and stopped together (SIGTERM, then
//! SIGKILL after a grace period): workloads first, then the control plane,
//! so that no sidecar sees its control plane vanish while it is still
//! serving. Children run in their own process groups
//! so that a terminal's Ctrl-C reaches `up` alone, which then stops them in
//! order; they also die with `up` if it is killed outright.

use std::io::Write as _;
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use super::netns::PodEntry;
use crate::parent_death::die_with_parent;

/// How long SIGKILLed children may take to be reaped before `up` stops
/// waiting for them (only a process stuck in the kernel takes this long).
const REAP_TIMEOUT: Duration = Duration::from_secs(2);

/// What a child is, which decides how its output is shown and when it is
/// stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// A demo app or a sidecar: every output line is prefixed with
    /// `[name] `; stopped first.
    Workload,
    /// Like a workload, but `error: ...` lines (config errors, whose format
    /// is `error: FILE:LINE:COL: FIELD: message`) stay verbatim so that
    /// users and tests can grep for them; stopped last.
    ControlPlane,
}

/// A child that exited while `up` was not stopping it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ChildExit {
    pub name: String,
    /// e.g. `exit status: 1` or `signal: 9 (SIGKILL)`.
    pub status: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StopLevel {
    Running,
    Terminate,
    Kill,
}

/// Children stopped together, and the tasks that watch them.
struct Group {
    stop: watch::Sender<StopLevel>,
    watchers: JoinSet<()>,
}

impl Group {
    fn new() -> Group {
        Group {
            stop: watch::Sender::new(StopLevel::Running),
            watchers: JoinSet::new(),
        }
    }
}

pub(crate) struct Supervisor {
    workloads: Group,
    control_plane: Group,
    exits_sender: mpsc::UnboundedSender<ChildExit>,
    exits: mpsc::UnboundedReceiver<ChildExit>,
}

impl Supervisor {
    pub fn new() -> Supervisor {
        let (exits_sender, exits) = mpsc::unbounded_channel();
        Supervisor {
            workloads: Group::new(),
            control_plane: Group::new(),
            exits_sender,
            exits,
        }
    }

    /// Starts `argv` (program first) as the child `name` and returns its
    /// pid. Call from an async task or the main thread (see
    /// [`die_with_parent`]).
    pub fn spawn(&mut self, name: &str, argv: &[String], role: Role) -> anyhow::Result<u32> {
        self.spawn_in(name, argv, role, None)
    }

    /// [`spawn`](Self::spawn), inside a pod's network namespace when
    /// `pod` is given (`up --netns`).
    pub fn spawn_in(
        &mut self,
        name: &str,
        argv: &[String],
        role: Role,
        pod: Option<&PodEntry>,
    ) -> anyhow::Result<u32> {
        let (program, args) = argv.split_first().context("empty command line")?;
        let mut command = Command::new(program);
        command
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .process_group(0);
        // Entering the pod changes credentials, which clears the
        // parent-death signal: so it comes first.
        if let Some(pod) = pod {
            pod.apply(command.as_std_mut());
        }
        die_with_parent(command.as_std_mut());
        let mut child = command
            .spawn()
            .with_context(|| format!("starting {name} ({program})"))?;
        let pid = child.id().context("a just-spawned child has a pid")?;
        let name: Arc<str> = Arc::from(name);
        if let Some(stdout) = child.stdout.take() {
            tokio::spawn(forward_lines(stdout, name.clone(), role));
        }
        if let Some(stderr) = child.stderr.take() {
            tokio::spawn(forward_lines(stderr, name.clone(), role));
        }
        let group = match role {
            Role::Workload => &mut self.workloads,
            Role::ControlPlane => &mut self.control_plane,
        };
        let watcher = watch_child(
            child,
            name,
            group.stop.subscribe(),
            self.exits_sender.clone(),
        );
        group.watchers.spawn(watcher);
        Ok(pid)
    }

    /// The next child exit; pends forever once every child has exited.
    pub async fn next_exit(&mut self) -> ChildExit {
        match self.exits.recv().await {
            Some(exit) => exit,
            // Unreachable while `self` holds a sender; pend rather than spin.
            None => std::future::pending().await,
        }
    }

    /// Stops every child: SIGTERM to the workloads, then to the control
    /// plane, and SIGKILL for any still running after `grace` in all.
    pub async fn shutdown(mut self, grace: Duration) {
        let deadline = tokio::time::Instant::now() + grace;
        for group in [&mut self.workloads, &mut self.control_plane] {
            group.stop.send_replace(StopLevel::Terminate);
            let _ = tokio::time::timeout_at(deadline, drain(&mut group.watchers)).await;
        }
        let running = self.workloads.watchers.len() + self.control_plane.watchers.len();
        if running == 0 {
            return;
        }
        eprintln!("up: {running} process(es) still running after {grace:?}; killing them");
        for group in [&mut self.workloads, &mut self.control_plane] {
            group.stop.send_replace(StopLevel::Kill);
            let _ = tokio::time::timeout(REAP_TIMEOUT, drain(&mut group.watchers)).await;
        }
    }
}

async fn drain(watchers: &mut JoinSet<()>) {
    while watchers.join_next().await.is_some() {}
}

/// Owns `child` until it exits, so that signals are only ever sent to a pid
/// that has not been reaped (and so cannot have been reused).
async fn watch_child(
    mut child: Child,
    name: Arc<str>,
    mut stop: watch::Receiver<StopLevel>,
    exits: mpsc::UnboundedSender<ChildExit>,
) {
    loop {
        tokio::select! {
            status = child.wait() => {
                if *stop.borrow() == StopLevel::Running {
                    let _ = exits.send(ChildExit { name: name.to_string(), status: describe(status) });
                }
                return;
            }
            changed = stop.changed() => {
                let level = if changed.is_ok() { *stop.borrow_and_update() } else { StopLevel::Kill };
                signal(&mut child, level);
                if changed.is_err() {
                    let _ = child.wait().await;
                    return;
                }
            }
        }
    }
}

fn signal(child: &mut Child, level: StopLevel) {
    match level {
        StopLevel::Running => {}
        StopLevel::Terminate => {
            if let Some(pid) = child.id().and_then(|pid| i32::try_from(pid).ok()) {
                let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
            }
        }
        StopLevel::Kill => {
            let _ = child.start_kill();
        }
    }
}

fn describe(status: std::io::Result<ExitStatus>) -> String {
    match status {
        Ok(status) => status.to_string(),
        Err(error) => format!("unknown status ({error})"),
    }
}

/// Copies a child's output to `up`'s stderr line by line, each line in one
/// write so that lines of different children never interleave.
async fn forward_lines(pipe: impl AsyncRead + Unpin, name: Arc<str>, role: Role) {
    let mut reader = BufReader::new(pipe);
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let text = String::from_utf8_lossy(&line);
        let shown = format_line(&name, text.trim_end_matches(['\n', '\r']), role);
        let _ = std::io::stderr().lock().write_all(shown.as_bytes());
    }
}

fn format_line(name: &str, line: &str, role: Role) -> String {
    if role == Role::ControlPlane && line.starts_with("error: ") {
        format!("{line}\n")
    } else {
        format!("[{name}] {line}\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shell(script: &str) -> Vec<String> {
        vec!["sh".into(), "-c".into(), script.into()]
    }

    #[test]
    fn keeps_config_errors_greppable() {
        let error = "error: /s/config/vs.yaml:3:5: spec.http: bad";
        assert_eq!(
            format_line("control-plane", error, Role::ControlPlane),
            format!("{error}\n")
        );
        assert_eq!(
            format_line("p/sidecar", error, Role::Workload),
            format!("[p/sidecar] {error}\n")
        );
        assert_eq!(
            format_line("control-plane", "listening", Role::ControlPlane),
            "[control-plane] listening\n"
        );
    }

    #[tokio::test]
    async fn reports_unexpected_exits() {
        let mut supervisor = Supervisor::new();
        supervisor
            .spawn("quitter", &shell("exit 3"), Role::Workload)
            .unwrap();
        let exit = tokio::time::timeout(Duration::from_secs(10), supervisor.next_exit())
            .await
            .unwrap();
        assert_eq!(
            exit,
            ChildExit {
                name: "quitter".into(),
                status: "exit status: 3".into()
            }
        );
        supervisor.shutdown(Duration::from_secs(1)).await;
    }

    #[tokio::test]
    async fn stops_workloads_before_the_control_plane() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("stops");
        let recorder = |who: &str| {
            let script = format!(
                "trap 'echo {who} >> {}; exit 0' TERM; while :; do sleep 0.05; done",
                log.display()
            );
            shell(&script)
        };
        let mut supervisor = Supervisor::new();
        // Started first, yet stopped last.
        supervisor
            .spawn(
                "control-plane",
                &recorder("control-plane"),
                Role::ControlPlane,
            )
            .unwrap();
        supervisor
            .spawn("app", &recorder("app"), Role::Workload)
            .unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        supervisor.shutdown(Duration::from_secs(5)).await;
        assert_eq!(
            std::fs::read_to_string(&log).unwrap(),
            "app\ncontrol-plane\n"
        );
    }

    #[tokio::test]
    async fn terminates_then_kills_stragglers() {
        let mut supervisor = Supervisor::new();
        let polite = supervisor
            .spawn("polite", &shell("exec sleep 30"), Role::Workload)
            .unwrap();
        let stubborn = supervisor
            .spawn(
                "stubborn",
                &shell("trap '' TERM; while :; do sleep 0.1; done"),
                Role::Workload,
            )
            .unwrap();
        // Let the stubborn shell install its trap before asking it to stop.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let started = std::time::Instant::now();
        supervisor.shutdown(Duration::from_millis(500)).await;
        assert!(started.elapsed() < Duration::from_secs(3));
        for pid in [polite, stubborn] {
            let alive = kill(Pid::from_raw(pid as i32), None).is_ok();
            assert!(!alive, "pid {pid} survived shutdown");
        }
    }
}
