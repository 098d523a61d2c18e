//! `trellis iptables` end to end with the real binary. The capture tests
//! need root: they build a pod in network namespaces of their own (the
//! pod, and a peer behind a veth pair), install the rules inside the pod
//! with `ip netns exec POD trellis iptables`, and follow real connections.
//! Without root they skip with a message; CI runs as root.

use std::fs::File;
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::MetadataExt as _;
use std::os::unix::process::CommandExt as _;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const TRELLIS: &str = env!("CARGO_BIN_EXE_trellis");
const POD: &str = "10.211.0.1";
const PEER: &str = "10.211.0.2";
const PROXY_UID: u32 = 1337;

fn is_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|proc_self| proc_self.uid() == 0)
}

fn skip_without_root(test: &str) -> bool {
    if is_root() {
        return false;
    }
    eprintln!("skipping {test}: it needs root to create network namespaces (CI runs as root)");
    true
}

fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|error| panic!("running {program} {args:?}: {error}"))
}

fn run_ok(program: &str, args: &[&str]) -> String {
    let output = run(program, args);
    assert!(
        output.status.success(),
        "{program} {args:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A network namespace deleted on drop, even when the test fails.
struct Netns {
    name: String,
}

impl Netns {
    /// `name` must be unique among this file's tests, which run in parallel.
    fn create(name: &str) -> Netns {
        let name = format!("trellis-ipt-{name}-{}", std::process::id());
        run_ok("ip", &["netns", "add", &name]);
        let netns = Netns { name };
        netns.ip(&["link", "set", "lo", "up"]);
        netns
    }

    fn ip(&self, args: &[&str]) {
        let mut full = vec!["-n", &self.name];
        full.extend_from_slice(args);
        run_ok("ip", &full);
    }

    fn exec_ok(&self, program: &str, args: &[&str]) -> String {
        let mut full = vec!["netns", "exec", &self.name, program];
        full.extend_from_slice(args);
        run_ok("ip", &full)
    }

    /// Runs `work` on a thread that joined this namespace: sockets it
    /// opens and processes it starts live there.
    fn enter<T: Send>(&self, work: impl FnOnce() -> T + Send) -> T {
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
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = run("ip", &["netns", "del", &self.name]);
    }
}

/// A pod namespace at 10.211.0.1 and a peer at 10.211.0.2, joined by a
/// veth pair: the only addresses these tests use.
fn pod_and_peer(test: &str) -> (Netns, Netns) {
    let pod = Netns::create(&format!("{test}-pod"));
    let peer = Netns::create(&format!("{test}-peer"));
    pod.ip(&[
        "link", "add", "eth0", "type", "veth", "peer", "name", "eth1",
    ]);
    pod.ip(&["link", "set", "eth1", "netns", &peer.name]);
    for (netns, device, address) in [(&pod, "eth0", POD), (&peer, "eth1", PEER)] {
        netns.ip(&["addr", "add", &format!("{address}/24"), "dev", device]);
        netns.ip(&["link", "set", device, "up"]);
    }
    (pod, peer)
}

fn listen(port: u16) -> TcpListener {
    let listener = TcpListener::bind(("0.0.0.0", port)).expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    listener
}

/// The connection waiting on `listener`, if one arrives within `limit`.
fn accept_within(listener: &TcpListener, limit: Duration) -> Option<TcpStream> {
    let deadline = Instant::now() + limit;
    loop {
        match listener.accept() {
            Ok((stream, _)) => return Some(stream),
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {
                if Instant::now() >= deadline {
                    return None;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(error) => panic!("accept: {error}"),
        }
    }
}

fn connect(address: &str, port: u16) -> TcpStream {
    let target = SocketAddr::new(address.parse().expect("address"), port);
    TcpStream::connect_timeout(&target, Duration::from_secs(2))
        .unwrap_or_else(|error| panic!("connecting to {target}: {error}"))
}

/// Connects from a process running as `uid` (as the proxy does), with
/// bash's /dev/tcp: the owner match sees the socket's creator.
fn connect_as(uid: u32, address: &str, port: u16) {
    let status = Command::new("bash")
        .args([
            "-c",
            r#"exec 3<>"/dev/tcp/$0/$1""#,
            address,
            &port.to_string(),
        ])
        .uid(uid)
        .gid(uid)
        .status()
        .expect("running bash");
    assert!(
        status.success(),
        "uid {uid} could not connect to {address}:{port}"
    );
}

/// Asserts that the connection `client` opened arrived at `listener` and
/// carries data both ways.
fn assert_lands_on(listener: &TcpListener, mut client: TcpStream, what: &str) {
    let mut server = accept_within(listener, Duration::from_secs(2))
        .unwrap_or_else(|| panic!("{what}: no connection arrived"));
    assert_eq!(
        server.peer_addr().ok(),
        client.local_addr().ok(),
        "{what}: another connection arrived"
    );
    server.set_nonblocking(false).expect("blocking");
    client.write_all(b"ping").expect("write");
    let mut received = [0; 4];
    server.read_exact(&mut received).expect("read");
    assert_eq!(&received, b"ping", "{what}");
}

/// `iptables-save` without its timestamped comments.
fn saved_rules(netns: &Netns, tool: &str) -> String {
    let saved = netns.exec_ok(tool, &[]);
    saved
        .lines()
        .filter(|line| !line.starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The rules (`-A` lines) of `iptables-save`: what cleanup must restore.
fn rules_only(saved: &str) -> Vec<&str> {
    saved
        .lines()
        .filter(|line| line.starts_with("-A "))
        .collect()
}

/// A rule of the user's own, which install and cleanup must keep.
fn add_users_rule(netns: &Netns) {
    netns.exec_ok(
        "iptables",
        &[
            "-t", "nat", "-A", "OUTPUT", "-p", "udp", "--dport", "53", "-j", "RETURN",
        ],
    );
}

#[test]
fn dry_run_prints_the_rules_without_root() {
    let output = run(
        TRELLIS,
        &[
            "iptables",
            "--dry-run",
            "-m",
            "TPROXY",
            "-i",
            "10.96.0.0/12",
        ],
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let rules = String::from_utf8_lossy(&output.stdout);
    for expected in [
        "# IPv4: iptables-restore --noflush",
        ":ISTIO_TPROXY - [0:0]",
        "-A ISTIO_OUTPUT -d 10.96.0.0/12 -j ISTIO_REDIRECT",
        "# IPv6: ip6tables-restore --noflush",
        "# ip -4 rule add fwmark 1337 lookup 133",
    ] {
        assert!(
            rules.contains(expected),
            "missing {expected:?} in:\n{rules}"
        );
    }
}

#[test]
fn changing_rules_without_privileges_is_refused_clearly() {
    let mut command = Command::new(TRELLIS);
    command.arg("iptables");
    if is_root() {
        command.uid(65534).gid(65534);
    }
    let output = command.output().expect("running trellis");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("needs CAP_NET_ADMIN"), "{stderr}");
}

#[test]
fn redirect_mode_captures_a_pods_traffic_and_cleans_up() {
    if skip_without_root("redirect_mode_captures_a_pods_traffic_and_cleans_up") {
        return;
    }
    let (pod, peer) = pod_and_peer("redirect");
    add_users_rule(&pod);
    let before = saved_rules(&pod, "iptables-save");
    pod.exec_ok(TRELLIS, &["iptables"]);
    let installed = saved_rules(&pod, "iptables-save");
    for chain in [
        "ISTIO_INBOUND",
        "ISTIO_REDIRECT",
        "ISTIO_IN_REDIRECT",
        "ISTIO_OUTPUT",
    ] {
        assert!(
            installed.contains(&format!(":{chain} - [0:0]")),
            "no {chain}:\n{installed}"
        );
    }
    assert!(
        installed.contains("-A OUTPUT -p tcp -j ISTIO_OUTPUT"),
        "{installed}"
    );
    assert!(saved_rules(&pod, "ip6tables-save").contains(":ISTIO_OUTPUT"));

    pod.exec_ok(TRELLIS, &["iptables"]);
    assert_eq!(
        saved_rules(&pod, "iptables-save"),
        installed,
        "a second run changed the rules"
    );

    check_redirect_capture(&pod, &peer);

    pod.exec_ok(TRELLIS, &["iptables", "--cleanup"]);
    assert_eq!(
        rules_only(&saved_rules(&pod, "iptables-save")),
        rules_only(&before)
    );
    assert!(!saved_rules(&pod, "ip6tables-save").contains("ISTIO"));
    pod.exec_ok(TRELLIS, &["iptables", "--cleanup"]);
}

fn check_redirect_capture(pod: &Netns, peer: &Netns) {
    let peer_app = peer.enter(|| listen(80));
    pod.enter(|| {
        let (outbound, inbound, app, health) =
            (listen(15001), listen(15006), listen(8080), listen(15021));
        assert_lands_on(&outbound, connect(PEER, 80), "outbound from the app");
        assert_lands_on(&app, connect(POD, 8080), "the app calling itself over lo");

        connect_as(PROXY_UID, PEER, 80);
        assert!(
            accept_within(&peer_app, Duration::from_secs(2)).is_some(),
            "the proxy's own call was captured"
        );
        assert!(accept_within(&outbound, Duration::ZERO).is_none());

        connect_as(PROXY_UID, POD, 8080);
        assert!(
            accept_within(&inbound, Duration::from_secs(2)).is_some(),
            "proxy to its own pod not sent inbound"
        );
        assert!(accept_within(&app, Duration::ZERO).is_none());

        let (from_peer, to_health) = peer.enter(|| (connect(POD, 8080), connect(POD, 15021)));
        assert_lands_on(&inbound, from_peer, "inbound from the peer");
        assert_lands_on(&health, to_health, "inbound to an excluded port");
    });
}

#[test]
fn tproxy_mode_installs_marks_and_routes_and_cleans_up() {
    if skip_without_root("tproxy_mode_installs_marks_and_routes_and_cleans_up") {
        return;
    }
    let (pod, _peer) = pod_and_peer("tproxy");
    add_users_rule(&pod);
    let before = saved_rules(&pod, "iptables-save");
    pod.exec_ok(TRELLIS, &["iptables", "-m", "TPROXY"]);
    let installed = saved_rules(&pod, "iptables-save");
    for expected in [
        ":ISTIO_DIVERT - [0:0]",
        ":ISTIO_TPROXY - [0:0]",
        "-A PREROUTING -p tcp -j ISTIO_INBOUND",
    ] {
        assert!(
            installed.contains(expected),
            "missing {expected:?}:\n{installed}"
        );
    }
    assert!(
        installed.contains("--comment trellis-capture -j CONNMARK --save-mark"),
        "{installed}"
    );
    assert!(
        pod.exec_ok("ip", &["-4", "rule", "show"])
            .contains("fwmark 0x539 lookup 133")
    );
    assert!(
        pod.exec_ok("ip", &["-6", "route", "show", "table", "133"])
            .contains("local default dev lo")
    );

    // Switching modes replaces the TPROXY chains instead of stacking.
    pod.exec_ok(TRELLIS, &["iptables", "-m", "REDIRECT"]);
    let redirect = saved_rules(&pod, "iptables-save");
    assert!(
        !redirect.contains("ISTIO_TPROXY") && !redirect.contains("trellis-capture"),
        "{redirect}"
    );

    pod.exec_ok(TRELLIS, &["iptables", "-m", "TPROXY"]);
    pod.exec_ok(TRELLIS, &["iptables", "--cleanup"]);
    assert_eq!(
        rules_only(&saved_rules(&pod, "iptables-save")),
        rules_only(&before)
    );
    assert!(
        !pod.exec_ok("ip", &["-4", "rule", "show"])
            .contains("lookup 133")
    );
    assert!(
        pod.exec_ok("ip", &["-4", "route", "show", "table", "133"])
            .trim()
            .is_empty()
    );
    assert!(!saved_rules(&pod, "ip6tables-save").contains("ISTIO"));
}
