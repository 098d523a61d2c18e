//! The control plane's monitoring port (Istio's 15014): Prometheus metrics
//! (`/metrics`), readiness, and the sync state of every connected proxy
//! (`/debug/syncz`).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::registry::Registry;
use trellis_xds::server::ProxyRegistry;

#[derive(Clone)]
struct Monitoring {
    proxies: Arc<ProxyRegistry>,
    registry: Arc<Registry>,
}

pub async fn serve(address: SocketAddr, proxies: Arc<ProxyRegistry>) -> anyhow::Result<()> {
    let mut registry = Registry::default();
    proxies.metrics.register(&mut registry);
    let state = Monitoring {
        proxies,
        registry: Arc::new(registry),
    };
    let router = Router::new()
        .route("/ready", get(|| async { "ready\n" }))
        .route("/metrics", get(metrics))
        .route("/debug/syncz", get(syncz))
        .with_state(state);
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

async fn syncz(State(state): State<Monitoring>) -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::to_value(state.proxies.snapshot()).unwrap_or_default())
}
