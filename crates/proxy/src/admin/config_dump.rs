//! `/config_dump` in Envoy's shape: the bootstrap (this proxy's node), the
//! accepted xDS resources with the versions they arrived in, and the
//! workload's secrets with their private key redacted, as Envoy's admin
//! prints them and `istioctl proxy-config` reads them.

use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::{Value, json};
use trellis_xds::type_url;

use crate::state::ProxyState;

/// Envoy's name of the workload certificate and of the mesh root, as Istio's
/// SDS names them.
const WORKLOAD_SECRET: &str = "default";
const ROOT_SECRET: &str = "ROOTCA";

pub async fn config_dump(State(state): State<Arc<ProxyState>>) -> Response {
    axum::Json(dump(&state)).into_response()
}

pub fn dump(state: &ProxyState) -> Value {
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
        json!({ "@type": admin_type(dump_type), list: resources })
    };
    json!({
        "configs": [
            bootstrap(state),
            section(type_url::CLUSTER, "ClustersConfigDump", "dynamic_active_clusters", "cluster"),
            section(type_url::ENDPOINT, "EndpointsConfigDump", "dynamic_endpoint_configs", "endpoint_config"),
            section(type_url::LISTENER, "ListenersConfigDump", "dynamic_listeners", "active_state"),
            section(type_url::ROUTE, "RoutesConfigDump", "dynamic_route_configs", "route_config"),
            secrets(state),
        ]
    })
}

fn admin_type(dump_type: &str) -> String {
    format!("type.googleapis.com/envoy.admin.v3.{dump_type}")
}

fn bootstrap(state: &ProxyState) -> Value {
    let node = trellis_xds::json::message_to_json(&state.node.to_node())
        .map(|mut node| {
            if let Some(fields) = node.as_object_mut() {
                fields.remove("@type");
            }
            node
        })
        .unwrap_or_else(|e| json!({"error": e.to_string()}));
    json!({
        "@type": admin_type("BootstrapConfigDump"),
        "bootstrap": { "node": node },
    })
}

/// The certificate chain and the root, base64 as proto3 JSON writes bytes;
/// the key is never shown.
fn secrets(state: &ProxyState) -> Value {
    let encode = |pem: &str| base64::engine::general_purpose::STANDARD.encode(pem);
    let secrets: Vec<Value> = match state.identity.credentials() {
        None => Vec::new(),
        Some(credentials) => {
            let certificate = &credentials.certificate;
            let chain = certificate.cert_chain_pem.concat();
            vec![
                json!({
                    "name": WORKLOAD_SECRET,
                    "secret": {
                        "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret",
                        "name": WORKLOAD_SECRET,
                        "tls_certificate": {
                            "certificate_chain": { "inline_bytes": encode(&chain) },
                            "private_key": { "inline_string": "[redacted]" },
                        },
                    },
                }),
                json!({
                    "name": ROOT_SECRET,
                    "secret": {
                        "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret",
                        "name": ROOT_SECRET,
                        "validation_context": {
                            "trusted_ca": { "inline_bytes": encode(&certificate.root_pem) },
                        },
                    },
                }),
            ]
        }
    };
    json!({ "@type": admin_type("SecretsConfigDump"), "dynamic_active_secrets": secrets })
}
