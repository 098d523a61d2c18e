use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _, duplex};

use super::*;

#[tokio::test]
async fn bytes_flow_both_ways_and_each_half_close_is_passed_on() {
    let (mut client, proxy_downstream) = duplex(64);
    let (proxy_upstream, mut server) = duplex(64);
    let copying = tokio::spawn(copy_both_ways(
        proxy_downstream,
        proxy_upstream,
        Some(Duration::from_secs(30)),
    ));
    client.write_all(b"request").await.unwrap();
    client.shutdown().await.unwrap();
    let mut request = Vec::new();
    server.read_to_end(&mut request).await.unwrap();
    assert_eq!(
        request, b"request",
        "the client's half-close reaches the server"
    );
    // The other direction still works after the client's half-close.
    server.write_all(b"late reply").await.unwrap();
    server.shutdown().await.unwrap();
    let mut reply = Vec::new();
    client.read_to_end(&mut reply).await.unwrap();
    assert_eq!(reply, b"late reply");
    let (bytes, idle) = copying.await.unwrap();
    assert_eq!(bytes, (7, 10));
    assert!(!idle);
}

#[tokio::test]
async fn a_silent_connection_is_closed_after_the_idle_timeout() {
    let (_client, proxy_downstream) = duplex(64);
    let (proxy_upstream, _server) = duplex(64);
    let copying = copy_both_ways(
        proxy_downstream,
        proxy_upstream,
        Some(Duration::from_millis(100)),
    );
    let (_, idle) = tokio::time::timeout(Duration::from_secs(10), copying)
        .await
        .expect("closed by the idle timeout");
    assert!(idle);
}

#[test]
fn compiles_istio_tcp_proxies_and_rejects_what_it_cannot_do() {
    let config = |cluster: Option<ClusterSpecifier>, idle: Option<u64>| TcpProxy {
        stat_prefix: "inbound_7000".into(),
        cluster_specifier: cluster,
        idle_timeout: idle.map(|seconds| envoy_types::pb::google::protobuf::Duration {
            seconds: seconds as i64,
            nanos: 0,
        }),
        ..Default::default()
    };
    let cluster = Some(ClusterSpecifier::Cluster("PassthroughCluster".into()));
    let spec = TcpProxySpec::compile(&config(cluster.clone(), Some(60)).encode_to_vec()).unwrap();
    assert_eq!(spec.cluster, "PassthroughCluster");
    assert_eq!(spec.idle_timeout, Some(Duration::from_secs(60)));
    let spec = TcpProxySpec::compile(&config(cluster.clone(), Some(0)).encode_to_vec()).unwrap();
    assert_eq!(spec.idle_timeout, None, "zero disables the idle timeout");
    let spec = TcpProxySpec::compile(&config(cluster, None).encode_to_vec()).unwrap();
    assert_eq!(
        spec.idle_timeout,
        Some(Duration::from_secs(3600)),
        "Envoy's default"
    );
    assert!(TcpProxySpec::compile(&config(None, None).encode_to_vec()).is_err());
    assert!(TcpProxySpec::compile(b"\xff\xff").is_err());
}

/// A network RBAC denial closes the connection before any upstream is
/// tried, and is counted and logged as Envoy's filter reports it.
#[tokio::test]
async fn a_denied_connection_is_closed_counted_and_logged() {
    use envoy_types::pb::envoy::config::rbac::v3::{Rbac, rbac::Action};
    use envoy_types::pb::envoy::extensions::filters::network::rbac::v3::Rbac as NetworkRbac;

    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("access.log");
    let allow_nothing = NetworkRbac {
        rules: Some(Rbac {
            action: Action::Allow as i32,
            ..Default::default()
        }),
        ..Default::default()
    };
    let spec = TcpProxySpec {
        stat_prefix: "inbound_9000".into(),
        // Never reached: a connection attempt would fail the test below.
        cluster: "no-such-cluster".into(),
        weighted: None,
        idle_timeout: None,
        access_logs: vec![AccessLogSpec {
            path: log_path.to_string_lossy().into_owned(),
            format: Arc::new(
                crate::access_log::LogFormat::parse(
                    "%RESPONSE_FLAGS% %CONNECTION_TERMINATION_DETAILS%\n",
                )
                .unwrap(),
            ),
            filter: None,
        }],
        rbac: vec![RbacFilter::compile_network(&allow_nothing.encode_to_vec()).unwrap()],
        stats: Some(Arc::new(crate::stats_filter::StatsSpec::standard())),
    };
    let state = test_state();
    let (mut client, proxy_downstream) = duplex(64);
    let downstream = Downstream {
        addresses: Addresses {
            remote: "10.0.0.2:40000".parse().unwrap(),
            local: "10.0.0.3:9000".parse().unwrap(),
        },
        principal: Some("spiffe://cluster.local/ns/foo/sa/curl"),
        server_name: None,
    };
    let labels = crate::connection::connection_labels(
        &state,
        crate::listener::Direction::Inbound,
        None,
        true,
    );
    serve(proxy_downstream, &spec, downstream, labels, state.clone()).await;
    let mut reply = Vec::new();
    client.read_to_end(&mut reply).await.unwrap();
    assert!(reply.is_empty(), "the connection is closed without a reply");
    let stats = state.metrics.render();
    assert!(
        stats.lines().any(
            |line| line.starts_with("istio_tcp_connections_closed_total{")
                && line.contains("response_flags=\"RBAC\"")
        ),
        "{stats}"
    );
    let line = eventually_read(&log_path).await;
    assert_eq!(line, "RBAC rbac_access_denied_matched_policy[none]\n");
}

fn test_state() -> Arc<ProxyState> {
    let node = trellis_xds::NodeInfo {
        kind: trellis_xds::node::ProxyKind::Sidecar,
        ip: "10.0.0.3".parse().unwrap(),
        pod_name: "echo-0".into(),
        namespace: "foo".into(),
        service_account: "echo".into(),
        workload_name: "echo".into(),
        labels: Default::default(),
        interception: trellis_xds::node::Interception::Redirect,
        app_ports: Default::default(),
        outbound_port: 15001,
        locality: String::new(),
    };
    let id = "spiffe://cluster.local/ns/foo/sa/echo".parse().unwrap();
    ProxyState::new(crate::identity::Identity::new(id), node, Arc::default())
}

/// The log file's text once the writer has flushed it.
async fn eventually_read(path: &std::path::Path) -> String {
    for _ in 0..100 {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if !text.is_empty() {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("nothing logged to {}", path.display());
}
