//! Pods for the capture end-to-end tests: a control plane in the hub,
//! sidecars under `trellis iptables` capture, apps, and what those pods'
//! apps do (HTTP and TCP calls with no proxy settings).

use std::io::{Read as _, Write as _};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use trellis_testbed::netns::Netns;

const TRELLIS: &str = env!("CARGO_BIN_EXE_trellis");
const PROXY_UID: u32 = 1337;
const DEADLINE: Duration = Duration::from_secs(60);

/// A temporary directory the proxies (uid 1337) can read, holding the
/// control plane's config (`mesh`) and a token for each of `pods` (whose
/// service account is the pod's name).
pub fn state_dir(mesh: &str, pods: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("trellis-capture-")
        .tempdir()
        .unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let config = dir.path().join("config");
    std::fs::create_dir(&config).unwrap();
    write_readable(&config.join("mesh.yaml"), mesh);
    let tokens: Vec<String> = pods
        .iter()
        .map(|pod| {
            format!(
                r#"{{"token":"token-of-{pod}","namespace":"default","serviceAccount":"{pod}"}}"#
            )
        })
        .collect();
    let tokens = format!(r#"{{"tokens":[{}]}}"#, tokens.join(","));
    write_readable(&dir.path().join("tokens.json"), &tokens);
    for pod in pods {
        write_readable(
            &dir.path().join(format!("{pod}.token")),
            &format!("token-of-{pod}"),
        );
    }
    dir
}

pub fn write_readable(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644)).unwrap();
}

/// Starts the control plane in the hub and waits until it serves; returns its pid.
pub fn start_control_plane(hub: &Netns, dir: &Path, policy: &str) -> u32 {
    let root_cert = dir.join("root-cert.pem");
    let _ = std::fs::remove_file(&root_cert);
    let mut command = Command::new(TRELLIS);
    command
        .arg("control-plane")
        .arg("--config-dir")
        .arg(dir.join("config"))
        .args(["--listen-address", &hub.address.to_string()])
        .arg("--ca-dir")
        .arg(dir.join("ca"))
        .arg("--workload-tokens")
        .arg(dir.join("tokens.json"))
        .arg("--root-cert-out")
        .arg(&root_cert)
        .args(["--outbound-traffic-policy", policy]);
    // Every sidecar appends to one file they may all write.
    let access_log = dir.join("access.log");
    write_readable(&access_log, "");
    std::fs::set_permissions(&access_log, std::fs::Permissions::from_mode(0o666)).unwrap();
    command.arg("--access-log-file").arg(&access_log);
    let log = dir.join(format!("control-plane-{policy}.log"));
    let pid = hub
        .spawn(command, &log)
        .expect("starting the control plane");
    let secure = SocketAddr::new(hub.address, 15012);
    let serving = eventually(|| {
        root_cert.exists()
            && hub.enter(|| TcpStream::connect_timeout(&secure, Duration::from_secs(1)).is_ok())
    });
    assert!(serving, "control plane not serving:\n{}", read(&log));
    std::fs::set_permissions(&root_cert, std::fs::Permissions::from_mode(0o644)).unwrap();
    pid
}

/// Installs capture in `pod` and starts its sidecar as uid 1337, as an
/// injected pod's init container and `istio-proxy` container would.
pub fn start_sidecar(pod: &Netns, name: &str, hub: &Netns, dir: &Path) {
    pod.exec_ok(TRELLIS, &["iptables"])
        .expect("installing capture");
    let mut command = Command::new(TRELLIS);
    command
        .arg("proxy")
        .args(["--discovery-address", &format!("{}:15012", hub.address)])
        .arg("--root-cert")
        .arg(dir.join("root-cert.pem"))
        .arg("--token-file")
        .arg(dir.join(format!("{name}.token")))
        .args(["--ip", &pod.address.to_string()])
        .args(["--service-account", name])
        .args(["--pod-name", &format!("{name}-0")])
        .args(["--workload-name", name])
        .args(["--label", &format!("app={name}")])
        .args(["--interception-mode", "REDIRECT"])
        .uid(PROXY_UID)
        .gid(PROXY_UID);
    let log = dir.join(format!("proxy-{name}.log"));
    pod.spawn(command, &log).expect("starting the sidecar");
    let health = format!("{}:15021", pod.address);
    let ready =
        eventually(|| http_get(pod, &health, "/healthz/ready").is_ok_and(|(s, _)| s == 200));
    assert!(ready, "sidecar of {name} not ready:\n{}", read(&log));
}

/// The demo echo app of Service `service`, listening on `pod`'s address.
pub fn start_app(pod: &Netns, service: &str, port: u16, dir: &Path) {
    let mut command = Command::new(TRELLIS);
    command
        .args([
            "demo-app",
            "--service",
            service,
            "--pod",
            &format!("{service}-0"),
        ])
        .args(["--listen", &format!("{}:{port}", pod.address)]);
    pod.spawn(command, &dir.join(format!("app-{service}.log")))
        .expect("starting the app");
}

pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Whether `check` holds within the deadline (polled).
pub fn eventually(mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + DEADLINE;
    while Instant::now() < deadline {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    false
}

/// An HTTP/1.1 GET from inside `pod`, as its app would make it (no proxy
/// settings): the status and the whole response text.
pub fn http_get(pod: &Netns, host: &str, path: &str) -> std::io::Result<(u16, String)> {
    http_get_as(pod, host, host, path)
}

/// [`http_get`] to `target` (IP:PORT) with another `Host` header.
pub fn http_get_as(
    pod: &Netns,
    target: &str,
    host: &str,
    path: &str,
) -> std::io::Result<(u16, String)> {
    let target: SocketAddr = target.parse().expect("IP:PORT");
    pod.enter(|| {
        let mut stream = TcpStream::connect_timeout(&target, Duration::from_secs(2))?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes())?;
        let mut response = String::new();
        stream.read_to_string(&mut response)?;
        let status = response
            .split(' ')
            .nth(1)
            .and_then(|code| code.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("not HTTP: {response:?}")))?;
        Ok((status, response))
    })
}

/// Sends `payload` from inside `pod`, half-closes, and reads until the
/// server closes.
pub fn tcp_round_trip(
    pod: &Netns,
    ip: &str,
    port: u16,
    payload: &[u8],
) -> std::io::Result<Vec<u8>> {
    let target = SocketAddr::new(ip.parse::<IpAddr>().expect("IP"), port);
    pod.enter(|| {
        let mut stream = TcpStream::connect_timeout(&target, Duration::from_secs(2))?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        stream.write_all(payload)?;
        stream.shutdown(std::net::Shutdown::Write)?;
        let mut reply = Vec::new();
        stream.read_to_end(&mut reply)?;
        if reply.is_empty() {
            return Err(std::io::Error::other("closed without a reply"));
        }
        Ok(reply)
    })
}

/// A TCP server in a pod that answers `echo:` + what it read, once the
/// client half-closes. Stops when dropped.
pub struct EchoServer {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl EchoServer {
    pub fn start(pod: &Netns, port: u16) -> EchoServer {
        let listener = pod
            .enter(|| TcpListener::bind((pod.address, port)))
            .expect("binding the echo server");
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::spawn(move || {
            while !stopping.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => echo(stream),
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        EchoServer {
            stop,
            thread: Some(thread),
        }
    }
}

fn echo(mut stream: TcpStream) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut received = Vec::new();
    if stream.read_to_end(&mut received).is_ok() {
        let _ = stream.write_all(&[b"echo:".as_slice(), &received].concat());
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
