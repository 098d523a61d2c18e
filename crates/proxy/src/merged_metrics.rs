//! The status port's merged metrics (Istio's 15020 `/stats/prometheus`):
//! the proxy's own metrics followed by the app's, scraped from where the
//! app's Prometheus annotations pointed before injection moved them to
//! 15020 (`ISTIO_PROMETHEUS_ANNOTATIONS`), so one scrape target per pod
//! serves both. A failed app scrape still answers with the proxy's metrics
//! and is counted, as Istio's agent does.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use serde::Deserialize;

/// Istio's default scrape timeout when Prometheus sends none.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(10);
/// A bigger answer than this is not metrics.
const MAX_APP_METRICS: usize = 32 << 20;
const DEFAULT_PATH: &str = "/metrics";

/// The app's own `prometheus.io/*` annotations, as the injector passes them.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct AppScrape {
    pub scrape: Option<String>,
    pub port: Option<String>,
    pub path: Option<String>,
}

/// Where the app serves its metrics; `None` when it does not.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppMetricsTarget {
    pub address: SocketAddr,
    pub path: String,
}

impl AppScrape {
    /// Parses the annotations' JSON; errors name what is wrong.
    pub fn parse(json: &str) -> Result<AppScrape, String> {
        serde_json::from_str(json).map_err(|e| format!("ISTIO_PROMETHEUS_ANNOTATIONS: {e}"))
    }

    /// The app's metrics endpoint on `ip`, unless scraping is off or no port is given.
    pub fn target(&self, ip: IpAddr) -> Result<Option<AppMetricsTarget>, String> {
        if self.scrape.as_deref() == Some("false") {
            return Ok(None);
        }
        let Some(port) = &self.port else {
            return Ok(None);
        };
        let port: u16 = port
            .trim()
            .parse()
            .map_err(|_| format!("ISTIO_PROMETHEUS_ANNOTATIONS: port {port:?} is not a port"))?;
        let path = match self.path.as_deref().map(str::trim) {
            None | Some("") => DEFAULT_PATH.to_string(),
            Some(path) if path.starts_with('/') => path.to_string(),
            Some(path) => format!("/{path}"),
        };
        Ok(Some(AppMetricsTarget {
            address: SocketAddr::new(ip, port),
            path,
        }))
    }
}

/// Scrape counts, reported under Istio's agent names.
#[derive(Debug, Default)]
pub struct MergeStats {
    scrapes: AtomicU64,
    app_failures: AtomicU64,
}

impl MergeStats {
    fn render(&self) -> String {
        format!(
            "# TYPE istio_agent_scrapes_total counter\n\
             istio_agent_scrapes_total {}\n\
             # TYPE istio_agent_scrape_failures_total counter\n\
             istio_agent_scrape_failures_total{{type=\"application\"}} {}\n",
            self.scrapes.load(Ordering::Relaxed),
            self.app_failures.load(Ordering::Relaxed),
        )
    }
}

/// The merged text: the proxy's metrics (without its OpenMetrics `# EOF`,
/// which would end the page early), the app's, then the scrape counts.
pub async fn merge(
    proxy_metrics: String,
    app: Option<&AppMetricsTarget>,
    timeout: Option<Duration>,
    stats: &MergeStats,
) -> String {
    stats.scrapes.fetch_add(1, Ordering::Relaxed);
    let mut out = strip_eof(proxy_metrics);
    if let Some(target) = app {
        match tokio::time::timeout(timeout.unwrap_or(SCRAPE_TIMEOUT), scrape(target)).await {
            Ok(Ok(text)) => {
                out.push_str(&text);
                if !text.is_empty() && !text.ends_with('\n') {
                    out.push('\n');
                }
            }
            Ok(Err(error)) => {
                stats.app_failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%error, address = %target.address, "app metrics scrape failed");
            }
            Err(_) => {
                stats.app_failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(address = %target.address, "app metrics scrape timed out");
            }
        }
    }
    out.push_str(&stats.render());
    out
}

fn strip_eof(mut metrics: String) -> String {
    if let Some(start) = metrics.rfind("# EOF")
        && metrics[start..].trim_end() == "# EOF"
    {
        metrics.truncate(start);
    }
    metrics
}

async fn scrape(target: &AppMetricsTarget) -> Result<String, String> {
    let stream = tokio::net::TcpStream::connect(target.address)
        .await
        .map_err(|e| format!("connecting: {e}"))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(connection);
    let request = hyper::Request::get(target.path.as_str())
        .header(hyper::header::HOST, target.address.to_string())
        .header(hyper::header::ACCEPT, "text/plain")
        .body(Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!("the app answered {status}"));
    }
    let body = Limited::new(response.into_body(), MAX_APP_METRICS)
        .collect()
        .await
        .map_err(|e| format!("reading the answer: {e}"))?
        .to_bytes();
    String::from_utf8(body.to_vec()).map_err(|_| "the answer is not UTF-8".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn annotations_give_the_apps_endpoint() {
        let ip: IpAddr = [127, 0, 0, 9].into();
        let app = AppScrape::parse(r#"{"scrape":"true","port":"9102"}"#).unwrap();
        assert_eq!(
            app.target(ip).unwrap(),
            Some(AppMetricsTarget {
                address: SocketAddr::new(ip, 9102),
                path: "/metrics".into()
            })
        );
        let app = AppScrape::parse(r#"{"port":"8080","path":"stats"}"#).unwrap();
        assert_eq!(app.target(ip).unwrap().unwrap().path, "/stats");
        let off = AppScrape::parse(r#"{"scrape":"false","port":"8080"}"#).unwrap();
        assert_eq!(off.target(ip).unwrap(), None);
        let bad = AppScrape::parse(r#"{"port":"http"}"#).unwrap();
        assert!(bad.target(ip).unwrap_err().contains("not a port"));
        assert!(AppScrape::parse("{").is_err());
    }

    #[test]
    fn the_proxys_end_of_page_marker_goes() {
        assert_eq!(strip_eof("a 1\n# EOF\n".into()), "a 1\n");
        assert_eq!(strip_eof("a 1\n".into()), "a 1\n");
        assert_eq!(
            strip_eof("# EOF in a comment\nb 2\n".into()),
            "# EOF in a comment\nb 2\n"
        );
    }

    async fn app_serving(status: u16, body: &'static str) -> AppMetricsTarget {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let service = hyper::service::service_fn(move |_request| async move {
                    Ok::<_, std::convert::Infallible>(
                        hyper::Response::builder()
                            .status(status)
                            .body(http_body_util::Full::new(Bytes::from_static(
                                body.as_bytes(),
                            )))
                            .unwrap(),
                    )
                });
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service),
                );
            }
        });
        AppMetricsTarget {
            address,
            path: "/metrics".into(),
        }
    }

    #[tokio::test]
    async fn merges_the_apps_metrics_after_the_proxys() {
        let app = app_serving(200, "# TYPE app_jobs counter\napp_jobs 7").await;
        let stats = MergeStats::default();
        let text = merge("istio_x 1\n# EOF\n".into(), Some(&app), None, &stats).await;
        assert!(
            text.starts_with("istio_x 1\n# TYPE app_jobs counter\napp_jobs 7\n"),
            "{text}"
        );
        assert!(!text.contains("# EOF"), "{text}");
        assert!(text.contains("istio_agent_scrapes_total 1\n"), "{text}");
        assert!(text.contains("istio_agent_scrape_failures_total{type=\"application\"} 0\n"));
    }

    #[tokio::test]
    async fn a_failing_app_still_gets_the_proxys_metrics() {
        let app = app_serving(500, "boom").await;
        let stats = MergeStats::default();
        let text = merge("istio_x 1\n".into(), Some(&app), None, &stats).await;
        assert!(text.starts_with("istio_x 1\n# TYPE istio_agent"), "{text}");
        assert!(!text.contains("boom"));
        let closed = AppMetricsTarget {
            address: "127.0.0.1:1".parse().unwrap(),
            path: "/metrics".into(),
        };
        let text = merge(String::new(), Some(&closed), None, &stats).await;
        assert!(
            text.contains("istio_agent_scrape_failures_total{type=\"application\"} 2\n"),
            "{text}"
        );
    }
}
