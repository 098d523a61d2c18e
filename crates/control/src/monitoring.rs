//! The control plane's monitoring port (Istio's 15014): Prometheus metrics
//! (`/metrics`), readiness, and the sync state of every connected proxy
//! (`/debug/syncz`), and the dashboard (`/dashboard/`).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use std::collections::{BTreeMap, HashMap};

use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::registry::Registry;
use trellis_ca::CaMetrics;
use trellis_config::ValidationMetrics;
use trellis_xds::json;
use trellis_xds::server::{ProxyRegistry, ResourceGenerator};

use crate::SnapshotGenerator;
use crate::dashboard::Dashboard;
use crate::jwks::JwksMetrics;
use crate::sync::{SyncReport, SyncedProxy};

#[derive(Clone)]
struct Monitoring {
    proxies: Arc<ProxyRegistry>,
    registry: Arc<Registry>,
    generator: Arc<SnapshotGenerator>,
    /// This instance's name, for `proxy-status`.
    name: Arc<str>,
}

/// The metrics kept outside the xDS server, each where it is counted.
pub struct MetricSources<'a> {
    pub jwks: &'a JwksMetrics,
    pub ca: &'a CaMetrics,
    pub validation: &'a ValidationMetrics,
}

pub async fn serve(
    address: SocketAddr,
    proxies: Arc<ProxyRegistry>,
    generator: Arc<SnapshotGenerator>,
    sources: MetricSources<'_>,
    dashboard: &Dashboard,
) -> anyhow::Result<()> {
    let mut registry = Registry::default();
    proxies.metrics.register(&mut registry);
    sources.jwks.register(&mut registry);
    sources.ca.register(&mut registry);
    sources.validation.register(&mut registry);
    dashboard.register(&mut registry);
    let name = format!("trellis@{}", address.ip()).into();
    let state = Monitoring {
        proxies,
        registry: Arc::new(registry),
        generator,
        name,
    };
    let router = Router::new()
        .route("/ready", get(|| async { "ready\n" }))
        .route("/metrics", get(metrics))
        .route("/debug/syncz", get(syncz))
        .route("/debug/config_dump", get(config_dump))
        .with_state(state)
        .merge(dashboard.router());
    let listener = tokio::net::TcpListener::bind(address).await?;
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, router).await {
            tracing::error!(%error, "monitoring server stopped");
        }
    });
    Ok(())
}

async fn metrics(State(state): State<Monitoring>) -> impl IntoResponse {
    let mut text = String::new();
    // Writing to a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut text, &state.registry);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
}

async fn syncz(State(state): State<Monitoring>) -> axum::Json<SyncReport> {
    let proxies = state
        .proxies
        .snapshot()
        .iter()
        .map(SyncedProxy::from)
        .collect();
    axum::Json(SyncReport {
        control_plane: state.name.to_string(),
        proxies,
    })
}

/// What the control plane would send a connected proxy now, by type URL
/// and resource name, as proto3 JSON (Istio's `/debug/config_dump?proxyID=`).
async fn config_dump(
    State(state): State<Monitoring>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let Some(id) = query.get("proxyID") else {
        return (StatusCode::BAD_REQUEST, "proxyID is required\n").into_response();
    };
    let proxies = state.proxies.snapshot();
    let Some(node) = proxies
        .iter()
        .find(|p| p.node_id == *id || p.node_id.contains(&format!("~{id}~")))
        .and_then(|p| p.node.clone())
    else {
        return (StatusCode::NOT_FOUND, format!("no connected proxy {id}\n")).into_response();
    };
    let resources = match state.generator.generate(&node) {
        Ok(Some(resources)) => resources,
        Ok(None) => {
            return (StatusCode::SERVICE_UNAVAILABLE, "no config loaded yet\n").into_response();
        }
        Err(message) => return (StatusCode::INTERNAL_SERVER_ERROR, message).into_response(),
    };
    let dump: BTreeMap<&str, BTreeMap<&String, serde_json::Value>> = resources
        .by_type
        .iter()
        .map(|(type_url, typed)| {
            let by_name = typed
                .by_name
                .iter()
                .map(|(name, any)| {
                    (
                        name,
                        json::any_to_json(any)
                            .unwrap_or_else(|e| serde_json::json!({"error": e.to_string()})),
                    )
                })
                .collect();
            (*type_url, by_name)
        })
        .collect();
    axum::Json(dump).into_response()
}
