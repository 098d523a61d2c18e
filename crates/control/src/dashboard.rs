//! The mesh dashboard on the monitoring port (`/dashboard/`): the control
//! plane scrapes every connected proxy's Istio metrics into a bounded
//! in-memory store and serves, as JSON, the service graph, per-service
//! golden signals, the SLOs of the config measured against them and the
//! mesh's security posture, and a page (with its script for the SLO and
//! posture panels) that draws them.

mod exposition;
mod federate;
mod posture;
mod query;
mod scrape;
mod slo;
mod store;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use prometheus_client::registry::Registry;
use trellis_config::{Snapshot, SnapshotReceiver};
use trellis_xds::server::ProxyRegistry;

use crate::options::positive_duration;
use store::{Store, StoreMetrics};

const PAGE: &str = include_str!("dashboard/page.html");
const PANELS_SCRIPT: &str = include_str!("dashboard/panels.js");
const DEFAULT_WINDOW: Duration = Duration::from_secs(60);

/// How the dashboard scrapes and how much it keeps.
#[derive(Clone, Debug, clap::Args)]
pub struct DashboardOptions {
    /// How often the dashboard scrapes every proxy's metrics.
    #[arg(long = "dashboard-scrape-interval", value_name = "DURATION", default_value = "5s", value_parser = positive_duration)]
    pub scrape_interval: Duration,
    /// Port of each proxy's Prometheus endpoint (`/stats/prometheus`), on
    /// the proxy's address.
    #[arg(
        long = "dashboard-stats-port",
        value_name = "PORT",
        default_value_t = 15090
    )]
    pub stats_port: u16,
    /// How much history the dashboard keeps.
    #[arg(long = "dashboard-retention", value_name = "DURATION", default_value = "1h", value_parser = positive_duration)]
    pub retention: Duration,
    /// At most this many series are kept; more are dropped and counted in
    /// `trellis_dashboard_series_dropped_total`.
    #[arg(
        long = "dashboard-max-series",
        value_name = "N",
        default_value_t = 2000
    )]
    pub max_series: usize,
    /// Read the proxies' metrics from this Prometheus (its federation
    /// API, `http://HOST:PORT[/PREFIX]`) instead of scraping each proxy:
    /// for a mesh a Prometheus already scrapes.
    #[arg(long = "dashboard-prometheus-url", value_name = "URL")]
    pub prometheus_url: Option<federate::PrometheusUrl>,
}

impl Default for DashboardOptions {
    fn default() -> Self {
        DashboardOptions {
            scrape_interval: Duration::from_secs(5),
            stats_port: 15090,
            retention: Duration::from_secs(3600),
            max_series: 2000,
            prometheus_url: None,
        }
    }
}

#[derive(Clone)]
pub struct Dashboard {
    store: Arc<Mutex<Store>>,
    retention: Duration,
    metrics: StoreMetrics,
    proxies: Arc<ProxyRegistry>,
    /// The config in force: SLOs, PeerAuthentications, services.
    config: SnapshotReceiver,
}

impl Dashboard {
    /// Starts scraping the proxies of `proxies`; `config` is the config
    /// source's snapshots.
    pub fn start(
        options: &DashboardOptions,
        proxies: Arc<ProxyRegistry>,
        config: SnapshotReceiver,
    ) -> Dashboard {
        let dashboard = Dashboard::new(options, proxies.clone(), config);
        let store = dashboard.store.clone();
        match &options.prometheus_url {
            Some(url) => {
                tokio::spawn(federate::run(url.clone(), store, options.scrape_interval));
            }
            None => {
                tokio::spawn(scrape::run(
                    proxies,
                    store,
                    options.scrape_interval,
                    options.stats_port,
                ));
            }
        }
        dashboard
    }

    fn new(
        options: &DashboardOptions,
        proxies: Arc<ProxyRegistry>,
        config: SnapshotReceiver,
    ) -> Dashboard {
        let metrics = StoreMetrics::default();
        let store = Store::new(
            options.retention,
            options.scrape_interval,
            options.max_series,
            metrics.clone(),
        );
        Dashboard {
            store: Arc::new(Mutex::new(store)),
            retention: options.retention,
            metrics,
            proxies,
            config,
        }
    }

    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "trellis_dashboard_series_dropped",
            "Dashboard series not kept because the series limit was reached",
            self.metrics.dropped.clone(),
        );
        registry.register(
            "trellis_dashboard_series",
            "Series the dashboard keeps",
            self.metrics.series.clone(),
        );
    }

    pub fn router(&self) -> Router {
        Router::new()
            .route(
                "/dashboard",
                get(|| async { Redirect::permanent("/dashboard/") }),
            )
            .route("/dashboard/", get(page))
            .route("/dashboard/panels.js", get(panels_script))
            .route("/dashboard/api/graph", get(graph))
            .route("/dashboard/api/service", get(service))
            .route("/dashboard/api/slos", get(slos))
            .route("/dashboard/api/posture", get(posture))
            .with_state(self.clone())
    }

    fn with_store<T>(&self, read: impl FnOnce(&Store) -> T) -> T {
        let store = self.store.lock().unwrap_or_else(|e| e.into_inner());
        read(&store)
    }

    fn snapshot(&self) -> Option<Arc<Snapshot>> {
        self.config.borrow().clone()
    }

    /// The `window` parameter (default 1m), at most the retention.
    fn window(&self, query: &HashMap<String, String>) -> Result<Duration, String> {
        let Some(text) = query.get("window") else {
            return Ok(DEFAULT_WINDOW.min(self.retention));
        };
        match positive_duration(text) {
            Ok(window) => Ok(window.min(self.retention)),
            Err(error) => Err(format!("window: {error}")),
        }
    }
}

fn bad_request(message: String) -> Response {
    (StatusCode::BAD_REQUEST, format!("{message}\n")).into_response()
}

async fn page() -> impl IntoResponse {
    ([(header::CACHE_CONTROL, "no-cache")], Html(PAGE))
}

async fn panels_script() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        PANELS_SCRIPT,
    )
}

async fn graph(
    State(dashboard): State<Dashboard>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    match dashboard.window(&query) {
        Ok(window) => {
            axum::Json(dashboard.with_store(|store| query::graph(store, window))).into_response()
        }
        Err(message) => bad_request(message),
    }
}

async fn service(
    State(dashboard): State<Dashboard>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let window = match dashboard.window(&query) {
        Ok(window) => window,
        Err(message) => return bad_request(message),
    };
    let Some(name) = query.get("name").filter(|name| !name.is_empty()) else {
        return bad_request("name is required".into());
    };
    let namespace = query.get("namespace").map_or("default", String::as_str);
    // An edge of the graph: its calling or its serving workload.
    let edge = query::EdgeFilter {
        source: query.get("source").cloned(),
        destination: query.get("destination").cloned(),
    };
    let view = dashboard.with_store(|store| query::service(store, name, namespace, window, &edge));
    axum::Json(view).into_response()
}

/// Every SLO of the config, measured over the history kept.
async fn slos(State(dashboard): State<Dashboard>) -> Response {
    let snapshot = dashboard.snapshot();
    let report =
        dashboard.with_store(|store| slo::report(store, snapshot.as_deref(), dashboard.retention));
    axum::Json(report).into_response()
}

/// Workloads accepting plaintext (now), and plaintext and denied requests
/// over `window`.
async fn posture(
    State(dashboard): State<Dashboard>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let window = match dashboard.window(&query) {
        Ok(window) => window,
        Err(message) => return bad_request(message),
    };
    let snapshot = dashboard.snapshot();
    let nodes: Vec<_> = dashboard
        .proxies
        .snapshot()
        .into_iter()
        .filter_map(|proxy| proxy.node)
        .collect();
    let view =
        dashboard.with_store(|store| posture::posture(store, snapshot.as_deref(), &nodes, window));
    axum::Json(view).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(given: Option<&str>) -> Result<Duration, String> {
        let options = DashboardOptions {
            retention: Duration::from_secs(600),
            ..DashboardOptions::default()
        };
        let query = given
            .map(|w| ("window".to_string(), w.to_string()))
            .into_iter()
            .collect();
        let (_, config) = tokio::sync::watch::channel(None);
        Dashboard::new(&options, Arc::default(), config).window(&query)
    }

    #[test]
    fn windows_default_to_a_minute_and_stop_at_the_retention() {
        assert_eq!(window(None), Ok(Duration::from_secs(60)));
        assert_eq!(window(Some("5m")), Ok(Duration::from_secs(300)));
        assert_eq!(window(Some("2h")), Ok(Duration::from_secs(600)));
        for bad in ["0s", "soon", ""] {
            let error = window(Some(bad)).unwrap_err();
            assert!(error.starts_with("window: "), "{bad}: {error}");
        }
    }
}
