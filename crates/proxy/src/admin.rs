//! The proxy's own HTTP endpoints, on Istio's ports at the workload address:
//! admin (15000: `/config_dump`, `/clusters`, `/listeners`, `/stats`,
//! `/stats/prometheus`, `/logging`, `/ready`, `POST /drain_listeners`,
//! `POST /quitquitquit`), Prometheus (15090: `/stats/prometheus`), health
//! (15021: `/healthz/ready`) and status (15020: merged proxy and app
//! metrics, `/healthz/ready`).

mod clusters;
pub(crate) mod config_dump;
mod drain_listeners;
mod logging;
mod stats;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};

use crate::merged_metrics::{self, AppMetricsTarget, MergeStats};
use crate::state::ProxyState;

pub fn admin_router(state: Arc<ProxyState>) -> Router {
    Router::new()
        .route("/config_dump", get(config_dump::config_dump))
        .route("/clusters", get(clusters::clusters))
        .route("/listeners", get(listeners))
        .route("/logging", any(logging::logging))
        .route("/drain_listeners", post(drain_listeners::drain_listeners))
        .route("/quitquitquit", post(quit))
        .route("/ready", get(ready))
        .route("/stats", get(stats::stats))
        .route("/stats/prometheus", get(prometheus))
        .with_state(state)
}

pub fn stats_router(state: Arc<ProxyState>) -> Router {
    Router::new()
        .route("/stats/prometheus", get(prometheus))
        .with_state(state)
}

pub fn health_router(state: Arc<ProxyState>) -> Router {
    Router::new()
        .route("/healthz/ready", get(ready))
        .with_state(state)
}

/// The status port's state: the proxy, and where its app's metrics are.
struct StatusPort {
    proxy: Arc<ProxyState>,
    app: Option<AppMetricsTarget>,
    stats: MergeStats,
}

pub fn status_router(state: Arc<ProxyState>, app: Option<AppMetricsTarget>) -> Router {
    let status = Arc::new(StatusPort {
        proxy: state,
        app,
        stats: MergeStats::default(),
    });
    Router::new()
        .route("/stats/prometheus", get(merged_prometheus))
        .route(
            "/healthz/ready",
            get(|State(status): State<Arc<StatusPort>>| ready(State(status.proxy.clone()))),
        )
        .with_state(status)
}

/// Prometheus says how long it waits; the app scrape must finish before.
const SCRAPE_TIMEOUT_HEADER: &str = "x-prometheus-scrape-timeout-seconds";

async fn merged_prometheus(State(status): State<Arc<StatusPort>>, headers: HeaderMap) -> Response {
    let timeout = headers
        .get(SCRAPE_TIMEOUT_HEADER)
        .and_then(|v| v.to_str().ok()?.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        .map(|s| std::time::Duration::from_secs_f64(s.min(300.0)));
    let text = merged_metrics::merge(
        status.proxy.metrics.render(),
        status.app.as_ref(),
        timeout,
        &status.stats,
    )
    .await;
    ([(header::CONTENT_TYPE, PROMETHEUS_TEXT)], text).into_response()
}

pub async fn serve(address: SocketAddr, router: Router) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(address).await?;
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, router).await {
            tracing::error!(%error, %address, "admin server stopped");
        }
    });
    Ok(())
}

/// Ready once the proxy holds a certificate and its first clusters and
/// listeners, and is not draining.
pub(crate) async fn ready(State(state): State<Arc<ProxyState>>) -> Response {
    if state.drain.is_draining() || state.listeners.any_drained() {
        return (StatusCode::SERVICE_UNAVAILABLE, "DRAINING\n").into_response();
    }
    match (state.identity.is_ready(), state.is_configured()) {
        (true, true) => (StatusCode::OK, "LIVE\n").into_response(),
        (cert, config) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: certificate={cert} config={config}\n"),
        )
            .into_response(),
    }
}

pub(crate) async fn prometheus(State(state): State<Arc<ProxyState>>) -> Response {
    (
        [(header::CONTENT_TYPE, PROMETHEUS_TEXT)],
        state.metrics.render(),
    )
        .into_response()
}

pub(crate) const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

fn bad_request(message: String) -> Response {
    (StatusCode::BAD_REQUEST, format!("{message}\n")).into_response()
}

/// Envoy's text view: `NAME::ADDRESS`, sorted by name.
async fn listeners(State(state): State<Arc<ProxyState>>) -> String {
    let mut listeners = state.listeners.addresses();
    listeners.sort();
    listeners
        .iter()
        .map(|(name, address)| format!("{name}::{address}\n"))
        .collect()
}

/// Envoy's `/quitquitquit`: drain and exit, as a Job's app does when done.
async fn quit(State(state): State<Arc<ProxyState>>) -> &'static str {
    state.quit.notify_one();
    "OK\n"
}
