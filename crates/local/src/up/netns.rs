//! `trellis up --netns` (root): every workload in a network namespace of
//! its own, as in a Kubernetes pod.
//!
//! - A bridge `trellis-ID` in the host's namespace holds the first address
//!   of a private range that no host route covers (10.42.0.0/16 unless
//!   taken); the control plane listens there.
//! - Each workload gets a namespace `trellis-ID-POD`: `eth0` (a veth pair
//!   into the bridge) with the pod's address, `lo` up, a default route via
//!   the bridge, and `/etc/netns/NAME/hosts` naming every Service at its
//!   cluster IP (see `vips.rs`), which its processes see as `/etc/hosts`
//!   (as under `ip netns exec`).
//! - Sidecar pods get `trellis iptables` capture, as from an init
//!   container; their proxy runs as uid/gid 1337 in REDIRECT mode and their
//!   apps as `nobody`, with no proxy settings. The gateway's namespace
//!   lets unprivileged processes bind ports below 1024, so it serves a
//!   Gateway's real ports (80, 443).
//! - `ID` derives from the state directory; a running `up` holds
//!   `/run/trellis/up-ID.lock`, and resources of ids nobody holds are
//!   removed at start (see `stale.rs`). Everything is removed at exit.

mod bridge;
mod command;
mod enter;
mod pod;
mod stale;
mod vips;

use std::fs::File;
use std::io;
use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use nix::fcntl::Flock;
use nix::unistd::{Gid, Uid, chown};

pub(crate) use enter::PodEntry;
pub(crate) use pod::hosts_file;
pub(crate) use vips::{RewriteError, ServiceAddress, allocated, assign, with_cluster_ip};

use super::addresses::{AddressRange, AddressRangeError};
use super::state::{ProxyRole, UpState};

/// The sidecar's (and gateway's) uid and gid, as Istio's proxy image; the
/// capture rules exclude its traffic.
pub const PROXY_UID: u32 = 1337;
/// Apps run as `nobody`: any uid but the proxy's is captured.
pub const APP_UID: u32 = 65534;
/// Where Services without a `clusterIP` get one (Kubernetes' default
/// service range starts here too).
pub const DEFAULT_SERVICE_RANGE: &str = "10.96.0.0/16";

/// Why `--netns` could not set up (or tear down) the pods' network.
#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    #[error(
        "--netns needs root to create network namespaces, a bridge and iptables rules, \
         but this is uid {0}: run it with sudo, or run `trellis up` without --netns"
    )]
    NotRoot(u32),
    #[error("--netns needs `{0}`, which is not on the PATH (install {1})")]
    MissingTool(&'static str, &'static str),
    #[error("running `{command}`")]
    Spawn {
        command: String,
        #[source]
        source: io::Error,
    },
    #[error("`{command}` failed: {output}")]
    Command { command: String, output: String },
    #[error("{what}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },
    #[error(
        "address range {range} overlaps {other}: choose another --address-range or --service-range"
    )]
    RangeOverlap { range: AddressRange, other: String },
    #[error("every 10.42-95.0.0/16 range is routed on this host: pass a free --address-range")]
    NoFreeRange,
    #[error(
        "another `trellis up --netns` is running with state dir id {0}: use another --state-dir"
    )]
    InUse(String),
    #[error(
        "the proxies (uid {PROXY_UID}) cannot reach the state dir: {dir} has mode {mode:o}; \
         choose a --state-dir under directories others may traverse"
    )]
    Unreachable { dir: PathBuf, mode: u32 },
    #[error(transparent)]
    Addresses(#[from] AddressRangeError),
}

/// Refuses `--netns` early, with the reason, when it cannot work here.
pub(crate) fn preflight() -> Result<(), NetnsError> {
    let uid = nix::unistd::geteuid();
    if !uid.is_root() {
        return Err(NetnsError::NotRoot(uid.as_raw()));
    }
    for (tool, package) in [("ip", "iproute2"), ("iptables-restore", "iptables")] {
        if !command::installed(tool) {
            return Err(NetnsError::MissingTool(tool, package));
        }
    }
    Ok(())
}

/// The bridge and the pods' namespaces of one `up --netns`, removed when
/// dropped (after `up` has stopped the processes in them).
pub(crate) struct Network {
    id: String,
    bridge: String,
    bridge_address: Ipv4Addr,
    range: AddressRange,
    service_range: AddressRange,
    namespaces: Vec<String>,
    lock: Option<Flock<File>>,
}

impl Network {
    /// Removes leftovers of killed runs, then creates the bridge at the
    /// first address of `given` (or of a free range).
    pub fn create(
        state_dir: &Path,
        given: Option<AddressRange>,
        service_range: AddressRange,
    ) -> Result<Network, NetnsError> {
        preflight()?;
        let id = stale::run_id(state_dir);
        let lock = stale::try_lock(&id)?.ok_or_else(|| NetnsError::InUse(id.clone()))?;
        stale::clean_stale(&id)?;
        stale::remove_all(&id, &stale::prefixed_namespaces()?)?;
        let setup = stale::lock_network_setup()?;
        let routes = bridge::host_routes()?;
        bridge::check_service_range(&service_range, &routes)?;
        let range = bridge::choose_range(given, &service_range, &routes)?;
        let network = Network {
            bridge: format!("{}{id}", stale::PREFIX),
            id,
            bridge_address: range.allocator().allocate()?,
            range,
            service_range,
            namespaces: Vec::new(),
            lock: Some(lock),
        };
        bridge::create(&network.bridge, network.bridge_address, range.prefix())?;
        drop(setup);
        Ok(network)
    }

    /// The pods' range; its first address is the bridge's.
    pub fn range(&self) -> AddressRange {
        self.range
    }

    pub fn service_range(&self) -> AddressRange {
        self.service_range
    }

    pub fn bridge(&self) -> &str {
        &self.bridge
    }

    /// Creates `pod`'s namespace at `address` and returns its name.
    pub fn add_pod(&mut self, pod: &str, address: Ipv4Addr) -> Result<String, NetnsError> {
        let name = format!("{}{}-{pod}", stale::PREFIX, self.id);
        let host_veth = stale::veth_name(&self.id, self.namespaces.len());
        // Recorded first, so that a half-made namespace is removed too.
        self.namespaces.push(name.clone());
        let link = pod::Attachment {
            bridge: &self.bridge,
            host_veth: &host_veth,
            gateway: self.bridge_address,
            prefix: self.range.prefix(),
        };
        pod::create(&name, address, &link)?;
        Ok(name)
    }

    /// Removes every namespace, hosts file and the bridge, and releases
    /// the run's lock. Idempotent.
    pub fn teardown(&mut self) -> Result<(), NetnsError> {
        let Some(lock) = self.lock.take() else {
            return Ok(());
        };
        let removed = stale::remove_all(&self.id, &self.namespaces);
        stale::release(&self.id, lock);
        removed
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        if let Err(error) = self.teardown() {
            eprintln!("up: removing the pods' network: {error}");
        }
    }
}

/// Prepares each workload's namespace once the config is written: its
/// hosts file, then capture (sidecars) or low ports (gateways).
pub(crate) fn prepare_pods(
    state: &UpState,
    services: &[ServiceAddress],
    trellis: &str,
) -> Result<(), NetnsError> {
    for workload in &state.workloads {
        let Some(name) = workload.netns.as_deref() else {
            continue;
        };
        let names: Vec<pod::ServiceNames<'_>> = services
            .iter()
            .map(|service| pod::ServiceNames {
                name: &service.name,
                namespace: &service.namespace,
                same_namespace: service.namespace == workload.namespace,
                addresses: &service.addresses,
            })
            .collect();
        pod::write_hosts(
            name,
            &pod::hosts_text(&workload.pod, workload.address, &names),
        )?;
        match workload.proxy_type {
            ProxyRole::Sidecar => pod::install_capture(name, trellis)?,
            ProxyRole::Router => pod::allow_low_ports(name)?,
        }
    }
    Ok(())
}

/// Lets the proxies (uid 1337) read what they need: the state directory
/// traversable, each token file theirs. The directories above it are the
/// user's: one the proxies cannot traverse is refused, by name.
pub(crate) fn share_with_proxies(state: &UpState) -> Result<(), NetnsError> {
    let io = |what: String| move |source| NetnsError::Io { what, source };
    let root = &state.state_dir;
    for ancestor in root.ancestors().skip(1) {
        let mode = std::fs::metadata(ancestor)
            .map_err(io(format!("reading {}", ancestor.display())))?
            .permissions()
            .mode();
        if mode & 0o001 == 0 {
            return Err(NetnsError::Unreachable {
                dir: ancestor.to_path_buf(),
                mode: mode & 0o7777,
            });
        }
    }
    let mode = std::fs::metadata(root)
        .map_err(io(format!("reading {}", root.display())))?
        .permissions()
        .mode();
    std::fs::set_permissions(root, std::fs::Permissions::from_mode(mode | 0o111))
        .map_err(io(format!("opening {} to the proxies", root.display())))?;
    let proxy = (
        Some(Uid::from_raw(PROXY_UID)),
        Some(Gid::from_raw(PROXY_UID)),
    );
    for workload in &state.workloads {
        let token = &workload.token_file;
        chown(token, proxy.0, proxy.1).map_err(|errno| {
            io(format!("giving {} to uid {PROXY_UID}", token.display()))(errno.into())
        })?;
    }
    Ok(())
}

/// Makes the mesh root readable by the proxies (it is public).
pub(crate) fn share_root_cert(path: &Path) -> Result<(), NetnsError> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644)).map_err(|source| {
        NetnsError::Io {
            what: format!("making {} readable", path.display()),
            source,
        }
    })
}

/// How a process of `netns` enters it: as `uid`, with its hosts file.
pub(crate) fn entry(netns: &str, uid: u32) -> Result<PodEntry, NetnsError> {
    PodEntry::new(netns, &hosts_file(netns), uid)
}
