//! Interop with a real proxyless gRPC client: Python's grpcio, with an xDS
//! bootstrap naming the control plane (`GENERATOR: grpc`, as Istio's
//! proxyless bootstrap), calls `xds:///echo.default.svc.cluster.local:7070`
//! served by two Python gRPC servers (v1, v2) registered as WorkloadEntries.
//! Checked: calls succeed; a DestinationRule's subsets with an 80/20
//! VirtualService split traffic within binomial bounds; a header match
//! routes to v2; a VirtualService edit to 100% v2 reaches the client live;
//! consistent hashing on a header becomes ring hash, each user sticking to
//! one version.
//!
//! grpcio comes from `scripts/test`; without it the test says so and skips.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use clap::Parser;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use trellis_control::ControlPlaneOptions;

const CONTROL_PLANE_IP: &str = "127.97.0.1";
const CLIENT_IP: &str = "127.97.0.20";
const SERVERS: [(&str, &str); 2] = [("v1", "127.97.0.11"), ("v2", "127.97.0.12")];
const SERVER_PORT: u16 = 17070;
const TARGET: &str = "xds:///echo.default.svc.cluster.local:7070";
/// The client's first call waits for the whole xDS exchange; later ones
/// for a pushed change. Generous: both usually take well under a second.
const CONVERGENCE: Duration = Duration::from_secs(60);
/// How long one batch of calls may take (each call has 5 s at most).
const BATCH_DEADLINE: Duration = Duration::from_secs(120);

const SERVICE: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: echo, namespace: default}
spec:
  ports:
  - {name: grpc, port: 7070, targetPort: 17070}
  selector: {app: echo}
"#;

const DESTINATION_RULE: &str = r#"
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: echo, namespace: default}
spec:
  host: echo.default.svc.cluster.local
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
"#;

/// Consistent hashing on a header for the whole service: gRPC's ring hash.
const HASHED_DESTINATION_RULE: &str = r#"
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: echo, namespace: default}
spec:
  host: echo.default.svc.cluster.local
  trafficPolicy:
    loadBalancer:
      consistentHash: {httpHeaderName: x-user}
"#;

/// Header `x-canary: true` to v2; the rest split v1 `v1_weight`%, v2 the rest.
fn virtual_service(v1_weight: u32) -> String {
    let v2_weight = 100 - v1_weight;
    format!(
        r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: echo, namespace: default}}
spec:
  hosts: [echo.default.svc.cluster.local]
  http:
  - match:
    - headers: {{x-canary: {{exact: "true"}}}}
    route:
    - destination: {{host: echo.default.svc.cluster.local, subset: v2}}
  - route:
    - destination: {{host: echo.default.svc.cluster.local, subset: v1}}
      weight: {v1_weight}
    - destination: {{host: echo.default.svc.cluster.local, subset: v2}}
      weight: {v2_weight}
"#
    )
}

fn workload_entry(version: &str, ip: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\n\
         metadata: {{name: echo-{version}-0, namespace: default}}\n\
         spec: {{address: {ip}, labels: {{app: echo, version: {version}}}, serviceAccount: echo}}\n"
    )
}

/// Istio's proxyless bootstrap, reduced to what grpcio reads: the
/// plaintext xDS address and a node that asks for the gRPC generator.
fn bootstrap() -> String {
    serde_json::json!({
        "xds_servers": [{
            "server_uri": format!("{CONTROL_PLANE_IP}:15010"),
            "channel_creds": [{"type": "insecure"}],
            "server_features": ["xds_v3"],
        }],
        "node": {
            "id": format!("sidecar~{CLIENT_IP}~echo-client-0.default~default.svc.cluster.local"),
            "cluster": "echo-client.default",
            "metadata": {
                "GENERATOR": "grpc",
                "INSTANCE_IPS": CLIENT_IP,
                "NAMESPACE": "default",
                "SERVICE_ACCOUNT": "echo-client",
                "WORKLOAD_NAME": "echo-client",
                "NAME": "echo-client-0",
                "LABELS": {"app": "echo-client"},
            },
        },
    })
    .to_string()
}

#[derive(Parser)]
struct ControlPlaneCommand {
    #[command(flatten)]
    options: ControlPlaneOptions,
}

/// `trellis control-plane` in this process; stopped on drop.
struct ControlPlane(tokio::task::JoinHandle<anyhow::Result<()>>);

impl ControlPlane {
    fn start(config_dir: &Path, ca_dir: &Path) -> ControlPlane {
        let argv = [
            "control-plane",
            "--listen-address",
            CONTROL_PLANE_IP,
            "--config-dir",
            config_dir.to_str().unwrap(),
            "--ca-dir",
            ca_dir.to_str().unwrap(),
        ];
        let options = ControlPlaneCommand::try_parse_from(argv).unwrap().options;
        ControlPlane(tokio::spawn(trellis_control::run(options)))
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A Python process; killed on drop (and it exits by itself when its
/// standard input closes).
struct Python {
    child: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Python {
    fn spawn(script: &str, args: &[&str], env: &[(&str, &Path)]) -> Python {
        let mut command = Command::new("python3");
        command
            .arg(scripts().join(script))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        // Quiet unless the one running the test asks grpcio for traces.
        if std::env::var_os("GRPC_VERBOSITY").is_none() {
            command.env("GRPC_VERBOSITY", "ERROR");
        }
        for (name, value) in env {
            command.env(name, value);
        }
        let mut child = command.spawn().expect("running python3");
        let stdin = child.stdin.take().unwrap();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        Python {
            child,
            stdin,
            lines,
        }
    }

    async fn next_line(&mut self, deadline: Duration) -> String {
        match tokio::time::timeout(deadline, self.lines.next_line()).await {
            Ok(Ok(Some(line))) => line,
            Ok(other) => panic!("python3 exited ({other:?}): {:?}", self.child.try_wait()),
            Err(_) => panic!("no answer from python3 within {deadline:?}"),
        }
    }
}

impl Drop for Python {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

fn scripts() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/proxyless_grpc")
}

/// Replies by version and failures by status code of one batch of calls.
#[derive(Debug, serde::Deserialize)]
struct Batch {
    replies: BTreeMap<String, u32>,
    errors: BTreeMap<String, u32>,
    last_error: Option<String>,
}

impl Batch {
    fn count(&self, version: &str) -> u32 {
        self.replies.get(version).copied().unwrap_or(0)
    }

    fn all(&self, version: &str, calls: u32) -> bool {
        self.errors.is_empty() && self.count(version) == calls
    }
}

struct Client(Python);

impl Client {
    async fn call(&mut self, calls: u32, header: Option<(&str, &str)>) -> Batch {
        let metadata: BTreeMap<&str, &str> = header.into_iter().collect();
        let command = serde_json::json!({"calls": calls, "metadata": metadata});
        let stdin = &mut self.0.stdin;
        stdin
            .write_all(format!("{command}\n").as_bytes())
            .await
            .unwrap();
        stdin.flush().await.unwrap();
        let line = self.0.next_line(BATCH_DEADLINE).await;
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"))
    }

    /// Calls in batches of `calls` until one satisfies `done`.
    async fn until(
        &mut self,
        what: &str,
        calls: u32,
        header: Option<(&str, &str)>,
        done: impl Fn(&Batch) -> bool,
    ) {
        let deadline = Instant::now() + CONVERGENCE;
        loop {
            let batch = self.call(calls, header).await;
            if done(&batch) {
                return;
            }
            assert!(Instant::now() < deadline, "{what}: last batch {batch:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn grpcio_installed() -> bool {
    std::process::Command::new("python3")
        .args(["-c", "import grpc"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// Writes `text` as `name` in the watched config dir, atomically so the
/// watcher never reads half a file.
fn put(dir: &Path, name: &str, text: &str) {
    let staging = dir.join(format!(".{name}.tmp"));
    std::fs::write(&staging, text).unwrap();
    std::fs::rename(&staging, dir.join(name)).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpcio_follows_subsets_weights_header_matches_and_live_changes() {
    if !grpcio_installed() {
        eprintln!(
            "skipped: Python's grpcio is not installed (scripts/test installs it: \
             python3 -m pip install grpcio)"
        );
        return;
    }
    let (config, ca, work) = (tempdir(), tempdir(), tempdir());
    put(config.path(), "service.yaml", SERVICE);
    let mut servers = Vec::new();
    for (version, ip) in SERVERS {
        put(
            config.path(),
            &format!("workload-{version}.yaml"),
            &workload_entry(version, ip),
        );
        let address = format!("{ip}:{SERVER_PORT}");
        let mut server = Python::spawn("echo_server.py", &[&address, version], &[]);
        assert_eq!(server.next_line(CONVERGENCE).await, "listening");
        servers.push(server);
    }
    let _control_plane = ControlPlane::start(config.path(), ca.path());
    let bootstrap_file = work.path().join("bootstrap.json");
    std::fs::write(&bootstrap_file, bootstrap()).unwrap();
    let env = [("GRPC_XDS_BOOTSTRAP", bootstrap_file.as_path())];
    let mut client = Client(Python::spawn("xds_client.py", &[TARGET], &env));

    // Resolved through LDS, RDS, CDS and EDS; round robin over both versions.
    client
        .until("calls succeed", 10, None, |b| b.errors.is_empty())
        .await;
    let batch = client.call(100, None).await;
    assert!(batch.errors.is_empty(), "{batch:?}");
    assert!(batch.count("v1") > 0 && batch.count("v2") > 0, "{batch:?}");
    // A short name, as Kubernetes DNS resolves it in the client's namespace.
    let mut short = Client(Python::spawn("xds_client.py", &["xds:///echo:7070"], &env));
    short
        .until("calls by short name", 10, None, |b| b.errors.is_empty())
        .await;
    drop(short);

    // Subsets, a header match and an 80/20 split. The header route is
    // waited for: under round robin, 30 replies from v2 in a row cannot happen.
    put(config.path(), "destination-rule.yaml", DESTINATION_RULE);
    put(config.path(), "virtual-service.yaml", &virtual_service(80));
    let canary = Some(("x-canary", "true"));
    client
        .until("the header route", 30, canary, |b| b.all("v2", 30))
        .await;
    let split = client.call(400, None).await;
    assert!(split.errors.is_empty(), "{split:?}");
    assert_eq!(split.count("v1") + split.count("v2"), 400, "{split:?}");
    // Binomial(400, 0.2): mean 80, standard deviation 8; five of them each way.
    let v2 = split.count("v2");
    eprintln!("80/20 over 400 calls: {:?}", split.replies);
    assert!((40..=120).contains(&v2), "v2 got {v2} of 400: {split:?}");
    let headed = client.call(50, canary).await;
    assert!(headed.all("v2", 50), "{headed:?}");

    // Everything to v2, live, on the same channel. Under 80/20, 30 replies
    // from v2 in a row have a chance of 0.2^30.
    put(config.path(), "virtual-service.yaml", &virtual_service(0));
    client
        .until("the edited split", 30, None, |b| b.all("v2", 30))
        .await;
    let after = client.call(200, None).await;
    assert!(after.all("v2", 200), "{after:?}");
    assert!(after.last_error.is_none(), "{after:?}");

    // Back to round robin over both (impossible under 100% v2), then ring
    // hash on `x-user`: each user sticks to one version (impossible under
    // round robin, which alternates).
    std::fs::remove_file(config.path().join("virtual-service.yaml")).unwrap();
    std::fs::remove_file(config.path().join("destination-rule.yaml")).unwrap();
    let both = |b: &Batch| b.errors.is_empty() && b.count("v1") > 0 && b.count("v2") > 0;
    client.until("round robin again", 20, None, both).await;
    put(
        config.path(),
        "destination-rule.yaml",
        HASHED_DESTINATION_RULE,
    );
    let sticks = |b: &Batch| b.all("v1", 20) || b.all("v2", 20);
    let first_user = Some(("x-user", "user-0"));
    client.until("ring hash", 20, first_user, sticks).await;
    let mut versions = BTreeMap::new();
    for user in 0..16 {
        let name = format!("user-{user}");
        let batch = client.call(20, Some(("x-user", &name))).await;
        assert!(sticks(&batch), "{name} moved: {batch:?}");
        let version = batch.replies.into_keys().next().unwrap();
        *versions.entry(version).or_insert(0) += 1;
    }
    // Both endpoints own part of the ring (all 16 on one: 2 in 65,536).
    assert_eq!(versions.len(), 2, "users by version: {versions:?}");
}

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}
