//! `/clusters`: every endpoint of every cluster with its health and weight,
//! as Envoy's text view (`CLUSTER::IP:PORT::STAT::VALUE`) or, with
//! `?format=json`, Envoy's `Clusters` JSON that `istioctl proxy-config
//! endpoint` reads.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::state::ProxyState;

/// Envoy's flag for an endpoint that outlier detection ejected.
const FAILED_OUTLIER_CHECK: &str = "/failed_outlier_check";

pub async fn clusters(
    State(state): State<Arc<ProxyState>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    match query.get("format").map(String::as_str) {
        Some("json") => axum::Json(as_json(&state)).into_response(),
        None | Some("text") => as_text(&state).into_response(),
        Some(other) => super::bad_request(format!("unknown format {other:?}: use json or text")),
    }
}

fn as_text(state: &ProxyState) -> String {
    let clusters = state.clusters.load();
    let mut names: Vec<&String> = clusters.keys().collect();
    names.sort();
    let mut out = String::new();
    for name in names {
        let ejected = clusters[name].ejected();
        for endpoint in clusters[name].endpoints().iter() {
            let address = endpoint.address;
            let health = if ejected.contains(&address) {
                FAILED_OUTLIER_CHECK
            } else {
                "healthy"
            };
            out.push_str(&format!("{name}::{address}::health_flags::{health}\n"));
            out.push_str(&format!("{name}::{address}::weight::{}\n", endpoint.weight));
        }
    }
    out
}

fn as_json(state: &ProxyState) -> Value {
    let clusters = state.clusters.load();
    let mut names: Vec<&String> = clusters.keys().collect();
    names.sort();
    let statuses: Vec<Value> = names
        .into_iter()
        .map(|name| {
            let ejected = clusters[name].ejected();
            let hosts: Vec<Value> = clusters[name]
                .endpoints()
                .iter()
                .map(|endpoint| {
                    let mut health = json!({ "eds_health_status": "HEALTHY" });
                    if ejected.contains(&endpoint.address) {
                        health["failed_outlier_check"] = json!(true);
                    }
                    json!({
                        "address": { "socket_address": {
                            "address": endpoint.address.ip().to_string(),
                            "port_value": endpoint.address.port(),
                        }},
                        "health_status": health,
                        "weight": endpoint.weight,
                    })
                })
                .collect();
            json!({ "name": name, "host_statuses": hosts })
        })
        .collect();
    json!({ "cluster_statuses": statuses })
}
