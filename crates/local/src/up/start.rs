//! Starting `up`'s processes in order: the control plane; the proxies
//! once it has written the mesh root they must trust; each workload's apps
//! once its proxy is ready (in its pod's namespace with `--netns`).

use std::future::Future;
use std::path::Path;
use std::time::Duration;

use anyhow::{anyhow, bail};
use tokio::time::Instant;

use super::launch::{self, Paths};
use super::plan::{MeshPlan, WorkloadPlan};
use super::state::{ControlPlaneState, ProxyRole, UpState, WorkloadState};
use super::supervisor::{Role, Supervisor};
use super::{CONTROL_PLANE, netns, readiness};

const ROOT_CERT_POLL: Duration = Duration::from_millis(100);

/// The control plane first; the proxies once it has written the mesh root
/// they must trust; the apps once their proxies are ready.
pub(super) async fn start_processes(
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
    if state.network.is_some() {
        netns::share_root_cert(&paths.root_cert)?;
    }
    for placed in &mut state.workloads {
        start_proxy(supervisor, paths, &state.control_plane, placed)?;
    }
    until_exit(supervisor, readiness::wait_for_proxies(state, deadline)).await??;
    for (planned, placed) in plan.workloads.iter().zip(&mut state.workloads) {
        start_apps(supervisor, paths, planned, placed)?;
    }
    Ok(())
}

/// How a process of `placed` enters its pod (`--netns`), as `uid`.
fn pod_entry(placed: &WorkloadState, uid: u32) -> anyhow::Result<Option<netns::PodEntry>> {
    let netns = placed.netns.as_deref();
    Ok(netns.map(|netns| netns::entry(netns, uid)).transpose()?)
}

fn start_proxy(
    supervisor: &mut Supervisor,
    paths: &Paths,
    control_plane: &ControlPlaneState,
    placed: &mut WorkloadState,
) -> anyhow::Result<()> {
    let command = launch::proxy(paths, control_plane, placed)?;
    let role = match placed.proxy_type {
        ProxyRole::Sidecar => "sidecar",
        ProxyRole::Router => "gateway",
    };
    let name = format!("{}/{role}", placed.pod);
    let entry = pod_entry(placed, netns::PROXY_UID)?;
    placed.proxy_pid = supervisor.spawn_in(&name, &command, Role::Workload, entry.as_ref())?;
    Ok(())
}

fn start_apps(
    supervisor: &mut Supervisor,
    paths: &Paths,
    planned: &WorkloadPlan,
    placed: &mut WorkloadState,
) -> anyhow::Result<()> {
    let entry = pod_entry(placed, netns::APP_UID)?;
    for container in &planned.containers {
        let command = launch::demo_app(&paths.exe, planned, placed, container);
        let name = format!("{}/{}", placed.pod, container.name);
        let pid = supervisor.spawn_in(&name, &command, Role::Workload, entry.as_ref())?;
        placed.app_pids.push(pid);
    }
    Ok(())
}

/// Runs `work` unless a child exits first, which fails the startup.
pub(super) async fn until_exit<T>(
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
