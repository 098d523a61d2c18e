//! DestinationRule traffic policies end to end, through real sidecars on
//! loopback addresses: Istio's circuit-breaking task (connection pool
//! limits refuse the overflow with 503 and response flag UO), outlier
//! detection (a failing endpoint is ejected and the rest serve), the
//! load balancers (consistent hashing on a header, least request, random),
//! Istio's locality failover task, and HTTP/2 upgrade between sidecars.
//! Every loop is bounded; counts are asserted, never timings.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use trellis_testbed::{Reply, UpMesh, WorkloadState};

const TRELLIS: &str = env!("CARGO_BIN_EXE_trellis");
const CONVERGENCE_DEADLINE: Duration = Duration::from_secs(10);

/// A client (only its sidecar is used) and the workloads under test.
const CLIENT: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: client}
spec:
  ports: [{port: 8080, name: http}]
  selector: {app: client}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: client-v1}
spec:
  replicas: 1
  selector: {matchLabels: {app: client}}
  template:
    metadata: {labels: {app: client, version: v1}}
    spec:
      containers: [{name: client, image: demo, ports: [{containerPort: 8080}]}]
"#;

/// A Service `name` on port 8080 and a Deployment `name-VERSION` of
/// `replicas` demo apps with `annotations` (a YAML flow map).
fn service(name: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}}}\nspec:\n  \
         ports: [{{port: 8080, name: http}}]\n  selector: {{app: {name}}}\n"
    )
}

fn deployment(name: &str, version: &str, replicas: u32, annotations: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: {name}-{version}}}\nspec:\n  \
         replicas: {replicas}\n  selector: {{matchLabels: {{app: {name}, version: {version}}}}}\n  \
         template:\n    metadata:\n      labels: {{app: {name}, version: {version}}}\n      \
         annotations: {annotations}\n    spec:\n      containers: [{{name: {name}, image: demo, \
         ports: [{{containerPort: 8080}}]}}]\n"
    )
}

async fn mesh_of(test: &str, documents: &[String]) -> (UpMesh, tempfile::TempDir) {
    mesh_with_client(test, CLIENT, documents).await
}

async fn mesh_with_client(
    test: &str,
    client: &str,
    documents: &[String],
) -> (UpMesh, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temporary manifest dir");
    let path = dir.path().join("workloads.yaml");
    let mut all = vec![client.to_string()];
    all.extend_from_slice(documents);
    std::fs::write(&path, all.join("---\n")).expect("writing manifests");
    let mesh = UpMesh::builder(TRELLIS, test).file(&path).start().await;
    (mesh, dir)
}

/// GET through the client's sidecar, addressed to `host`.
async fn via_client(mesh: &UpMesh, host: &str, headers: &[(&str, &str)]) -> Reply {
    let client = mesh.workload("client-v1");
    let url = format!("http://{}:{}/", client.address, client.outbound_port);
    let mut all = vec![("host", host)];
    all.extend_from_slice(headers);
    mesh.get_with_headers(&url, &all)
        .await
        .expect("the client's sidecar answers")
}

async fn admin(mesh: &UpMesh, workload: &WorkloadState, path: &str) -> String {
    let url = format!("http://{}:{}{path}", workload.address, workload.admin_port);
    mesh.get(&url).await.expect("the admin port answers").text()
}

const CIRCUIT_BREAKER: &str = r#"
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: slow}
spec:
  host: slow
  trafficPolicy:
    connectionPool:
      tcp: {maxConnections: 1}
      http: {http1MaxPendingRequests: 1, maxRequestsPerConnection: 1}
"#;

const OUTLIER_DETECTION: &str = r#"
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: shaky}
spec:
  host: shaky
  trafficPolicy:
    outlierDetection:
      consecutive5xxErrors: 1
      interval: 1s
      baseEjectionTime: 3m
      maxEjectionPercent: 100
"#;

/// Istio's circuit-breaking task: one connection and one pending request
/// to a slow backend; concurrent requests beyond them are refused at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn circuit_breaking_and_outlier_detection() {
    let documents = [
        service("slow"),
        deployment("slow", "v1", 1, "{trellis.io/demo-latency: 1s}"),
        CIRCUIT_BREAKER.to_string(),
        service("shaky"),
        deployment("shaky", "good", 1, "{}"),
        deployment("shaky", "bad", 1, "{trellis.io/demo-error-rate: \"1\"}"),
        OUTLIER_DETECTION.to_string(),
    ];
    let (mesh, _manifests) = mesh_of("resilience_breakers", &documents).await;
    let mesh = Arc::new(mesh);
    circuit_breaking(&mesh).await;
    outlier_detection(&mesh).await;
}

async fn circuit_breaking(mesh: &Arc<UpMesh>) {
    const CONCURRENT: usize = 8;
    let mut requests = tokio::task::JoinSet::new();
    for _ in 0..CONCURRENT {
        let mesh = mesh.clone();
        requests.spawn(async move { via_client(&mesh, "slow:8080", &[]).await });
    }
    let replies = requests.join_all().await;
    let ok = replies.iter().filter(|r| r.status == 200).count();
    let overflowed: Vec<&Reply> = replies.iter().filter(|r| r.status == 503).collect();
    assert_eq!(ok + overflowed.len(), CONCURRENT, "only 200s and 503s");
    assert!(ok >= 1, "the request holding the connection succeeds");
    assert!(
        !overflowed.is_empty(),
        "8 concurrent requests overflow 1 connection + 1 pending"
    );
    for reply in &overflowed {
        assert_eq!(
            reply.text(),
            "upstream connect error or disconnect/reset before headers. reset reason: overflow"
        );
    }
    let client = mesh.workload("client-v1");
    let labels = [
        "reporter=\"source\"",
        "destination_service_name=\"slow\"",
        "response_code=\"503\"",
        "response_flags=\"UO\"",
    ];
    let counted = mesh
        .wait_for_requests_counted(
            client,
            &labels,
            overflowed.len() as f64,
            CONVERGENCE_DEADLINE,
        )
        .await;
    assert_eq!(counted, overflowed.len() as f64);
    // Every slot was given back: one request at a time still passes.
    assert_eq!(via_client(mesh, "slow:8080", &[]).await.status, 200);
}

async fn outlier_detection(mesh: &UpMesh) {
    const REQUESTS: usize = 40;
    let mut failures = 0;
    for _ in 0..REQUESTS {
        let reply = via_client(mesh, "shaky:8080", &[]).await;
        match reply.status {
            200 => assert_eq!(reply.demo().version.as_deref(), Some("good")),
            500 => failures += 1,
            other => panic!("unexpected status {other}: {}", reply.text()),
        }
    }
    // Least request (Istio's default) picks either endpoint at random when
    // both are idle, so the bad one is reached within a few requests; its
    // first 500 ejects it for 3 minutes, so every later request succeeds.
    assert_eq!(failures, 1, "one 500, then the endpoint is ejected");
    let bad = mesh.workload("shaky-bad");
    let client = mesh.workload("client-v1");
    let clusters = admin(mesh, client, "/clusters").await;
    let flagged: Vec<&str> = clusters
        .lines()
        .filter(|l| l.contains("||shaky.") && l.contains("health_flags::/failed_outlier_check"))
        .collect();
    assert_eq!(flagged.len(), 1, "{clusters}");
    assert!(flagged[0].contains(&bad.address.to_string()), "{clusters}");
}

fn load_balancer_rule(host: &str, policy: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: {host}}}\n\
         spec:\n  host: {host}\n  trafficPolicy:\n    loadBalancer: {policy}\n"
    )
}

/// Which pod answered each of `count` requests to `host` with `headers`.
async fn answering_pods(
    mesh: &UpMesh,
    host: &str,
    headers: &[(&str, &str)],
    count: usize,
) -> Vec<String> {
    let mut pods = Vec::with_capacity(count);
    for _ in 0..count {
        let reply = via_client(mesh, host, headers).await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        pods.push(reply.demo().pod.expect("the app answered"));
    }
    pods
}

/// Both endpoints serve a share within binomial bounds (n=200, p=1/2:
/// 100 +- 40 is beyond five standard deviations), and not in the strict
/// alternation round robin would give.
fn assert_random_spread(policy: &str, pods: &[String]) {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for pod in pods {
        *counts.entry(pod.as_str()).or_default() += 1;
    }
    assert_eq!(counts.len(), 2, "{policy}: {counts:?}");
    assert!(
        counts.values().all(|n| (60..=140).contains(n)),
        "{policy}: {counts:?}"
    );
    let alternating = pods.windows(2).all(|pair| pair[0] != pair[1]);
    assert!(!alternating, "{policy}: picks alternate like round robin");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_balancers() {
    let documents = [
        service("sticky"),
        deployment("sticky", "v1", 2, "{}"),
        load_balancer_rule("sticky", "{consistentHash: {httpHeaderName: x-user}}"),
        service("fewest"),
        deployment("fewest", "v1", 2, "{}"),
        load_balancer_rule("fewest", "{simple: LEAST_REQUEST}"),
        service("dice"),
        deployment("dice", "v1", 2, "{}"),
        load_balancer_rule("dice", "{simple: RANDOM}"),
    ];
    let (mesh, _manifests) = mesh_of("resilience_balancers", &documents).await;

    // Consistent hashing: each user's requests all land on one pod.
    for user in [
        "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi",
    ] {
        let pods = answering_pods(&mesh, "sticky:8080", &[("x-user", user)], 8).await;
        let distinct: BTreeSet<&String> = pods.iter().collect();
        assert_eq!(distinct.len(), 1, "{user} moved between {distinct:?}");
    }

    for (host, policy) in [("fewest:8080", "LEAST_REQUEST"), ("dice:8080", "RANDOM")] {
        let pods = answering_pods(&mesh, host, &[], 200).await;
        assert_random_spread(policy, &pods);
    }
    let client = mesh.workload("client-v1");
    let dump = admin(&mesh, client, "/config_dump").await;
    for policy in ["RING_HASH", "LEAST_REQUEST", "RANDOM"] {
        assert!(
            dump.contains(&format!("\"lbPolicy\":\"{policy}\"")),
            "{policy} not accepted"
        );
    }
}

/// The client, placed in region1/zone1 by its pod's topology labels.
const CLIENT_IN_ZONE1: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: client}
spec:
  ports: [{port: 8080, name: http}]
  selector: {app: client}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: client-v1}
spec:
  replicas: 1
  selector: {matchLabels: {app: client}}
  template:
    metadata:
      labels: {app: client, version: v1, topology.kubernetes.io/region: region1,
        topology.kubernetes.io/zone: zone1}
    spec:
      containers: [{name: client, image: demo, ports: [{containerPort: 8080}]}]
"#;

/// A Deployment `name-version` of one demo app in `region/zone`.
fn located(name: &str, version: &str, region: &str, zone: &str, annotations: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: {name}-{version}}}\nspec:\n  \
         replicas: 1\n  selector: {{matchLabels: {{app: {name}, version: {version}}}}}\n  template:\n    \
         metadata:\n      labels: {{app: {name}, version: {version}, \
         topology.kubernetes.io/region: {region}, topology.kubernetes.io/zone: {zone}}}\n      \
         annotations: {annotations}\n    spec:\n      containers: [{{name: {name}, image: demo, \
         ports: [{{containerPort: 8080}}]}}]\n"
    )
}

/// Istio's failover rule: outlier detection (without which failover never
/// happens) and region1 failing over to region2.
fn failover_rule(host: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: {host}}}\n\
         spec:\n  host: {host}\n  trafficPolicy:\n    loadBalancer:\n      simple: ROUND_ROBIN\n      \
         localityLbSetting:\n        enabled: true\n        failover: [{{from: region1, to: region2}}]\n    \
         outlierDetection: {{consecutive5xxErrors: 1, interval: 1s, baseEjectionTime: 3m, \
         maxEjectionPercent: 100}}\n"
    )
}

/// How many of `count` requests to `host` each version answered; 500s
/// count under "500".
async fn answering_versions(mesh: &UpMesh, host: &str, count: usize) -> BTreeMap<String, usize> {
    let mut versions = BTreeMap::new();
    for _ in 0..count {
        let reply = via_client(mesh, host, &[]).await;
        let key = match reply.status {
            200 => reply.demo().version.expect("the app answered"),
            500 => "500".to_string(),
            other => panic!("unexpected status {other}: {}", reply.text()),
        };
        *versions.entry(key).or_default() += 1;
    }
    versions
}

/// Istio's "Locality failover" task in miniature: the client's own
/// locality serves everything while healthy; once its endpoint fails and
/// is ejected, the next priority (region2, named by the failover rule)
/// takes over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locality_failover() {
    const REQUESTS: usize = 20;
    let documents = [
        service("hello"),
        located("hello", "near", "region1", "zone1", "{}"),
        located("hello", "far", "region2", "zone3", "{}"),
        failover_rule("hello"),
        service("flaky"),
        located(
            "flaky",
            "near",
            "region1",
            "zone1",
            "{trellis.io/demo-error-rate: \"1\"}",
        ),
        located("flaky", "far", "region2", "zone3", "{}"),
        failover_rule("flaky"),
    ];
    let (mesh, _manifests) =
        mesh_with_client("resilience_locality", CLIENT_IN_ZONE1, &documents).await;

    // Both healthy: round robin alone would alternate; locality keeps all
    // of it in region1/zone1.
    let hello = answering_versions(&mesh, "hello:8080", REQUESTS).await;
    assert_eq!(hello, BTreeMap::from([("near".into(), REQUESTS)]));

    // The local endpoint fails once, is ejected, and region2 serves.
    let flaky = answering_versions(&mesh, "flaky:8080", REQUESTS).await;
    let expected = BTreeMap::from([("500".into(), 1), ("far".into(), REQUESTS - 1)]);
    assert_eq!(flaky, expected);
    let near = mesh.workload("flaky-near");
    let clusters = admin(&mesh, mesh.workload("client-v1"), "/clusters").await;
    let ejected: Vec<&str> = clusters
        .lines()
        .filter(|l| l.contains("||flaky.") && l.contains("health_flags::/failed_outlier_check"))
        .collect();
    assert_eq!(ejected.len(), 1, "{clusters}");
    assert!(ejected[0].contains(&near.address.to_string()), "{clusters}");
}

/// The first line `pod`'s sidecar printed that contains every one of
/// `needles`, waiting for it (bounded).
async fn sidecar_line(mesh: &UpMesh, pod: &str, needles: &[&str]) -> String {
    let prefix = format!("[{pod}/sidecar] ");
    let until = Instant::now() + CONVERGENCE_DEADLINE;
    loop {
        let output = mesh.output();
        let found = output.iter().find(|line| {
            line.starts_with(&prefix) && needles.iter().all(|needle| line.contains(needle))
        });
        if let Some(line) = found {
            return line.clone();
        }
        assert!(
            Instant::now() < until,
            "no {needles:?} from {pod}:\n{}",
            output.join("\n")
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

const UPGRADE: &str = r#"
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: upgraded}
spec:
  host: upgraded
  trafficPolicy:
    connectionPool:
      http: {h2UpgradePolicy: UPGRADE}
      tcp: {maxConnectionDuration: 30s}
"#;

/// `h2UpgradePolicy: UPGRADE` makes the sidecars speak HTTP/2 to each
/// other (the serving sidecar logs the protocol it received); without it,
/// Istio's default keeps HTTP/1.1. `maxConnectionDuration` is accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_upgrade_between_sidecars() {
    let documents = [
        service("upgraded"),
        deployment("upgraded", "v1", 1, "{}"),
        UPGRADE.to_string(),
        service("plain"),
        deployment("plain", "v1", 1, "{}"),
    ];
    let (mesh, _manifests) = mesh_of("resilience_h2_upgrade", &documents).await;
    for (host, pod, protocol) in [
        ("upgraded", "upgraded-v1", "HTTP/2"),
        ("plain", "plain-v1", "HTTP/1.1"),
    ] {
        let reply = via_client(&mesh, &format!("{host}:8080"), &[]).await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        let pod = mesh.workload(pod).pod.clone();
        // The mesh request, not a local probe: it names the client's identity.
        let needles = [" inbound|8080||", "spiffe://cluster.local/ns/default/sa/"];
        let line = sidecar_line(&mesh, &pod, &needles).await;
        assert!(line.contains(&format!("{protocol}\" 200")), "{line}");
    }
}
