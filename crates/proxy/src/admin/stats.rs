//! `/stats`: Envoy's server, cluster manager and listener manager stats as
//! `name: value` lines, or `?format=json` (`{"stats": [{name, value}]}`),
//! or `?format=prometheus` (the same as `/stats/prometheus`). `?filter=RE`
//! keeps the names matching a regular expression, `?usedonly` the non-zero.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::state::ProxyState;

/// Envoy's `server.state` values.
const LIVE: u64 = 0;
const DRAINING: u64 = 1;
const INITIALIZING: u64 = 3;

pub async fn stats(
    State(state): State<Arc<ProxyState>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let filter = match query.get("filter").map(|f| regex::Regex::new(f)) {
        None => None,
        Some(Ok(filter)) => Some(filter),
        Some(Err(error)) => return super::bad_request(format!("invalid filter: {error}")),
    };
    let used_only = query.contains_key("usedonly");
    let stats: Vec<(String, u64)> = collect(&state)
        .into_iter()
        .filter(|(name, value)| {
            filter.as_ref().is_none_or(|f| f.is_match(name)) && (!used_only || *value != 0)
        })
        .collect();
    match query.get("format").map(String::as_str) {
        None | Some("text") => stats
            .iter()
            .map(|(name, value)| format!("{name}: {value}\n"))
            .collect::<String>()
            .into_response(),
        Some("json") => {
            let stats: Vec<_> = stats
                .iter()
                .map(|(name, value)| json!({"name": name, "value": value}))
                .collect();
            axum::Json(json!({ "stats": stats })).into_response()
        }
        Some("prometheus") => super::prometheus(State(state)).await,
        Some(other) => super::bad_request(format!(
            "unknown format {other:?}: use text, json or prometheus"
        )),
    }
}

/// Every stat, sorted by name.
fn collect(state: &ProxyState) -> Vec<(String, u64)> {
    let mut stats: Vec<(String, u64)> = Vec::new();
    let clusters = state.clusters.load();
    for (name, cluster) in clusters.iter() {
        let endpoints = cluster.endpoints();
        let ejected = cluster.ejected();
        let healthy = endpoints
            .iter()
            .filter(|e| !ejected.contains(&e.address))
            .count();
        stats.push((
            format!("cluster.{name}.membership_total"),
            endpoints.len() as u64,
        ));
        stats.push((format!("cluster.{name}.membership_healthy"), healthy as u64));
        stats.push((
            format!("cluster.{name}.outlier_detection.ejections_active"),
            ejected.len() as u64,
        ));
    }
    stats.push((
        "cluster_manager.active_clusters".into(),
        clusters.len() as u64,
    ));
    let listeners = state.listeners.addresses().len() as u64;
    stats.push(("listener_manager.total_listeners_active".into(), listeners));
    let configured = state.is_configured();
    stats.push((
        "listener_manager.workers_started".into(),
        u64::from(configured),
    ));
    stats.extend(
        state
            .xds_updates
            .stats()
            .into_iter()
            .map(|(name, value)| (name.to_string(), value)),
    );
    let server_state = if state.drain.is_draining() || state.listeners.any_drained() {
        DRAINING
    } else if configured && state.identity.is_ready() {
        LIVE
    } else {
        INITIALIZING
    };
    stats.push(("server.state".into(), server_state));
    stats.push(("server.live".into(), u64::from(server_state == LIVE)));
    stats.push(("server.uptime".into(), state.started.elapsed().as_secs()));
    stats.sort();
    stats
}
