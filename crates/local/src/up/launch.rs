//! Where each process of the mesh goes (addresses and ports) and the exact
//! command line it runs with: `trellis control-plane`, `trellis proxy` and
//! `trellis demo-app`, all the same binary as `up`.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};

use anyhow::Context as _;

use super::addresses::AddressAllocator;
use super::plan::{ContainerPlan, MeshPlan, WorkloadPlan};
use super::state::{ControlPlaneState, ProxyRole, ServiceState, WorkloadState};

/// Istio's ports, on the control plane's own address.
pub const XDS_PORT: u16 = 15010;
pub const SECURE_PORT: u16 = 15012;
pub const MONITORING_PORT: u16 = 15014;
/// Istio's sidecar ports, on each workload's own address.
pub const OUTBOUND_PORT: u16 = 15001;
pub const ADMIN_PORT: u16 = 15000;
pub const STATS_PORT: u16 = 15090;
pub const HEALTH_PORT: u16 = 15021;

const TRUST_DOMAIN: &str = "cluster.local";

/// How workloads are kept apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Isolation {
    /// Each on a loopback address of its own; apps call their sidecar
    /// explicitly, and it forwards to their private ports.
    Loopback,
    /// Each in a network namespace of its own with capture (`--netns`):
    /// apps keep their container ports.
    Netns,
}

/// Paths every command line refers to.
pub(crate) struct Paths {
    /// This binary.
    pub exe: String,
    pub config_dir: PathBuf,
    pub root_cert: PathBuf,
    pub workload_tokens: PathBuf,
    pub tokens_dir: PathBuf,
    pub ca_dir: PathBuf,
}

/// Mesh-wide settings `up` passes through to the control plane.
#[derive(Debug, Clone, Default)]
pub(crate) struct MeshFlags {
    /// Istio's mesh config file (`--mesh-config`).
    pub mesh_config: Option<PathBuf>,
    /// `ALLOW_ANY` or `REGISTRY_ONLY`.
    pub outbound_traffic_policy: Option<String>,
    /// `TEXT` or `JSON` access log lines.
    pub access_log_encoding: Option<String>,
    /// A Prometheus the dashboard reads instead of scraping the proxies.
    pub dashboard_prometheus_url: Option<String>,
}

/// The control plane's state before it runs (pid 0).
pub(crate) fn control_plane(
    paths: &Paths,
    mesh: &MeshFlags,
    address: Ipv4Addr,
) -> anyhow::Result<ControlPlaneState> {
    let mut command = [
        &paths.exe,
        "control-plane",
        "--config-dir",
        utf8(&paths.config_dir)?,
        "--listen-address",
        &address.to_string(),
        "--xds-port",
        &XDS_PORT.to_string(),
        "--secure-port",
        &SECURE_PORT.to_string(),
        "--monitoring-port",
        &MONITORING_PORT.to_string(),
        "--ca-dir",
        utf8(&paths.ca_dir)?,
        "--workload-tokens",
        utf8(&paths.workload_tokens)?,
        "--root-cert-out",
        utf8(&paths.root_cert)?,
        // Workload tokens name identities in this domain: a mesh config's
        // trustDomain cannot change it.
        "--trust-domain",
        TRUST_DOMAIN,
    ]
    .map(str::to_owned)
    .to_vec();
    match &mesh.mesh_config {
        Some(file) => command.extend(["--mesh-config".to_owned(), utf8(file)?.to_owned()]),
        // Local mode is for seeing what happens: access logs on, as in
        // Istio's demo profile, unless a mesh config says otherwise.
        None => command.extend(["--access-log-file", "/dev/stdout"].map(str::to_owned)),
    }
    if let Some(mode) = &mesh.outbound_traffic_policy {
        command.extend(["--outbound-traffic-policy".to_owned(), mode.clone()]);
    }
    if let Some(encoding) = &mesh.access_log_encoding {
        command.extend(["--access-log-encoding".to_owned(), encoding.clone()]);
    }
    if let Some(url) = &mesh.dashboard_prometheus_url {
        command.extend(["--dashboard-prometheus-url".to_owned(), url.clone()]);
    }
    Ok(ControlPlaneState {
        pid: 0,
        address,
        xds_address: SocketAddr::new(address.into(), XDS_PORT),
        secure_address: SocketAddr::new(address.into(), SECURE_PORT),
        monitoring_address: SocketAddr::new(address.into(), MONITORING_PORT),
        ca_dir: paths.ca_dir.to_path_buf(),
        workload_tokens: paths.workload_tokens.to_path_buf(),
        command,
    })
}

/// Gives each workload its address and its apps' private ports, and
/// returns their states before they run (pids 0).
pub(crate) fn place_workloads(
    plan: &MeshPlan,
    addresses: &mut AddressAllocator,
    paths: &Paths,
    isolation: Isolation,
) -> anyhow::Result<Vec<WorkloadState>> {
    let mut placed = Vec::with_capacity(plan.workloads.len());
    for workload in &plan.workloads {
        let address = addresses.allocate()?;
        let inbound_ports = workload.inbound_ports();
        let app_ports = match isolation {
            Isolation::Loopback => {
                choose_app_ports(address, &inbound_ports).with_context(|| {
                    format!("choosing private ports for {} on {address}", workload.pod)
                })?
            }
            Isolation::Netns => inbound_ports.iter().map(|&port| (port, port)).collect(),
        };
        let file_stem = format!("{}.{}", workload.namespace, workload.pod);
        placed.push(WorkloadState {
            name: workload.workload.clone(),
            namespace: workload.namespace.clone(),
            service_account: workload.service_account.clone(),
            pod: workload.pod.clone(),
            labels: workload.labels.clone(),
            services: workload.services.clone(),
            address,
            inbound_ports,
            app_ports,
            outbound_port: OUTBOUND_PORT,
            admin_port: ADMIN_PORT,
            stats_port: STATS_PORT,
            health_port: HEALTH_PORT,
            proxy_type: workload.proxy_type,
            token_file: paths.tokens_dir.join(format!("{file_stem}.token")),
            workload_entry: paths.config_dir.join(format!("workload-{file_stem}.yaml")),
            netns: None,
            proxy_pid: 0,
            app_pids: Vec::new(),
        });
    }
    Ok(placed)
}

/// One free port per container port, found by binding port 0 on the
/// workload's own address. All are held until all are chosen, so no two
/// are the same; nothing else binds that address, so they stay free until
/// the apps bind them.
fn choose_app_ports(address: Ipv4Addr, inbound: &[u16]) -> std::io::Result<BTreeMap<u16, u16>> {
    let mut held = Vec::with_capacity(inbound.len());
    let mut ports = BTreeMap::new();
    for &port in inbound {
        let listener = TcpListener::bind((address, 0))?;
        ports.insert(port, listener.local_addr()?.port());
        held.push(listener);
    }
    Ok(ports)
}

/// `trellis proxy` for `workload`, trusting the mesh root and
/// authenticating with the workload's token. In a namespace of its own
/// its traffic is captured (REDIRECT), and a gateway binds real ports.
pub(crate) fn proxy(
    paths: &Paths,
    control_plane: &ControlPlaneState,
    workload: &WorkloadState,
) -> anyhow::Result<Vec<String>> {
    let mut command: Vec<String> = [
        &paths.exe,
        "proxy",
        "--discovery-address",
        &control_plane.secure_address.to_string(),
        "--root-cert",
        utf8(&paths.root_cert)?,
        "--token-file",
        utf8(&workload.token_file)?,
        "--ip",
        &workload.address.to_string(),
        "--namespace",
        &workload.namespace,
        "--service-account",
        &workload.service_account,
        "--pod-name",
        &workload.pod,
        "--workload-name",
        &workload.name,
        "--outbound-port",
        &workload.outbound_port.to_string(),
        "--admin-port",
        &workload.admin_port.to_string(),
        "--stats-port",
        &workload.stats_port.to_string(),
        "--health-port",
        &workload.health_port.to_string(),
    ]
    .map(str::to_owned)
    .to_vec();
    if workload.proxy_type == ProxyRole::Router {
        let credentials = super::ingress_gateway::credentials_dir(paths);
        command.extend([
            "--type".to_owned(),
            "router".to_owned(),
            "--credentials-dir".to_owned(),
            utf8(&credentials)?.to_owned(),
        ]);
    }
    for (key, value) in &workload.labels {
        command.extend(["--label".to_owned(), format!("{key}={value}")]);
    }
    if workload.netns.is_some() {
        command.extend(["--interception-mode".to_owned(), "REDIRECT".to_owned()]);
        return Ok(command);
    }
    for (container_port, app_port) in &workload.app_ports {
        command.extend([
            "--app-port".to_owned(),
            format!("{container_port}={app_port}"),
        ]);
    }
    Ok(command)
}

/// `trellis demo-app` standing in for one container of `workload`: on its
/// private ports, calling through its sidecar's HTTP proxy; or, in a
/// namespace of its own, on its container ports, calling Services by name
/// (capture takes the calls to the sidecar).
pub(crate) fn demo_app(
    exe: &str,
    plan: &WorkloadPlan,
    workload: &WorkloadState,
    container: &ContainerPlan,
) -> Vec<String> {
    let app = &plan.app;
    let mut command: Vec<String> = [
        exe,
        "demo-app",
        "--service",
        &app.service,
        "--version",
        &app.version,
        "--pod",
        &workload.pod,
        "--namespace",
        &workload.namespace,
        "--latency",
        &format!("{}ms", app.latency.as_secs_f64() * 1000.0),
        "--error-rate",
        &app.error_rate.to_string(),
    ]
    .map(str::to_owned)
    .to_vec();
    let listen_ip = match workload.netns {
        // Like a container: every address of the pod.
        Some(_) => Ipv4Addr::UNSPECIFIED,
        None => {
            command.extend(["--outbound-proxy".to_owned(), workload.outbound_proxy_url()]);
            workload.address
        }
    };
    for port in &container.ports {
        let private = workload.app_ports[port];
        command.extend(["--listen".to_owned(), format!("{listen_ip}:{private}")]);
    }
    command
}

/// Each Service's URL: its first port's target on its first workload's
/// address, where the sidecar listens; productpage's page for Bookinfo.
pub(crate) fn services(plan: &MeshPlan, workloads: &[WorkloadState]) -> Vec<ServiceState> {
    let mut states = Vec::new();
    for service in &plan.services {
        let target = plan
            .workloads
            .iter()
            .zip(workloads)
            .find_map(|(planned, placed)| {
                let selected = planned.namespace == service.namespace;
                let port = planned
                    .service_targets
                    .get(&service.name)
                    .filter(|_| selected)?;
                Some((placed.address, *port))
            });
        let Some((address, port)) = target else {
            continue;
        };
        let path = if service.name == "productpage" {
            "/productpage"
        } else {
            "/"
        };
        states.push(ServiceState {
            name: service.name.clone(),
            namespace: service.namespace.clone(),
            url: format!("http://{address}:{port}{path}"),
        });
    }
    states
}

fn utf8(path: &Path) -> anyhow::Result<&str> {
    path.to_str()
        .with_context(|| format!("path {} is not UTF-8", path.display()))
}

#[cfg(test)]
mod tests;
