//! The proxy's own HTTP endpoints, on Istio's ports at the workload address:
//! admin (15000: `/config_dump`, `/clusters`, `/listeners`, `/ready`,
//! `/stats/prometheus`, `POST /quitquitquit`), Prometheus (15090:
//! `/stats/prometheus`) and health (15021: `/healthz/ready`).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use trellis_xds::type_url;

use crate::state::ProxyState;

pub fn admin_router(state: Arc<ProxyState>) -> Router {
    Router::new()
        .route("/config_dump", get(config_dump))
        .route("/clusters", get(clusters))
        .route("/listeners", get(listeners))
        .route("/quitquitquit", post(quit))
        .route("/ready", get(ready))
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

pub async fn serve(address: SocketAddr, router: Router) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(address).await?;
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, router).await {
            tracing::error!(%error, %address, "admin server stopped");
        }
    });
    Ok(())
}

/// Ready once the proxy holds a certificate and its first clusters and listeners.
async fn ready(State(state): State<Arc<ProxyState>>) -> Response {
    match (state.identity.is_ready(), state.is_configured()) {
        (true, true) => (StatusCode::OK, "LIVE\n").into_response(),
        (cert, config) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: certificate={cert} config={config}\n"),
        )
            .into_response(),
    }
}

async fn prometheus(State(state): State<Arc<ProxyState>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}

/// Envoy's config dump shape: one entry per resource type, each resource
/// with the version it arrived in.
async fn config_dump(State(state): State<Arc<ProxyState>>) -> Response {
    let accepted = state.accepted();
    let section = |type_url: &str, dump_type: &str, list: &str, key: &str| {
        let resources: Vec<Value> = accepted
            .get(type_url)
            .into_iter()
            .flat_map(|by_name| by_name.values())
            .map(|any| {
                trellis_xds::json::any_to_json(any)
                    .unwrap_or_else(|e| json!({"error": e.to_string()}))
            })
            .map(|resource| json!({ key: resource }))
            .collect();
        json!({ "@type": format!("type.googleapis.com/envoy.admin.v3.{dump_type}"), list: resources })
    };
    let dump = json!({
        "configs": [
            section(type_url::CLUSTER, "ClustersConfigDump", "dynamic_active_clusters", "cluster"),
            section(type_url::ENDPOINT, "EndpointsConfigDump", "dynamic_endpoint_configs", "endpoint_config"),
            section(type_url::LISTENER, "ListenersConfigDump", "dynamic_listeners", "active_state"),
            section(type_url::ROUTE, "RoutesConfigDump", "dynamic_route_configs", "route_config"),
        ]
    });
    axum::Json(dump).into_response()
}

/// Envoy's text view: `CLUSTER::IP:PORT::STAT::VALUE`, one line per
/// endpoint and stat, clusters sorted by name.
async fn clusters(State(state): State<Arc<ProxyState>>) -> String {
    let clusters = state.clusters.load();
    let mut names: Vec<&String> = clusters.keys().collect();
    names.sort();
    let mut out = String::new();
    for name in names {
        let ejected = clusters[name].ejected();
        for endpoint in clusters[name].endpoints().iter() {
            let address = endpoint.address;
            // Envoy's flag for an endpoint outlier detection ejected.
            let health = if ejected.contains(&address) {
                "/failed_outlier_check"
            } else {
                "healthy"
            };
            out.push_str(&format!("{name}::{address}::health_flags::{health}\n"));
            out.push_str(&format!("{name}::{address}::weight::{}\n", endpoint.weight));
        }
    }
    out
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
