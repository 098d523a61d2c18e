//! The control plane's monitoring port (Istio's 15014): readiness and the
//! sync state of every connected proxy (`/debug/syncz`).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use trellis_xds::server::ProxyRegistry;

pub async fn serve(address: SocketAddr, proxies: Arc<ProxyRegistry>) -> anyhow::Result<()> {
    let router = Router::new()
        .route("/ready", get(|| async { "ready\n" }))
        .route("/debug/syncz", get(syncz))
        .with_state(proxies);
    let listener = tokio::net::TcpListener::bind(address).await?;
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, router).await {
            tracing::error!(%error, "monitoring server stopped");
        }
    });
    Ok(())
}

async fn syncz(State(proxies): State<Arc<ProxyRegistry>>) -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::to_value(proxies.snapshot()).unwrap_or_default())
}
