//! Traffic management end to end: Istio's fault-injection task on
//! Bookinfo, and retries, mirroring, redirects, direct responses,
//! rewrites and header operations on purpose-built demo workloads, all
//! through real sidecars on loopback addresses.

use std::time::{Duration, Instant};

use trellis_testbed::{Reply, UpMesh, requests_counted};

const TRELLIS: &str = env!("CARGO_BIN_EXE_trellis");
const CONVERGENCE_DEADLINE: Duration = Duration::from_secs(10);

fn sample(name: &str) -> String {
    let path = format!(
        "{}/../../samples/bookinfo/networking/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(path).expect("bundled sample")
}

/// The first YAML document of a sample: its VirtualService, without the
/// DestinationRule some samples repeat (`up` already applies
/// `destination-rule-all.yaml`).
fn virtual_service_of(name: &str) -> String {
    let text = sample(name);
    text.split("\n---").next().unwrap_or_default().to_string()
}

async fn productpage(mesh: &UpMesh, user: Option<&str>) -> Reply {
    let headers: Vec<(&str, &str)> = user.map(|u| ("end-user", u)).into_iter().collect();
    let reply = mesh
        .get_with_headers(&mesh.url("productpage"), &headers)
        .await
        .expect("productpage answers");
    assert_eq!(reply.status, 200, "{}", reply.text());
    reply
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bookinfo_fault_injection_task() {
    let mesh = UpMesh::start(TRELLIS, "traffic_faults").await;
    mesh.write_config(
        "virtual-service-reviews-90-10.yaml",
        &sample("virtual-service-reviews-test-v2.yaml"),
    );
    mesh.write_config(
        "fault-injection-details-v1.yaml",
        &virtual_service_of("fault-injection-details-v1.yaml"),
    );
    // Every call to details fails with the configured 555, at 100%.
    let deadline = Instant::now() + CONVERGENCE_DEADLINE;
    loop {
        let reply = productpage(&mesh, None).await.demo();
        let details = reply.call("details").expect("productpage calls details");
        if details.status == Some(555) {
            assert!(
                !details.answered_by_app(),
                "the proxy answered, not details"
            );
            break;
        }
        assert!(Instant::now() < deadline, "the abort never applied");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for _ in 0..20 {
        let reply = productpage(&mesh, None).await.demo();
        assert_eq!(reply.call("details").unwrap().status, Some(555));
    }
    let productpage_sidecar = mesh.workload("productpage-v1");
    let aborted = requests_counted(
        &mesh.proxy_stats(productpage_sidecar).await,
        &[
            "reporter=\"source\"",
            "destination_service_name=\"details\"",
            "response_code=\"555\"",
            "response_flags=\"FI\"",
        ],
    );
    assert!(aborted >= 21.0, "FI counted {aborted} times");

    // Ratings aborted for jason only: reviews v2 sees a 500 from the proxy.
    mesh.write_config(
        "ratings.yaml",
        &sample("virtual-service-ratings-test-abort.yaml"),
    );
    let deadline = Instant::now() + CONVERGENCE_DEADLINE;
    loop {
        let reply = productpage(&mesh, Some("jason")).await.demo();
        let ratings = reply.find("ratings").expect("reviews v2 calls ratings");
        if ratings.status == Some(500) && !ratings.answered_by_app() {
            break;
        }
        assert!(Instant::now() < deadline, "the ratings abort never applied");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A 7 s delay for jason: reviews v2 (10 s timeout) waits it out, but
    // productpage gives reviews 3 s twice and shows reviews unavailable.
    mesh.write_config(
        "ratings.yaml",
        &sample("virtual-service-ratings-test-delay.yaml"),
    );
    let deadline = Instant::now() + CONVERGENCE_DEADLINE;
    loop {
        let started = Instant::now();
        let reply = productpage(&mesh, Some("jason")).await.demo();
        let reviews = reply.call("reviews").expect("productpage calls reviews");
        if !reviews.answered_by_app() {
            assert!(
                reviews
                    .error
                    .as_deref()
                    .is_some_and(|e| e.contains("timed out")),
                "{reviews:?}"
            );
            assert!(started.elapsed() >= Duration::from_secs(6));
            break;
        }
        assert!(Instant::now() < deadline, "the ratings delay never applied");
    }
    // Reviews v2 itself waits the 7 s out and still shows ratings.
    let reviews_v2 = mesh.workload("reviews-v2");
    let url = format!(
        "http://{}:{}/reviews/0",
        reviews_v2.address, reviews_v2.inbound_ports[0]
    );
    let started = Instant::now();
    let reply = mesh
        .get_with_headers(&url, &[("end-user", "jason")])
        .await
        .expect("reviews v2 answers");
    assert_eq!(reply.status, 200);
    assert!(started.elapsed() >= Duration::from_secs(7));
    let ratings = reply.demo();
    assert!(ratings.call("ratings").is_some_and(|r| r.answered_by_app()));
    let delayed = requests_counted(
        &mesh.proxy_stats(reviews_v2).await,
        &[
            "reporter=\"source\"",
            "destination_service_name=\"ratings\"",
            "response_code=\"200\"",
            "response_flags=\"DI\"",
        ],
    );
    assert!(delayed >= 1.0, "no delayed ratings request was counted");
}

/// A client (only its sidecar is used), a backend that always fails, an
/// echo with a second version, and a mirror target.
const WORKLOADS: &str = r#"
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
---
apiVersion: v1
kind: Service
metadata: {name: flaky}
spec:
  ports: [{port: 8080, name: http}]
  selector: {app: flaky}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: flaky-v1}
spec:
  replicas: 1
  selector: {matchLabels: {app: flaky}}
  template:
    metadata:
      labels: {app: flaky, version: v1}
      annotations: {trellis.io/demo-error-rate: "1"}
    spec:
      containers: [{name: flaky, image: demo, ports: [{containerPort: 8080}]}]
---
apiVersion: v1
kind: Service
metadata: {name: echo}
spec:
  ports: [{port: 8080, name: http}]
  selector: {app: echo}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: echo-v1}
spec:
  replicas: 1
  selector: {matchLabels: {app: echo, version: v1}}
  template:
    metadata: {labels: {app: echo, version: v1}}
    spec:
      containers: [{name: echo, image: demo, ports: [{containerPort: 8080}]}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: echo-v2}
spec:
  replicas: 1
  selector: {matchLabels: {app: echo, version: v2}}
  template:
    metadata: {labels: {app: echo, version: v2}}
    spec:
      containers: [{name: echo, image: demo, ports: [{containerPort: 8080}]}]
---
apiVersion: v1
kind: Service
metadata: {name: mirror}
spec:
  ports: [{port: 8080, name: http}]
  selector: {app: mirror}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: mirror-v1}
spec:
  replicas: 1
  selector: {matchLabels: {app: mirror}}
  template:
    metadata: {labels: {app: mirror, version: v1}}
    spec:
      containers: [{name: mirror, image: demo, ports: [{containerPort: 8080}]}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: echo}
spec:
  host: echo
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
"#;

/// Starts a mesh of [`WORKLOADS`] plus `networking`.
async fn workload_mesh(test: &str, networking: &str) -> (UpMesh, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temporary manifest dir");
    let path = dir.path().join("workloads.yaml");
    std::fs::write(&path, format!("{WORKLOADS}---\n{networking}")).expect("writing manifests");
    let mesh = UpMesh::builder(TRELLIS, test).file(&path).start().await;
    (mesh, dir)
}

/// GET through the client's sidecar, addressed to `host`.
async fn via_client(mesh: &UpMesh, host: &str, path: &str, headers: &[(&str, &str)]) -> Reply {
    let client = mesh.workload("client-v1");
    let url = format!("http://{}:{}{path}", client.address, client.outbound_port);
    let mut all = vec![("host", host)];
    all.extend_from_slice(headers);
    mesh.get_with_headers(&url, &all)
        .await
        .expect("the client's sidecar answers")
}

const RETRIES: &str = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: flaky}
spec:
  hosts: [flaky]
  http:
  - match: [{uri: {prefix: /retried}}]
    retries: {attempts: 3, perTryTimeout: 2s, retryOn: 5xx}
    route: [{destination: {host: flaky}}]
  - match: [{uri: {prefix: /once}}]
    retries: {attempts: 0}
    route: [{destination: {host: flaky}}]
  - route: [{destination: {host: flaky}}]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_are_counted_at_the_backend() {
    let (mesh, _manifests) = workload_mesh("traffic_retries", RETRIES).await;
    let flaky = mesh.workload("flaky-v1");
    let served = ["reporter=\"destination\"", "response_code=\"500\""];
    // `up`'s readiness checks may have met the failing app already.
    let before = requests_counted(&mesh.proxy_stats(flaky).await, &served);
    const REQUESTS: f64 = 10.0;
    for _ in 0..REQUESTS as usize {
        let reply = via_client(&mesh, "flaky:8080", "/retried", &[]).await;
        assert_eq!(reply.status, 500);
        // The demo app echoes what it received: the fourth attempt.
        assert_eq!(reply.demo().headers["x-envoy-attempt-count"], "4");
    }
    let expected = before + REQUESTS * 4.0;
    let attempts = mesh
        .wait_for_requests_counted(flaky, &served, expected, CONVERGENCE_DEADLINE)
        .await;
    assert_eq!(attempts, expected, "1 try + 3 retries per request");
    let client = mesh.workload("client-v1");
    let exhausted = requests_counted(
        &mesh.proxy_stats(client).await,
        &["reporter=\"source\"", "response_flags=\"URX\""],
    );
    assert_eq!(exhausted, REQUESTS);

    // attempts: 0 turns retries off; Istio's default policy retries only
    // connect failures, refused streams, gRPC unavailable/cancelled and 503.
    for path in ["/once", "/default"] {
        let reply = via_client(&mesh, "flaky:8080", path, &[]).await;
        assert_eq!(reply.status, 500);
        assert_eq!(reply.demo().headers["x-envoy-attempt-count"], "1", "{path}");
    }
    let total = mesh
        .wait_for_requests_counted(flaky, &served, expected + 2.0, CONVERGENCE_DEADLINE)
        .await;
    assert_eq!(total, expected + 2.0);
}

const ROUTING: &str = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: echo}
spec:
  hosts: [echo]
  http:
  - match: [{uri: {prefix: /old/}}]
    redirect: {uri: /new, authority: elsewhere, port: 8081, redirectCode: 308}
  - match: [{uri: {exact: /teapot}}]
    directResponse: {status: 418, body: {string: short and stout}}
  - match: [{uri: {prefix: /api/v1/}}]
    rewrite: {uri: /v2/, authority: echo-rewritten}
    headers:
      request: {set: {x-route: api}, remove: [x-drop]}
      response: {add: {x-served-by: api-route}}
    route:
    - destination: {host: echo, subset: v1}
      headers: {request: {add: {x-destination: v1}}}
  - match: [{uri: {regex: "/users/[0-9]+/profile"}}]
    rewrite: {uriRegexRewrite: {match: "^/users/([0-9]+)/profile$", rewrite: "/profile/\\1"}}
    route: [{destination: {host: echo, subset: v1}}]
  - match: [{uri: {prefix: /split}}]
    route:
    - destination: {host: echo, subset: v1}
      weight: 70
      headers: {response: {set: {x-subset: v1}}}
    - destination: {host: echo, subset: v2}
      weight: 30
      headers: {response: {set: {x-subset: v2}}}
  - route: [{destination: {host: echo, subset: v1}}]
    mirrors:
    - destination: {host: mirror}
      percentage: {value: 50}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_direct_responses_rewrites_headers_and_mirrors() {
    let (mesh, _manifests) = workload_mesh("traffic_routing", ROUTING).await;

    let redirect = via_client(&mesh, "echo:8080", "/old/page?x=1", &[]).await;
    assert_eq!(redirect.status, 308);
    assert_eq!(
        redirect.headers["location"],
        "http://elsewhere:8081/new?x=1"
    );

    let teapot = via_client(&mesh, "echo:8080", "/teapot", &[]).await;
    assert_eq!(teapot.status, 418);
    assert_eq!(teapot.text(), "short and stout");

    let api = via_client(
        &mesh,
        "echo:8080",
        "/api/v1/items?q=2",
        &[("x-drop", "secret")],
    )
    .await;
    assert_eq!(api.status, 200);
    assert_eq!(api.headers["x-served-by"], "api-route");
    let echoed = api.demo();
    assert_eq!(echoed.path.as_deref(), Some("/v2/items"));
    assert_eq!(echoed.headers["host"], "echo-rewritten");
    assert_eq!(echoed.headers["x-route"], "api");
    assert_eq!(echoed.headers["x-destination"], "v1");
    assert!(!echoed.headers.contains_key("x-drop"));

    let profile = via_client(&mesh, "echo:8080", "/users/42/profile", &[]).await;
    assert_eq!(profile.demo().path.as_deref(), Some("/profile/42"));

    // Weighted destinations carry their own response headers.
    let mut v1 = 0;
    for _ in 0..400 {
        let reply = via_client(&mesh, "echo:8080", "/split", &[]).await;
        let version = reply.demo().version.expect("echo reports its version");
        assert_eq!(reply.headers["x-subset"], version.as_str());
        v1 += usize::from(version == "v1");
    }
    // 70% of 400 is 280, with a standard deviation of about 9.
    assert!((235..=325).contains(&v1), "v1 answered {v1} of 400");

    // Half the requests are mirrored; their answers never reach the client.
    const MIRRORED: usize = 400;
    for _ in 0..MIRRORED {
        let reply = via_client(&mesh, "echo:8080", "/mirrored", &[]).await;
        assert_eq!(reply.status, 200);
        assert_eq!(reply.demo().service, "echo");
    }
    let mirror = mesh.workload("mirror-v1");
    let labels = ["reporter=\"destination\"", "response_code=\"200\""];
    let mut copies = 0.0;
    let until = Instant::now() + CONVERGENCE_DEADLINE;
    while Instant::now() < until {
        let now = requests_counted(&mesh.proxy_stats(mirror).await, &labels);
        if now == copies && now > 0.0 {
            break; // settled: fire-and-forget copies have all landed
        }
        copies = now;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // 50% of 400 is 200, with a standard deviation of 10.
    assert!(
        (150.0..=250.0).contains(&copies),
        "the mirror got {copies} of {MIRRORED}"
    );
}

const CORS: &str = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: echo}
spec:
  hosts: [echo]
  http:
  - corsPolicy:
      allowOrigins: [{exact: "https://app.example"}]
      allowMethods: [POST, GET]
      allowHeaders: [x-custom]
      exposeHeaders: [x-served-by]
      maxAge: 1h
    route: [{destination: {host: echo, subset: v1}}]
"#;

/// An OPTIONS preflight from `origin` through the client's sidecar, as the
/// raw lower-cased answer.
async fn preflight_via_client(mesh: &UpMesh, origin: &str) -> String {
    let client = mesh.workload("client-v1");
    let address = std::net::SocketAddr::from((client.address, client.outbound_port));
    let request = format!(
        "OPTIONS /items HTTP/1.1\r\nhost: echo:8080\r\norigin: {origin}\r\n\
         access-control-request-method: POST\r\nconnection: close\r\n\r\n"
    );
    trellis_testbed::send_raw(address, request.as_bytes())
        .await
        .expect("the client's sidecar answers the preflight")
        .to_ascii_lowercase()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_preflights_are_answered_by_the_sidecar() {
    let (mesh, _manifests) = workload_mesh("traffic_cors", CORS).await;
    let deadline = Instant::now() + CONVERGENCE_DEADLINE;
    let answer = loop {
        let answer = preflight_via_client(&mesh, "https://app.example").await;
        if answer.contains("access-control-allow-origin") {
            break answer;
        }
        assert!(
            Instant::now() < deadline,
            "the CORS policy never applied: {answer}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(answer.starts_with("http/1.1 200"), "{answer}");
    for header in [
        "access-control-allow-origin: https://app.example",
        "access-control-allow-methods: post,get",
        "access-control-allow-headers: x-custom",
        "access-control-max-age: 3600",
    ] {
        assert!(answer.contains(header), "{header} missing: {answer}");
    }
    assert!(
        answer.ends_with("\r\n\r\n"),
        "the sidecar answers with no body, the app never sees it: {answer}"
    );

    // Another origin's preflight goes to the app, without CORS headers.
    let answer = preflight_via_client(&mesh, "https://evil.example").await;
    assert!(answer.starts_with("http/1.1 200"), "{answer}");
    assert!(!answer.contains("access-control-allow-origin"), "{answer}");
    assert!(
        answer.contains("\"access-control-request-method\""),
        "{answer}"
    );

    // An actual request from the allowed origin reaches the app and its
    // response carries the allow-origin and expose headers.
    let reply = via_client(
        &mesh,
        "echo:8080",
        "/items",
        &[("origin", "https://app.example")],
    )
    .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.demo().headers["origin"], "https://app.example");
    assert_eq!(
        reply.headers["access-control-allow-origin"],
        "https://app.example"
    );
    assert_eq!(
        reply.headers["access-control-expose-headers"],
        "x-served-by"
    );
}
