//! Kubernetes objects whose content is at the top level rather than under
//! `spec`: endpoints, secrets, config maps and the injection webhook.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::LabelSelector;

/// A slice of a Service's endpoints (discovery.k8s.io/v1).
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct EndpointSliceBody {
    /// `IPv4`, `IPv6` or `FQDN`; required.
    pub address_type: String,
    pub endpoints: Vec<Endpoint>,
    pub ports: Vec<EndpointPort>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Endpoint {
    pub addresses: Vec<String>,
    pub conditions: EndpointConditions,
    pub node_name: Option<String>,
    pub zone: Option<String>,
    pub target_ref: Option<ObjectReference>,
}

/// Unset conditions are unknown; Kubernetes treats unknown `ready` as ready.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct EndpointConditions {
    pub ready: Option<bool>,
    pub serving: Option<bool>,
    pub terminating: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ObjectReference {
    pub kind: String,
    pub name: String,
    pub namespace: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct EndpointPort {
    pub name: Option<String>,
    pub port: Option<u32>,
    pub protocol: Option<String>,
    pub app_protocol: Option<String>,
}

/// A Secret (v1): `data` values are base64, `stringData` values plain.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct SecretBody {
    #[serde(rename = "type")]
    pub type_: Option<String>,
    pub data: BTreeMap<String, String>,
    pub string_data: BTreeMap<String, String>,
}

/// A ConfigMap (v1); the mesh reads the `istio` one's `mesh` key.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ConfigMapBody {
    pub data: BTreeMap<String, String>,
    pub binary_data: BTreeMap<String, String>,
}

/// A MutatingWebhookConfiguration (admissionregistration.k8s.io/v1): how
/// the sidecar injector is called.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct MutatingWebhookConfigurationBody {
    pub webhooks: Vec<MutatingWebhook>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct MutatingWebhook {
    pub name: String,
    pub client_config: WebhookClientConfig,
    pub namespace_selector: Option<LabelSelector>,
    pub object_selector: Option<LabelSelector>,
    pub failure_policy: Option<String>,
    pub side_effects: Option<String>,
    pub admission_review_versions: Vec<String>,
}

/// Exactly one of `url` and `service`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct WebhookClientConfig {
    pub url: Option<String>,
    pub service: Option<ServiceReference>,
    pub ca_bundle: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ServiceReference {
    pub name: String,
    pub namespace: String,
    pub path: Option<String>,
    pub port: Option<u32>,
}
