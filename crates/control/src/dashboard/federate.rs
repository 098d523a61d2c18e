//! The dashboard's source where a Prometheus already scrapes the mesh
//! (Kubernetes, usually): instead of scraping every proxy itself, the
//! control plane reads the same series from Prometheus's federation API
//! (`/federate`) each interval, grouped by the scraped target (`instance`)
//! so that counter resets are seen per proxy, as with its own scrapes.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use super::exposition::{self, Sample};
use super::scrape::{self, ScrapeError};
use super::store::{ProxyScrape, Store};

/// The series the dashboard reads, as a federation selector, URL-encoded:
/// `{__name__=~"istio_requests_total|istio_request_duration_milliseconds_bucket",reporter="destination"}`.
const MATCH: &str = "match%5B%5D=%7B__name__%3D~%22istio_requests_total%7Cistio_request_duration_milliseconds_bucket%22%2Creporter%3D%22destination%22%7D";

/// `--dashboard-prometheus-url`: where Prometheus answers, plain HTTP.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrometheusUrl {
    pub host: String,
    pub port: u16,
    /// A path prefix Prometheus is served under (`--web.route-prefix`).
    pub prefix: String,
}

impl std::fmt::Display for PrometheusUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "http://{}:{}{}", self.host, self.port, self.prefix)
    }
}

impl std::str::FromStr for PrometheusUrl {
    type Err = String;

    fn from_str(text: &str) -> Result<PrometheusUrl, String> {
        let rest = text
            .strip_prefix("http://")
            .ok_or("the Prometheus URL must start with http:// (https is not supported)")?;
        let (authority, path) = match rest.find('/') {
            Some(slash) => rest.split_at(slash),
            None => (rest, ""),
        };
        // `[v6]:port`, `[v6]`, `host:port` or `host`.
        let (host, port) = match authority.strip_prefix('[') {
            Some(bracketed) => {
                let (host, after) = bracketed
                    .split_once(']')
                    .ok_or("unclosed [ in the Prometheus URL")?;
                (host, after.strip_prefix(':'))
            }
            None => match authority.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            },
        };
        let port = match port {
            None => 80,
            Some(port) => port
                .parse::<u16>()
                .map_err(|_| format!("invalid port {port:?} in the Prometheus URL"))?,
        };
        if host.is_empty() {
            return Err("the Prometheus URL has no host".into());
        }
        if path.contains(['?', '#']) {
            return Err("the Prometheus URL takes no query or fragment".into());
        }
        Ok(PrometheusUrl {
            host: host.to_string(),
            port,
            prefix: path.trim_end_matches('/').to_string(),
        })
    }
}

/// A federation answer's samples, by the target Prometheus scraped them
/// from.
pub fn by_target(samples: Vec<Sample>) -> BTreeMap<String, Vec<Sample>> {
    let mut targets: BTreeMap<String, Vec<Sample>> = BTreeMap::new();
    for sample in samples {
        let target = format!("{}/{}", sample.label("job"), sample.label("instance"));
        targets.entry(target).or_default().push(sample);
    }
    targets
}

async fn federate(url: &PrometheusUrl, timeout: Duration) -> Result<Vec<Sample>, ScrapeError> {
    let path = format!("{}/federate?{MATCH}", url.prefix);
    let fetched = async {
        let address = tokio::net::lookup_host((url.host.as_str(), url.port))
            .await?
            .next()
            .ok_or_else(|| std::io::Error::other(format!("{} resolves to nothing", url.host)))?;
        let host = format!("{}:{}", url.host, url.port);
        scrape::fetch(address, &host, &path).await
    };
    let text = tokio::time::timeout(timeout, fetched)
        .await
        .map_err(|_| ScrapeError::Timeout(timeout))??;
    Ok(exposition::parse(&text)?)
}

/// Reads the mesh's series from Prometheus each `interval`, forever.
pub async fn run(url: PrometheusUrl, store: Arc<Mutex<Store>>, interval: Duration) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut warned = false;
    loop {
        ticks.tick().await;
        let samples = match federate(&url, interval).await {
            Ok(samples) => {
                warned = false;
                samples
            }
            Err(error) => {
                // Said once per outage, not every interval.
                if !warned {
                    tracing::warn!(prometheus = %url, %error, "dashboard: cannot read from Prometheus");
                    warned = true;
                }
                continue;
            }
        };
        let scrapes: Vec<(String, ProxyScrape)> = by_target(samples)
            .into_iter()
            .map(|(target, samples)| (target, scrape::summarize(&samples)))
            .collect();
        let live: BTreeSet<String> = scrapes.iter().map(|(t, _)| t.clone()).collect();
        let now_ms = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let mut store = store.lock().unwrap_or_else(|e| e.into_inner());
        store.record(now_ms, scrapes, &live);
    }
}

#[cfg(test)]
mod tests;
