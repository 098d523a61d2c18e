use super::*;

#[test]
fn parses_plain_http_urls_only() {
    let url: PrometheusUrl = "http://prometheus.istio-system:9090".parse().unwrap();
    assert_eq!(
        url,
        PrometheusUrl {
            host: "prometheus.istio-system".into(),
            port: 9090,
            prefix: String::new()
        }
    );
    let url: PrometheusUrl = "http://[::1]:9090/prom/".parse().unwrap();
    assert_eq!(
        (url.host.as_str(), url.port, url.prefix.as_str()),
        ("::1", 9090, "/prom")
    );
    assert_eq!("http://prom".parse::<PrometheusUrl>().unwrap().port, 80);
    assert_eq!("http://[::1]".parse::<PrometheusUrl>().unwrap().host, "::1");
    assert!("https://prom:9090".parse::<PrometheusUrl>().is_err());
    assert!("prom:9090".parse::<PrometheusUrl>().is_err());
    assert!("http://prom:http".parse::<PrometheusUrl>().is_err());
    assert!("http://prom:9090/?x=1".parse::<PrometheusUrl>().is_err());
}

/// Prometheus's federation output: samples with timestamps, each with
/// the `job` and `instance` of the target it was scraped from.
const FEDERATED: &str = r#"# TYPE istio_requests_total untyped
istio_requests_total{instance="10.0.0.7:15020",job="kubernetes-pods",reporter="destination",source_workload="productpage-v1",source_workload_namespace="default",destination_workload="reviews-v1",destination_workload_namespace="default",destination_version="v1",destination_service_name="reviews",destination_service_namespace="default",response_code="200",connection_security_policy="mutual_tls"} 8 1765100000000
istio_requests_total{instance="10.0.0.8:15020",job="kubernetes-pods",reporter="destination",source_workload="productpage-v1",source_workload_namespace="default",destination_workload="reviews-v2",destination_workload_namespace="default",destination_version="v2",destination_service_name="reviews",destination_service_namespace="default",response_code="200",connection_security_policy="mutual_tls"} 2 1765100000000
"#;

#[test]
fn groups_federated_samples_by_scraped_target() {
    let targets = by_target(exposition::parse(FEDERATED).unwrap());
    let names: Vec<&str> = targets.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "kubernetes-pods/10.0.0.7:15020",
            "kubernetes-pods/10.0.0.8:15020"
        ]
    );
    let reviews_v2 = scrape::summarize(&targets["kubernetes-pods/10.0.0.8:15020"]);
    let (edge, counters) = reviews_v2.into_iter().next().unwrap();
    assert_eq!(edge.destination_version, "v2");
    assert_eq!(counters.requests, 2.0);
}

#[tokio::test]
async fn reads_the_federation_api_over_http() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut request = vec![0; 4096];
        let read = socket.read(&mut request).await.unwrap();
        let head = String::from_utf8_lossy(&request[..read]).into_owned();
        let answer = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n\r\n{FEDERATED}",
            FEDERATED.len()
        );
        socket.write_all(answer.as_bytes()).await.unwrap();
        head
    });
    let url: PrometheusUrl = format!("http://127.0.0.1:{port}/prom").parse().unwrap();
    let samples = federate(&url, Duration::from_secs(5)).await.unwrap();
    assert_eq!(samples.len(), 2);
    let head = server.await.unwrap();
    assert!(
        head.starts_with(&format!("GET /prom/federate?{MATCH} HTTP/1.1")),
        "{head}"
    );
}
