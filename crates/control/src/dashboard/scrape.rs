//! Scrapes every connected proxy's Prometheus endpoint each interval and
//! records what the destination sidecars counted in the store.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use trellis_xds::server::ProxyRegistry;

use super::exposition::{self, Sample};
use super::store::{Counters, EdgeLabels, ProxyScrape, Store};

const REQUESTS: &str = "istio_requests_total";
const DURATION_BUCKETS: &str = "istio_request_duration_milliseconds_bucket";
/// Response flags of requests refused by policy (Envoy's, as the proxy
/// reports them): an AuthorizationPolicy, an external authorizer.
const RBAC_DENIED: &str = "RBAC";
const EXT_AUTHZ_DENIED: &str = "UAEX";
/// Larger scrapes are refused rather than buffered.
const MAX_SCRAPE_BYTES: usize = 8 << 20;

#[derive(Debug, thiserror::Error)]
pub enum ScrapeError {
    #[error("connecting: {0}")]
    Connect(#[from] std::io::Error),
    #[error("HTTP: {0}")]
    Http(#[from] hyper::Error),
    #[error("answered {0}")]
    Status(hyper::StatusCode),
    #[error("reading the body: {0}")]
    Body(String),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("{0}")]
    Parse(#[from] exposition::ParseError),
}

/// The edge a destination-reported sample belongs to; `None` for samples
/// the dashboard does not keep.
fn edge_of(sample: &Sample) -> Option<EdgeLabels> {
    if sample.label("reporter") != "destination" {
        return None;
    }
    Some(EdgeLabels {
        source_workload: sample.label("source_workload").to_string(),
        source_namespace: sample.label("source_workload_namespace").to_string(),
        destination_workload: sample.label("destination_workload").to_string(),
        destination_namespace: sample.label("destination_workload_namespace").to_string(),
        destination_version: sample.label("destination_version").to_string(),
        service_name: sample.label("destination_service_name").to_string(),
        service_namespace: sample.label("destination_service_namespace").to_string(),
        security_policy: sample.label("connection_security_policy").to_string(),
    })
}

/// Sums a scrape's request counters and duration buckets by edge (over
/// response codes and the labels the dashboard does not show).
pub fn summarize(samples: &[Sample]) -> ProxyScrape {
    let mut edges: HashMap<EdgeLabels, Counters> = HashMap::new();
    for sample in samples {
        let is_bucket = sample.name == DURATION_BUCKETS;
        if !(is_bucket || sample.name == REQUESTS) || !sample.value.is_finite() {
            continue;
        }
        let Some(edge) = edge_of(sample) else {
            continue;
        };
        let counters = edges.entry(edge).or_default();
        if is_bucket {
            let Ok(bound) = sample.label("le").parse::<f64>() else {
                continue;
            };
            add_to_bucket(&mut counters.buckets, bound, sample.value);
        } else {
            counters.requests += sample.value;
            if sample.label("response_code").starts_with('5') {
                counters.server_errors += sample.value;
            }
            // The proxy prints several flags comma-separated (`DI,RBAC`).
            for flag in sample.label("response_flags").split(',') {
                match flag {
                    RBAC_DENIED => counters.rbac_denied += sample.value,
                    EXT_AUTHZ_DENIED => counters.ext_authz_denied += sample.value,
                    _ => {}
                }
            }
        }
    }
    edges
}

fn add_to_bucket(buckets: &mut Vec<(f64, f64)>, bound: f64, count: f64) {
    match buckets.binary_search_by(|(b, _)| b.total_cmp(&bound)) {
        Ok(index) => buckets[index].1 += count,
        Err(index) => buckets.insert(index, (bound, count)),
    }
}

/// GETs `/stats/prometheus` at `address` and parses it.
pub async fn scrape(address: SocketAddr, timeout: Duration) -> Result<Vec<Sample>, ScrapeError> {
    let text = tokio::time::timeout(
        timeout,
        fetch(address, &address.to_string(), "/stats/prometheus"),
    )
    .await
    .map_err(|_| ScrapeError::Timeout(timeout))??;
    Ok(exposition::parse(&text)?)
}

/// GETs `path` from `address`, naming `host`; the body as text.
pub(super) async fn fetch(
    address: SocketAddr,
    host: &str,
    path: &str,
) -> Result<String, ScrapeError> {
    let stream = tokio::net::TcpStream::connect(address).await?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    let request = hyper::Request::get(path)
        .header(hyper::header::HOST, host)
        .body(Empty::<Bytes>::new())
        .map_err(|e| ScrapeError::Body(format!("request for {path}: {e}")))?;
    let response = sender.send_request(request).await?;
    if !response.status().is_success() {
        return Err(ScrapeError::Status(response.status()));
    }
    let body = Limited::new(response.into_body(), MAX_SCRAPE_BYTES)
        .collect()
        .await
        .map_err(|e| ScrapeError::Body(e.to_string()))?
        .to_bytes();
    String::from_utf8(body.to_vec()).map_err(|e| ScrapeError::Body(e.to_string()))
}

/// Scrapes every connected proxy each `interval`, forever.
pub async fn run(
    proxies: Arc<ProxyRegistry>,
    store: Arc<Mutex<Store>>,
    interval: Duration,
    stats_port: u16,
) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        ticks.tick().await;
        let connected: Vec<(String, SocketAddr)> = proxies
            .snapshot()
            .into_iter()
            .filter_map(|p| Some((p.node_id, SocketAddr::new(p.node?.ip, stats_port))))
            .collect();
        let mut scrapes = tokio::task::JoinSet::new();
        for (id, address) in connected.iter().cloned() {
            scrapes.spawn(async move {
                match scrape(address, interval).await {
                    Ok(samples) => Some((id, summarize(&samples))),
                    Err(error) => {
                        tracing::debug!(proxy = %id, %address, %error, "dashboard scrape failed");
                        None
                    }
                }
            });
        }
        let answered: Vec<_> = scrapes.join_all().await.into_iter().flatten().collect();
        let live: BTreeSet<String> = connected.into_iter().map(|(id, _)| id).collect();
        let now_ms = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let mut store = store.lock().unwrap_or_else(|e| e.into_inner());
        store.record(now_ms, answered, &live);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCRAPE: &str = r#"# TYPE istio_requests counter
istio_requests_total{reporter="destination",source_workload="productpage-v1",source_workload_namespace="default",destination_workload="reviews-v1",destination_workload_namespace="default",destination_version="v1",destination_service_name="reviews",destination_service_namespace="default",response_code="200",connection_security_policy="mutual_tls"} 8
istio_requests_total{reporter="destination",source_workload="productpage-v1",source_workload_namespace="default",destination_workload="reviews-v1",destination_workload_namespace="default",destination_version="v1",destination_service_name="reviews",destination_service_namespace="default",response_code="503",connection_security_policy="mutual_tls"} 2
istio_requests_total{reporter="source",source_workload="productpage-v1",destination_service_name="reviews",response_code="200"} 99
istio_request_duration_milliseconds_bucket{reporter="destination",source_workload="productpage-v1",source_workload_namespace="default",destination_workload="reviews-v1",destination_workload_namespace="default",destination_version="v1",destination_service_name="reviews",destination_service_namespace="default",response_code="200",connection_security_policy="mutual_tls",le="+Inf"} 8
istio_request_duration_milliseconds_bucket{reporter="destination",source_workload="productpage-v1",source_workload_namespace="default",destination_workload="reviews-v1",destination_workload_namespace="default",destination_version="v1",destination_service_name="reviews",destination_service_namespace="default",response_code="200",connection_security_policy="mutual_tls",le="10.0"} 6
istio_request_duration_milliseconds_bucket{reporter="destination",source_workload="productpage-v1",source_workload_namespace="default",destination_workload="reviews-v1",destination_workload_namespace="default",destination_version="v1",destination_service_name="reviews",destination_service_namespace="default",response_code="503",connection_security_policy="mutual_tls",le="10.0"} 1
istio_request_duration_milliseconds_bucket{reporter="destination",source_workload="productpage-v1",source_workload_namespace="default",destination_workload="reviews-v1",destination_workload_namespace="default",destination_version="v1",destination_service_name="reviews",destination_service_namespace="default",response_code="503",connection_security_policy="mutual_tls",le="+Inf"} 2
# EOF
"#;

    #[test]
    fn sums_destination_samples_by_edge_over_response_codes() {
        let edges = summarize(&exposition::parse(SCRAPE).unwrap());
        assert_eq!(edges.len(), 1, "source-reported samples are not kept");
        let (labels, counters) = edges.into_iter().next().unwrap();
        assert_eq!(labels.destination_version, "v1");
        assert_eq!(labels.security_policy, "mutual_tls");
        assert_eq!((counters.requests, counters.server_errors), (10.0, 2.0));
        assert_eq!(counters.buckets, [(10.0, 7.0), (f64::INFINITY, 10.0)]);
    }

    #[test]
    fn counts_requests_refused_by_policy_by_their_flag() {
        let labels = |code: &str, flags: &str| {
            format!(
                "reporter=\"destination\",destination_service_name=\"reviews\",response_code=\"{code}\",response_flags=\"{flags}\""
            )
        };
        let text = [
            ("403", "RBAC", 3),
            ("403", "DI,RBAC", 1),
            ("401", "UAEX", 2),
            ("403", "-", 5),
            ("200", "-", 7),
        ]
        .map(|(code, flags, n)| format!("istio_requests_total{{{}}} {n}\n", labels(code, flags)))
        .concat();
        let edges = summarize(&exposition::parse(&text).unwrap());
        let counters = edges.into_values().next().unwrap();
        assert_eq!(counters.requests, 18.0);
        // A 403 the app wrote itself is not a policy's.
        assert_eq!(
            (counters.rbac_denied, counters.ext_authz_denied),
            (4.0, 2.0)
        );
    }

    #[tokio::test]
    async fn an_unreachable_proxy_is_an_error_not_a_hang() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        // Accepted by the kernel, never answered.
        let error = scrape(address, Duration::from_millis(200))
            .await
            .unwrap_err();
        assert!(matches!(error, ScrapeError::Timeout(_)), "{error}");
        drop(listener);
        let error = scrape(address, Duration::from_millis(200))
            .await
            .unwrap_err();
        assert!(matches!(error, ScrapeError::Connect(_)), "{error}");
    }
}
