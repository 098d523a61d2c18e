//! Transparent capture end to end, as in Kubernetes pods (root only): two
//! pods in network namespaces joined by a bridge, each with `trellis
//! iptables` capture and a `trellis proxy --interception-mode REDIRECT`
//! sidecar running as uid 1337, and a control plane in the hub namespace.
//! The test plays pod A's app: it calls Services by their cluster IPs with
//! no proxy settings, and the sidecars carry the calls over mTLS.
//! Without root (or `ip`/`iptables`) it skips with a message; CI runs as root.

#[path = "capture/pods.rs"]
mod pods;

use trellis_testbed::netns::{Netns, Star, existing_namespaces, unavailable};

use pods::{
    EchoServer, eventually, http_get, http_get_as, read, start_app, start_control_plane,
    start_sidecar, state_dir, tcp_round_trip, write_readable,
};

const TRELLIS: &str = env!("CARGO_BIN_EXE_trellis");
/// Hub 10.213.0.1 (control plane), pod a 10.213.0.2, pod b 10.213.0.3.
const PREFIX: [u8; 3] = [10, 213, 0];
const HTTP_VIP: &str = "10.96.0.20";
const ECHO_VIP: &str = "10.96.0.21";
const HTTP_PORT: u16 = 9080;
const ECHO_PORT: u16 = 7000;
/// A port of pod b that no Service declares.
const UNDECLARED_PORT: u16 = 7100;
/// Another, served by an HTTP app.
const UNDECLARED_HTTP_PORT: u16 = 7200;

/// Services with cluster IPs, and WorkloadEntries for the two pods.
const MESH: &str = "\
apiVersion: v1
kind: Service
metadata: {name: b, namespace: default}
spec: {clusterIP: 10.96.0.20, selector: {app: b}, ports: [{name: http, port: 9080}]}
---
apiVersion: v1
kind: Service
metadata: {name: b-echo, namespace: default}
spec: {clusterIP: 10.96.0.21, selector: {app: b}, ports: [{name: tcp-echo, port: 7000}]}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: a-0, namespace: default}
spec: {address: 10.213.0.2, labels: {app: a}, serviceAccount: a}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: b-0, namespace: default}
spec: {address: 10.213.0.3, labels: {app: b}, serviceAccount: b}
";
#[test]
fn captured_pods_talk_over_mtls_and_unknown_destinations_follow_the_policy() {
    if let Some(reason) = unavailable() {
        eprintln!("skipping the capture end-to-end test: {reason}");
        return;
    }
    let dir = state_dir(MESH, &["a", "b"]);
    let star = Star::new("capture", PREFIX, &["a", "b"]).expect("building the namespaces");
    let namespaces = star.namespaces();
    let control_plane = start_control_plane(&star.hub, dir.path(), "ALLOW_ANY");
    let (a, b) = (star.pod("a"), star.pod("b"));
    start_app(b, "b", HTTP_PORT, dir.path());
    let _echo = EchoServer::start(b, ECHO_PORT);
    let _undeclared = EchoServer::start(b, UNDECLARED_PORT);
    start_app(b, "undeclared", UNDECLARED_HTTP_PORT, dir.path());
    for (pod, name) in [(a, "a"), (b, "b")] {
        start_sidecar(pod, name, &star.hub, dir.path());
    }

    http_through_both_sidecars(a);
    unknown_host_passed_through(a, b);
    inbound_http_passed_through(&star.hub, b);
    let echoed = tcp_round_trip(a, ECHO_VIP, ECHO_PORT, b"over a declared TCP port");
    assert_eq!(echoed.unwrap(), b"echo:over a declared TCP port");
    tcp_counted_by_both_sidecars(a, b);
    let passed = tcp_round_trip(a, &b.address.to_string(), UNDECLARED_PORT, b"anywhere");
    assert_eq!(
        passed.expect("ALLOW_ANY passes traffic through"),
        b"echo:anywhere"
    );

    star.hub.stop(control_plane);
    start_control_plane(&star.hub, dir.path(), "REGISTRY_ONLY");
    let refused = eventually(|| {
        tcp_round_trip(a, &b.address.to_string(), UNDECLARED_PORT, b"anywhere").is_err()
    });
    assert!(
        refused,
        "REGISTRY_ONLY still passes traffic to an undeclared destination"
    );
    let echoed = tcp_round_trip(a, ECHO_VIP, ECHO_PORT, b"still served");
    assert_eq!(echoed.unwrap(), b"echo:still served");
    let vip = format!("{HTTP_VIP}:{HTTP_PORT}");
    let (status, _) = http_get_as(a, &vip, "example.com", "/").unwrap();
    assert_eq!(
        status, 502,
        "REGISTRY_ONLY answers hosts outside the registry with 502"
    );
    let pod_b = format!("{}:{HTTP_PORT}", b.address);
    let (status, _) = http_get_as(a, &pod_b, "example.com", "/").unwrap();
    assert_eq!(status, 502, "whatever the address on an HTTP port");

    for pod in [a, b] {
        pod.exec_ok(TRELLIS, &["iptables", "--cleanup"])
            .expect("cleanup");
        let rules = pod.exec_ok("iptables-save", &["-t", "nat"]).unwrap();
        assert!(
            !rules.contains("ISTIO_"),
            "rules left in {}:\n{rules}",
            pod.name
        );
    }
    drop(star);
    let left = existing_namespaces().unwrap();
    assert!(
        namespaces.iter().all(|n| !left.contains(n)),
        "namespaces left: {left:?}"
    );
}

/// Pod a's app calls b's cluster IP; b's app sees a's identity in XFCC,
/// and a's sidecar counts the request as the source.
fn http_through_both_sidecars(a: &Netns) {
    let url_host = format!("{HTTP_VIP}:{HTTP_PORT}");
    let (status, body) = http_get(a, &url_host, "/").expect("calling b by its cluster IP");
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("URI=spiffe://cluster.local/ns/default/sa/a"),
        "b's app did not see a's identity in x-forwarded-client-cert: {body}"
    );
    let stats_host = format!("{}:15090", a.address);
    let (_, stats) = http_get(a, &stats_host, "/stats/prometheus").expect("a's stats");
    let counted = stats.lines().any(|line| {
        line.starts_with("istio_requests_total{")
            && line.contains("reporter=\"source\"")
            && line.contains("destination_service=\"b.default.svc.cluster.local\"")
            && line.contains("response_code=\"200\"")
    });
    assert!(counted, "a's sidecar did not count the request:\n{stats}");
}

/// Under ALLOW_ANY, HTTP for a host outside the registry on an HTTP port
/// goes to its original destination (pod b's own address here), and a's
/// sidecar counts it against `PassthroughCluster`, as Istio's does.
fn unknown_host_passed_through(a: &Netns, b: &Netns) {
    let pod_b = format!("{}:{HTTP_PORT}", b.address);
    let (status, body) = http_get_as(a, &pod_b, "example.com", "/").expect("calling pod b");
    assert_eq!(status, 200, "{body}");
    let stats_host = format!("{}:15090", a.address);
    let counted = eventually(|| {
        let (_, stats) = http_get(a, &stats_host, "/stats/prometheus").unwrap_or_default();
        stats.lines().any(|line| {
            line.starts_with("istio_requests_total{")
                && line.contains("reporter=\"source\"")
                && line.contains("destination_service_name=\"PassthroughCluster\"")
                && line.contains("response_code=\"200\"")
        })
    });
    assert!(
        counted,
        "a's sidecar did not count the passed-through request"
    );
}

/// Plaintext HTTP from outside the mesh to a port no Service declares is
/// sniffed by b's sidecar and counted as a request to its original
/// destination.
fn inbound_http_passed_through(outside: &Netns, b: &Netns) {
    let undeclared = format!("{}:{UNDECLARED_HTTP_PORT}", b.address);
    let (status, body) = http_get(outside, &undeclared, "/").expect("calling pod b");
    assert_eq!(status, 200, "{body}");
    let stats_host = format!("{}:15090", b.address);
    let counted = eventually(|| {
        let (_, stats) = http_get(b, &stats_host, "/stats/prometheus").unwrap_or_default();
        stats.lines().any(|line| {
            line.starts_with("istio_requests_total{")
                && line.contains("reporter=\"destination\"")
                && line.contains("destination_service_name=\"InboundPassthroughCluster\"")
                && line.contains("response_code=\"200\"")
        })
    });
    assert!(
        counted,
        "b's sidecar did not count the passed-through request"
    );
}

/// Both sidecars count the TCP connection to b-echo; b's saw it arrive over mTLS.
fn tcp_counted_by_both_sidecars(a: &Netns, b: &Netns) {
    let service = "destination_service=\"b-echo.default.svc.cluster.local\"";
    for (pod, reporter, security) in [
        (a, "reporter=\"source\"", ""),
        (
            b,
            "reporter=\"destination\"",
            "connection_security_policy=\"mutual_tls\"",
        ),
    ] {
        let stats_host = format!("{}:15090", pod.address);
        let (_, stats) = http_get(pod, &stats_host, "/stats/prometheus").expect("stats");
        let counted = eventually(|| {
            let (_, stats) = http_get(pod, &stats_host, "/stats/prometheus").unwrap_or_default();
            stats.lines().any(|line| {
                line.starts_with("istio_tcp_connections_closed_total{")
                    && [reporter, service, security]
                        .iter()
                        .all(|l| line.contains(l))
            })
        });
        assert!(
            counted,
            "{} did not count the TCP connection:\n{stats}",
            pod.name
        );
    }
}

/// Hub 10.214.0.1, pods curl 10.214.0.2, other 10.214.0.3, echo 10.214.0.4.
const AUTHZ_PREFIX: [u8; 3] = [10, 214, 0];
const TCP_ECHO_VIP: &str = "10.96.0.30";
const TCP_ECHO_PORT: u16 = 9000;
/// A port of echo that its Service does not declare (passthrough).
const TCP_ECHO_UNDECLARED: u16 = 9002;

/// Istio's tcp-echo sample in miniature: a TCP Service, its workload, and
/// two clients with their own service accounts.
const AUTHZ_MESH: &str = "\
apiVersion: v1
kind: Service
metadata: {name: tcp-echo, namespace: default}
spec: {clusterIP: 10.96.0.30, selector: {app: echo}, ports: [{name: tcp, port: 9000}]}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: curl-0, namespace: default}
spec: {address: 10.214.0.2, labels: {app: curl}, serviceAccount: curl}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: other-0, namespace: default}
spec: {address: 10.214.0.3, labels: {app: other}, serviceAccount: other}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: echo-0, namespace: default}
spec: {address: 10.214.0.4, labels: {app: echo}, serviceAccount: echo}
";

/// Only curl may connect, and only to port 9000.
const ALLOW_CURL_ON_9000: &str = "\
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: tcp-policy, namespace: default}
spec:
  selector: {matchLabels: {app: echo}}
  action: ALLOW
  rules:
  - from: [{source: {principals: [cluster.local/ns/default/sa/curl]}}]
    to: [{operation: {ports: ['9000']}}]
";

/// `methods` cannot be seen on TCP: the rule denies all of port 9000.
const DENY_GET_ON_9000: &str = "\
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-get, namespace: default}
spec:
  selector: {matchLabels: {app: echo}}
  action: DENY
  rules:
  - to: [{operation: {methods: [GET], ports: ['9000']}}]
";

/// Istio's "Authorization for TCP traffic" task: the echo workload's
/// sidecar enforces AuthorizationPolicy on each connection.
#[test]
fn tcp_authorization_follows_istios_task() {
    if let Some(reason) = unavailable() {
        eprintln!("skipping the TCP authorization end-to-end test: {reason}");
        return;
    }
    let pods = ["curl", "other", "echo"];
    let dir = state_dir(AUTHZ_MESH, &pods);
    let star = Star::new("tcpauthz", AUTHZ_PREFIX, &pods).expect("building the namespaces");
    let namespaces = star.namespaces();
    start_control_plane(&star.hub, dir.path(), "ALLOW_ANY");
    let (curl, other, echo) = (star.pod("curl"), star.pod("other"), star.pod("echo"));
    let _declared = EchoServer::start(echo, TCP_ECHO_PORT);
    let _undeclared = EchoServer::start(echo, TCP_ECHO_UNDECLARED);
    for name in pods {
        start_sidecar(star.pod(name), name, &star.hub, dir.path());
    }
    let echo_ip = echo.address.to_string();
    let to_service = |pod: &Netns| tcp_round_trip(pod, TCP_ECHO_VIP, TCP_ECHO_PORT, b"port 9000");
    let to_undeclared = |pod: &Netns| tcp_round_trip(pod, &echo_ip, TCP_ECHO_UNDECLARED, b"9002");
    assert_eq!(
        to_service(other).unwrap(),
        b"echo:port 9000",
        "no policy yet"
    );

    let policy = dir.path().join("config").join("policy.yaml");
    write_readable(&policy, ALLOW_CURL_ON_9000);
    assert!(
        eventually(|| to_service(other).is_err()),
        "the ALLOW policy never refused another principal"
    );
    assert_eq!(to_service(curl).unwrap(), b"echo:port 9000");
    assert!(
        to_undeclared(curl).is_err(),
        "the ALLOW policy names port 9000 only"
    );
    denial_reported(echo, dir.path(), "rbac_access_denied_matched_policy[none]");

    write_readable(&policy, DENY_GET_ON_9000);
    assert!(
        eventually(|| to_service(curl).is_err()),
        "a DENY rule on methods did not close port 9000"
    );
    assert!(to_service(other).is_err());
    assert_eq!(to_undeclared(curl).unwrap(), b"echo:9002");
    denial_reported(
        echo,
        dir.path(),
        "rbac_access_denied_matched_policy[ns[default]-policy[deny-get]-rule[0]]",
    );
    drop(star);
    let left = existing_namespaces().unwrap();
    assert!(
        namespaces.iter().all(|n| !left.contains(n)),
        "namespaces left: {left:?}"
    );
}

/// The echo sidecar counted a connection closed by RBAC and logged why
/// (the sidecars share one access log).
fn denial_reported(echo: &Netns, dir: &std::path::Path, details: &str) {
    let stats_host = format!("{}:15090", echo.address);
    let counted = eventually(|| {
        let (_, stats) = http_get(echo, &stats_host, "/stats/prometheus").unwrap_or_default();
        stats.lines().any(|line| {
            line.starts_with("istio_tcp_connections_closed_total{")
                && line.contains("reporter=\"destination\"")
                && line.contains("response_flags=\"RBAC\"")
        })
    });
    assert!(counted, "the echo sidecar did not count the denial");
    let log = dir.join("access.log");
    let logged = eventually(|| read(&log).lines().any(|line| line.contains(details)));
    assert!(logged, "no access log line with {details}:\n{}", read(&log));
}

/// Hub 10.215.0.1, pods client 10.215.0.2, server 10.215.0.3.
const SNIFF_PREFIX: [u8; 3] = [10, 215, 0];
const AUTO_VIP: &str = "10.96.0.40";
const AUTO_HTTP_PORT: u16 = 8000;
const AUTO_TCP_PORT: u16 = 7300;
/// Starts with a byte no HTTP request starts with: told apart at once.
const OPAQUE: &[u8] = b"{\"opaque\": true}";

/// A Service whose port names declare no protocol.
const SNIFF_MESH: &str = "\
apiVersion: v1
kind: Service
metadata: {name: auto, namespace: default}
spec:
  clusterIP: 10.96.0.40
  selector: {app: server}
  ports: [{name: web, port: 8000}, {name: raw, port: 7300}]
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: client-0, namespace: default}
spec: {address: 10.215.0.2, labels: {app: client}, serviceAccount: client}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: server-0, namespace: default}
spec: {address: 10.215.0.3, labels: {app: server}, serviceAccount: server}
";

/// On ports of undeclared protocol, HTTP reaches the connection managers
/// (sniffed outbound, told by its mTLS ALPN or sniffed inbound) and
/// anything else tcp_proxy, from a sidecar or from outside the mesh.
#[test]
fn undeclared_ports_are_sniffed() {
    if let Some(reason) = unavailable() {
        eprintln!("skipping the protocol sniffing end-to-end test: {reason}");
        return;
    }
    let pods = ["client", "server"];
    let dir = state_dir(SNIFF_MESH, &pods);
    let star = Star::new("sniff", SNIFF_PREFIX, &pods).expect("building the namespaces");
    let namespaces = star.namespaces();
    start_control_plane(&star.hub, dir.path(), "ALLOW_ANY");
    let (client, server) = (star.pod("client"), star.pod("server"));
    start_app(server, "auto", AUTO_HTTP_PORT, dir.path());
    let _echo = EchoServer::start(server, AUTO_TCP_PORT);
    for name in pods {
        start_sidecar(star.pod(name), name, &star.hub, dir.path());
    }

    let vip = format!("{AUTO_VIP}:{AUTO_HTTP_PORT}");
    let (status, body) = http_get(client, &vip, "/").expect("HTTP to the VIP");
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("URI=spiffe://cluster.local/ns/default/sa/client"),
        "the server's connection manager did not set XFCC: {body}"
    );
    let echoed = tcp_round_trip(client, AUTO_VIP, AUTO_TCP_PORT, OPAQUE);
    assert_eq!(echoed.unwrap(), [b"echo:", OPAQUE].concat());
    let direct = format!("{}:{AUTO_HTTP_PORT}", server.address);
    let (status, body) = http_get(&star.hub, &direct, "/").expect("plaintext HTTP");
    assert_eq!(status, 200, "{body}");
    let server_ip = server.address.to_string();
    let echoed = tcp_round_trip(&star.hub, &server_ip, AUTO_TCP_PORT, OPAQUE);
    assert_eq!(echoed.unwrap(), [b"echo:", OPAQUE].concat());

    let service = "destination_service=\"auto.default.svc.cluster.local\"";
    for (metric, security) in [
        ("istio_requests_total{", "mutual_tls"),
        ("istio_requests_total{", "none"),
        ("istio_tcp_connections_closed_total{", "mutual_tls"),
        ("istio_tcp_connections_closed_total{", "none"),
    ] {
        let security = format!("connection_security_policy=\"{security}\"");
        let stats_host = format!("{}:15090", server.address);
        let counted = eventually(|| {
            let (_, stats) = http_get(server, &stats_host, "/stats/prometheus").unwrap_or_default();
            stats.lines().any(|line| {
                line.starts_with(metric)
                    && line.contains("reporter=\"destination\"")
                    && line.contains(service)
                    && line.contains(&security)
            })
        });
        assert!(
            counted,
            "the server's sidecar did not count {metric}{security}"
        );
    }
    drop(star);
    let left = existing_namespaces().unwrap();
    assert!(
        namespaces.iter().all(|n| !left.contains(n)),
        "namespaces left: {left:?}"
    );
}
