//! Network namespaces for end-to-end tests that need real capture (root
//! only): a hub namespace holding a bridge, and "pods" joined to it by veth
//! pairs, each with its own address and a default route via the hub. Every
//! namespace is deleted, and every process started in it killed, on drop,
//! even when the test fails.
//!
//! ```no_run
//! # fn scenario() -> anyhow::Result<()> {
//! use trellis_testbed::netns::Star;
//!
//! let star = Star::new("my_test", [10, 213, 0], &["a", "b"])?;
//! let a = star.pod("a");
//! a.exec_ok("ip", &["addr"])?;
//! let server = a.enter(|| std::net::TcpListener::bind((a.address, 8080)))?;
//! # Ok(()) }
//! ```

use std::fs::File;
use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::fs::MetadataExt as _;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;

use anyhow::{Context as _, bail};

/// Whether this process may create namespaces and install iptables rules.
pub fn is_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|proc_self| proc_self.uid() == 0)
}

/// Why a namespace test cannot run here, if it cannot (not root, or `ip`
/// or `iptables-restore` missing).
pub fn unavailable() -> Option<String> {
    if !is_root() {
        return Some("it needs root to create network namespaces (CI runs as root)".into());
    }
    for tool in ["ip", "iptables-restore"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !found {
            return Some(format!("`{tool}` is not installed"));
        }
    }
    None
}

fn run(program: &str, args: &[&str]) -> anyhow::Result<Output> {
    Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("running {program} {args:?}"))
}

fn run_ok(program: &str, args: &[&str]) -> anyhow::Result<String> {
    let output = run(program, args)?;
    if !output.status.success() {
        bail!(
            "{program} {args:?} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// One network namespace, with the processes started in it.
pub struct Netns {
    pub name: String,
    /// The namespace's address on the star's bridge.
    pub address: IpAddr,
    processes: Mutex<Vec<Child>>,
}

impl Netns {
    fn create(name: String, address: IpAddr) -> anyhow::Result<Netns> {
        run_ok("ip", &["netns", "add", &name])?;
        let netns = Netns {
            name,
            address,
            processes: Mutex::default(),
        };
        netns.ip(&["link", "set", "lo", "up"])?;
        Ok(netns)
    }

    /// `ip -n NAME ARGS...`
    pub fn ip(&self, args: &[&str]) -> anyhow::Result<()> {
        let mut full = vec!["-n", &self.name];
        full.extend_from_slice(args);
        run_ok("ip", &full).map(drop)
    }

    /// Runs a program inside the namespace (`ip netns exec`) and returns
    /// its output, failing when it fails.
    pub fn exec_ok(&self, program: &str, args: &[&str]) -> anyhow::Result<String> {
        let mut full = vec!["netns", "exec", &self.name, program];
        full.extend_from_slice(args);
        run_ok("ip", &full)
    }

    /// Runs `work` on a thread that joined this namespace: sockets it opens
    /// and processes it starts live here.
    pub fn enter<T: Send>(&self, work: impl FnOnce() -> T + Send) -> T {
        let path = format!("/run/netns/{}", self.name);
        std::thread::scope(|scope| {
            let thread = scope.spawn(|| {
                let netns = File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
                nix::sched::setns(&netns, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
                work()
            });
            thread
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }

    /// Starts `command` in the namespace, its output appended to `log`;
    /// it is killed when the namespace is dropped, or by [`Netns::stop`].
    /// Returns its process id.
    pub fn spawn(&self, mut command: Command, log: &Path) -> anyhow::Result<u32> {
        let out = File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let err = out.try_clone()?;
        command.stdin(Stdio::null()).stdout(out).stderr(err);
        let child = self
            .enter(|| command.spawn())
            .with_context(|| format!("starting {command:?} in {}", self.name))?;
        let pid = child.id();
        self.processes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(child);
        Ok(pid)
    }

    /// Kills and reaps the process `pid` started with [`Netns::spawn`].
    pub fn stop(&self, pid: u32) {
        let mut processes = self.processes.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(index) = processes.iter().position(|c| c.id() == pid) {
            let mut child = processes.swap_remove(index);
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let processes = self.processes.get_mut().unwrap_or_else(|e| e.into_inner());
        for child in processes.iter_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = run("ip", &["netns", "del", &self.name]);
    }
}

/// A hub namespace with a bridge at `PREFIX.1/24` and pods at `PREFIX.2`,
/// `PREFIX.3`, ... in the order given, each routing everything via the hub.
pub struct Star {
    /// Dropped before the hub, whose bridge their veth pairs join.
    pods: Vec<(String, Netns)>,
    pub hub: Netns,
}

impl Star {
    /// Namespace names derive from `test` and this process, so tests (and
    /// concurrent test runs) never share one.
    pub fn new(test: &str, prefix: [u8; 3], pods: &[&str]) -> anyhow::Result<Star> {
        let address = |host: u8| IpAddr::V4(Ipv4Addr::new(prefix[0], prefix[1], prefix[2], host));
        let name = |role: &str| format!("tr-{test}-{role}-{}", std::process::id());
        let hub = Netns::create(name("hub"), address(1))?;
        hub.ip(&["link", "add", "br0", "type", "bridge"])?;
        hub.ip(&["addr", "add", &format!("{}/24", hub.address), "dev", "br0"])?;
        hub.ip(&["link", "set", "br0", "up"])?;
        let mut star = Star {
            pods: Vec::new(),
            hub,
        };
        for (index, pod) in pods.iter().enumerate() {
            let host = u8::try_from(index + 2).context("too many pods")?;
            let netns = Netns::create(name(pod), address(host))?;
            star.join(&netns, &format!("veth{index}"))?;
            star.pods.push((pod.to_string(), netns));
        }
        Ok(star)
    }

    fn join(&self, pod: &Netns, hub_side: &str) -> anyhow::Result<()> {
        pod.ip(&[
            "link", "add", "eth0", "type", "veth", "peer", "name", hub_side,
        ])?;
        pod.ip(&["link", "set", hub_side, "netns", &self.hub.name])?;
        self.hub.ip(&["link", "set", hub_side, "master", "br0"])?;
        self.hub.ip(&["link", "set", hub_side, "up"])?;
        pod.ip(&["addr", "add", &format!("{}/24", pod.address), "dev", "eth0"])?;
        pod.ip(&["link", "set", "eth0", "up"])?;
        pod.ip(&[
            "route",
            "add",
            "default",
            "via",
            &self.hub.address.to_string(),
        ])
    }

    /// The pod named `name`; panics if the star has none.
    pub fn pod(&self, name: &str) -> &Netns {
        self.pods
            .iter()
            .find(|(pod, _)| pod == name)
            .map(|(_, netns)| netns)
            .unwrap_or_else(|| panic!("no pod {name}"))
    }

    /// Names of every namespace of the star.
    pub fn namespaces(&self) -> Vec<String> {
        let mut names: Vec<String> = self.pods.iter().map(|(_, n)| n.name.clone()).collect();
        names.push(self.hub.name.clone());
        names
    }
}

/// Namespaces that exist now (`ip netns list`).
pub fn existing_namespaces() -> anyhow::Result<Vec<String>> {
    let listed = run_ok("ip", &["netns", "list"])?;
    Ok(listed
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_string)
        .collect())
}
