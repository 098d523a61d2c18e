//! The dashboard end to end: `trellis up` runs Bookinfo (reviews split
//! 90/10 between v1 and v2 by `virtual-service-reviews-90-10.yaml`, which
//! `up` applies), with an SLO on reviews, ratings made STRICT and one
//! productpage path denied written to the config directory; traffic goes
//! through the product page, and headless Chromium, driven by
//! tests/browser/dashboard.mjs, checks that the page draws the service
//! graph with mTLS edges and the reviews split, the SLO with its budget,
//! and the posture: the PERMISSIVE workloads (`up` sets no
//! PeerAuthentication, so Istio's default holds), the test's plaintext
//! calls and the denied requests. The screenshot is kept in
//! target/tmp/dashboard.png.
//!
//! Needs `node`, Chromium and tests/browser/node_modules (scripts/test
//! installs all three); without them the test says so and skips.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;
use trellis_testbed::UpMesh;

const TRELLIS: &str = env!("CARGO_BIN_EXE_trellis");
const REQUESTS: usize = 100;
/// Two scrape rounds (5 s each) after the traffic, with room to spare.
const SCRAPE_DEADLINE: Duration = Duration::from_secs(40);
const BROWSER_DEADLINE: Duration = Duration::from_secs(120);
const BOOKINFO_SERVICES: [&str; 4] = ["productpage", "details", "reviews", "ratings"];
const POLICY_DEADLINE: Duration = Duration::from_secs(15);
const SLO: &str = "default/reviews-availability";
const DENIED_PATH: &str = "/denied-by-the-dashboard-test";
const DENIED_REQUESTS: usize = 5;
/// An availability SLO on reviews, ratings accepting only mTLS, and one
/// productpage path denied.
const CONFIG: &str = "apiVersion: trellis.io/v1alpha1
kind: ServiceLevelObjective
metadata: {name: reviews-availability, namespace: default}
spec:
  service: reviews
  availability: {target: 99.5}
  window: 30d
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: ratings, namespace: default}
spec:
  selector: {matchLabels: {app: ratings}}
  mtls: {mode: STRICT}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-one-path, namespace: default}
spec:
  selector: {matchLabels: {app: productpage}}
  action: DENY
  rules:
  - to:
    - operation: {paths: [/denied-by-the-dashboard-test]}
";

fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/browser")
}

fn chromium() -> PathBuf {
    std::env::var_os("CHROMIUM").map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from)
}

/// Why the browser test cannot run here, if it cannot.
fn missing_tools() -> Option<String> {
    let node = std::process::Command::new("node")
        .arg("--version")
        .stdout(Stdio::null())
        .status();
    if !node.is_ok_and(|status| status.success()) {
        return Some("node is not installed".into());
    }
    if !chromium().exists() {
        return Some(format!("{} is not installed", chromium().display()));
    }
    let playwright = browser_dir().join("node_modules/playwright-core");
    if !playwright.exists() {
        return Some(format!(
            "{} is missing (npm ci in tests/browser)",
            playwright.display()
        ));
    }
    None
}

/// Polls a dashboard API path until `done` accepts its JSON.
async fn wait_for(mesh: &UpMesh, url: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + SCRAPE_DEADLINE;
    loop {
        let reply = mesh.get(url).await.expect("dashboard API answers");
        assert_eq!(reply.status, 200, "{url}: {}", reply.text());
        let json = reply.json();
        if done(&json) {
            return json;
        }
        assert!(Instant::now() < deadline, "{what}: {json}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn has_version(view: &Value, version: &str) -> bool {
    view["versions"]
        .as_array()
        .is_some_and(|all| all.iter().any(|v| v["version"] == version))
}

/// Runs the browser script and returns what it saw.
async fn browse(dashboard: &str, screenshot: &Path) -> Value {
    let mut command = tokio::process::Command::new("node");
    command
        .current_dir(browser_dir())
        .arg("dashboard.mjs")
        .arg(dashboard)
        .arg("service/default/reviews")
        .arg(screenshot)
        .arg(SLO)
        .env("CHROMIUM", chromium())
        .kill_on_drop(true);
    let output = tokio::time::timeout(BROWSER_DEADLINE, command.output())
        .await
        .expect("the browser script finishes in time")
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the browser script failed ({}):\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(stdout.trim()).expect("the browser script prints JSON")
}

fn edge<'a>(seen: &'a Value, source: &str, target: &str) -> &'a Value {
    seen["edges"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["source"] == source && e["target"] == target)
        .unwrap_or_else(|| panic!("no edge {source} -> {target} drawn: {seen}"))
}

#[tokio::test]
async fn the_dashboard_shows_bookinfo_with_mtls_and_the_reviews_split() {
    if let Some(reason) = missing_tools() {
        eprintln!("skipping the dashboard browser test: {reason}");
        return;
    }
    let mesh = UpMesh::start(TRELLIS, "dashboard").await;
    mesh.write_config("dashboard-test.yaml", CONFIG);
    let dashboard = mesh.state().control_plane.dashboard_url();
    // Counters a proxy had at its first scrape are history, not traffic:
    // wait until every proxy has been scraped once.
    let proxies = mesh.state().workloads.len();
    let graph = format!("{dashboard}api/graph");
    wait_for(&mesh, &graph, "not every proxy scraped", |graph| {
        graph["proxies"].as_u64() >= Some(proxies as u64)
    })
    .await;
    let productpage = mesh.workload("productpage-v1");
    let denied = format!(
        "http://{}:{}{DENIED_PATH}",
        productpage.address, productpage.inbound_ports[0]
    );
    let deadline = Instant::now() + POLICY_DEADLINE;
    while mesh.get(&denied).await.expect("productpage answers").status != 403 {
        assert!(Instant::now() < deadline, "the DENY policy never applied");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for _ in 0..DENIED_REQUESTS {
        assert_eq!(mesh.get(&denied).await.unwrap().status, 403);
    }
    for _ in 0..REQUESTS {
        let reply = mesh
            .get(&mesh.url("productpage"))
            .await
            .expect("productpage answers");
        assert_eq!(reply.status, 200, "{}", reply.text());
    }
    // The browser should not be the one waiting for scrapes.
    let service = format!("{dashboard}api/service?name=reviews&namespace=default");
    let api_view = wait_for(&mesh, &service, "reviews' versions not seen", |view| {
        has_version(view, "v1") && has_version(view, "v2")
    })
    .await;
    let slos = format!("{dashboard}api/slos");
    let api_slos = wait_for(&mesh, &slos, "the SLO has no budget figure", |report| {
        report["slos"].as_array().is_some_and(|all| {
            all.iter()
                .any(|s| s["name"] == "reviews-availability" && s["budgetRemaining"].is_number())
        })
    })
    .await;
    let posture = format!("{dashboard}api/posture");
    wait_for(&mesh, &posture, "no denial seen", |posture| {
        posture["denials"]
            .as_array()
            .is_some_and(|all| !all.is_empty())
    })
    .await;
    let screenshot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png");
    let seen = browse(&dashboard, &screenshot).await;
    assert!(
        screenshot.exists(),
        "no screenshot at {}",
        screenshot.display()
    );

    let nodes: Vec<&str> = seen["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|n| n["id"].as_str())
        .collect();
    for service in BOOKINFO_SERVICES {
        let id = format!("service/default/{service}");
        assert!(nodes.contains(&id.as_str()), "{id} not drawn: {nodes:?}");
    }
    // Sidecar to sidecar is mutual TLS, and the page says so.
    for (source, target) in [
        ("workload/default/productpage-v1", "service/default/details"),
        ("workload/default/productpage-v1", "service/default/reviews"),
        ("workload/default/reviews-v2", "service/default/ratings"),
        ("service/default/reviews", "workload/default/reviews-v1"),
    ] {
        let drawn = edge(&seen, source, target);
        assert_eq!(drawn["security"], "mutual_tls", "{drawn}");
        let text = drawn["text"].as_str().unwrap();
        assert!(text.contains("rps") && text.contains("mTLS"), "{text}");
    }
    // The split, as the page lists it after clicking reviews: v1 first.
    let versions = seen["versions"].as_array().unwrap();
    let share = |version: &str| {
        versions
            .iter()
            .find(|v| v["version"] == version)
            .and_then(|v| v["share"].as_f64())
            .unwrap_or_else(|| panic!("{version} not listed: {versions:?} (API: {api_view})"))
    };
    assert!(
        share("v1") > 0.6 && share("v1") > share("v2"),
        "{versions:?}"
    );
    assert_eq!(versions[0]["version"], "v1", "{versions:?}");
    assert!(
        seen["details"].as_str().unwrap().contains("reviews"),
        "{seen}"
    );
    // Clicking the edge into reviews shows that caller's signals.
    let edge = &seen["edgeDetails"];
    assert_eq!(edge["title"], "productpage-v1 → reviews", "{seen}");
    let signals: Vec<&str> = edge["signals"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        signals.iter().any(|s| s
            .strip_prefix("Requests/s")
            .and_then(|rate| rate.trim().parse::<f64>().ok())
            .is_some_and(|rate| rate > 0.0)),
        "{signals:?}"
    );
    check_slo_panel(&seen, &api_slos);
    check_posture_panel(&seen);
}

/// The SLO row shows reviews with a budget figure, and the panel says the
/// history it measured is bounded by the retention.
fn check_slo_panel(seen: &Value, api: &Value) {
    let slos = seen["slos"].as_array().unwrap();
    let row = slos
        .iter()
        .find(|s| s["slo"] == SLO)
        .unwrap_or_else(|| panic!("{SLO} not listed: {slos:?} (API: {api})"));
    let budget: f64 = row["budget"].as_str().unwrap().parse().unwrap();
    assert!(budget <= 1.0, "{row}");
    let cells: Vec<&str> = row["cells"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(cells[1].starts_with("reviews.default.svc"), "{cells:?}");
    assert!(cells[2].contains("99.5%"), "{cells:?}");
    assert!(
        cells[4].ends_with('%') && cells[4] != "–",
        "no budget: {cells:?}"
    );
    assert!(
        ["ok", "slow_burn", "fast_burn", "exhausted"].contains(&row["status"].as_str().unwrap()),
        "{row}"
    );
    let note = seen["sloNote"].as_str().unwrap();
    assert!(note.contains("retention") && note.contains("30d"), "{note}");
}

/// Bookinfo's workloads are PERMISSIVE but ratings (made STRICT), the
/// test's own calls to productpage are plaintext, and the denied path's
/// requests are listed.
fn check_posture_panel(seen: &Value) {
    let open: Vec<(&str, &str)> = seen["plaintextWorkloads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| (w["id"].as_str().unwrap(), w["mode"].as_str().unwrap()))
        .collect();
    for workload in [
        "productpage-v1",
        "details-v1",
        "reviews-v1",
        "reviews-v2",
        "reviews-v3",
    ] {
        let id = format!("workload/default/{workload}");
        assert!(
            open.contains(&(id.as_str(), "PERMISSIVE")),
            "{id} not listed as PERMISSIVE: {open:?}"
        );
    }
    assert!(
        !open.iter().any(|(id, _)| id.ends_with("/ratings-v1")),
        "ratings is STRICT: {open:?}"
    );
    let plaintext = seen["plaintextEdges"].as_array().unwrap();
    assert!(
        plaintext
            .iter()
            .any(|e| e["target"] == "service/default/productpage"),
        "{plaintext:?}"
    );
    // Refused before routing, the request names no service: the sidecar
    // that refused it is what identifies it.
    let denials = seen["denials"].as_array().unwrap();
    assert!(
        denials
            .iter()
            .any(|d| d["destination"] == "workload/default/productpage-v1"
                && d["denied"].as_f64() > Some(DENIED_REQUESTS as f64)),
        "{denials:?}"
    );
}
