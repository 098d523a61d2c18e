//! `POST /drain_listeners`: stop accepting connections, as Istio's agent
//! asks Envoy to when a pod terminates. With `?inboundonly` only inbound
//! listeners stop (outbound calls the app still makes keep working); without
//! it the whole proxy drains: listeners stop and open connections close
//! after their in-flight requests. The process keeps running (admin, xDS)
//! until it is told to exit. `?graceful` is accepted: draining here is
//! always graceful.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::listeners::DrainScope;
use crate::state::ProxyState;

/// How long open connections get before a full drain stops waiting for them.
const CONNECTION_DRAIN: std::time::Duration = std::time::Duration::from_secs(5);

pub async fn drain_listeners(
    State(state): State<Arc<ProxyState>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if let Some(unknown) = query
        .keys()
        .find(|k| !matches!(k.as_str(), "inboundonly" | "graceful"))
    {
        return super::bad_request(format!("unknown parameter {unknown:?}"));
    }
    if query.contains_key("inboundonly") {
        let stopped = state.listeners.stop_accepting(DrainScope::Inbound);
        return (
            StatusCode::OK,
            format!("OK: {stopped} inbound listeners stopped\n"),
        )
            .into_response();
    }
    let stopped = state.listeners.stop_accepting(DrainScope::All);
    let draining = state.clone();
    tokio::spawn(async move {
        if !draining.drain.drain(CONNECTION_DRAIN).await {
            tracing::info!("connections still open after /drain_listeners' drain period");
        }
    });
    (StatusCode::OK, format!("OK: {stopped} listeners stopped\n")).into_response()
}
