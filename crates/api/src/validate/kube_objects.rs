//! The checks the Kubernetes API server makes on the objects the mesh reads
//! beside workloads: endpoint slices, secrets, config maps, webhooks.

use std::collections::BTreeMap;

use super::Violations;
use crate::kube::{ConfigMapBody, EndpointSliceBody, MutatingWebhookConfigurationBody, SecretBody};

const ADDRESS_TYPES: [&str; 3] = ["IPv4", "IPv6", "FQDN"];

pub(super) fn validate_endpoint_slice(violations: &mut Violations, slice: &EndpointSliceBody) {
    if !ADDRESS_TYPES.contains(&slice.address_type.as_str()) {
        violations.push(
            "addressType",
            format!(
                "addressType {:?} must be one of IPv4, IPv6 or FQDN",
                slice.address_type
            ),
        );
    }
    for (index, endpoint) in slice.endpoints.iter().enumerate() {
        if endpoint.addresses.is_empty() {
            violations.push(
                format!("endpoints[{index}].addresses"),
                "must have at least one address",
            );
        }
    }
    for (index, port) in slice.ports.iter().enumerate() {
        violations.port(&format!("ports[{index}].port"), port.port);
    }
}

pub(super) fn validate_secret(violations: &mut Violations, secret: &SecretBody) {
    config_keys(violations, "data", &secret.data);
    config_keys(violations, "stringData", &secret.string_data);
    base64_values(violations, "data", &secret.data);
}

pub(super) fn validate_config_map(violations: &mut Violations, map: &ConfigMapBody) {
    config_keys(violations, "data", &map.data);
    config_keys(violations, "binaryData", &map.binary_data);
    base64_values(violations, "binaryData", &map.binary_data);
    for key in map
        .data
        .keys()
        .filter(|key| map.binary_data.contains_key(*key))
    {
        let field = crate::yaml::child_key("binaryData", key);
        violations.push(field, format!("duplicate of key {key:?} present in data"));
    }
}

pub(super) fn validate_webhooks(
    violations: &mut Violations,
    config: &MutatingWebhookConfigurationBody,
) {
    for (index, webhook) in config.webhooks.iter().enumerate() {
        let field = format!("webhooks[{index}]");
        if webhook.name.is_empty() {
            violations.push(format!("{field}.name"), "webhook name is required");
        }
        let client = &webhook.client_config;
        if client.url.is_some() == client.service.is_some() {
            violations.push(
                format!("{field}.clientConfig"),
                "exactly one of url or service is required",
            );
        }
        if let Some(service) = &client.service {
            violations.port(&format!("{field}.clientConfig.service.port"), service.port);
        }
    }
}

/// Keys of a ConfigMap or Secret: `[-._a-zA-Z0-9]+`, at most 253 bytes.
fn config_keys(violations: &mut Violations, field: &str, entries: &BTreeMap<String, String>) {
    for key in entries.keys() {
        let valid = !key.is_empty()
            && key.len() <= 253
            && key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
        if !valid || key == "." || key == ".." {
            let message = format!(
                "a valid config key must consist of alphanumeric characters, '-', '_' or '.': {key:?}"
            );
            violations.push(crate::yaml::child_key(field, key), message);
        }
    }
}

/// Values stored as base64 (standard alphabet, padded), as Kubernetes
/// decodes them.
fn base64_values(violations: &mut Violations, field: &str, entries: &BTreeMap<String, String>) {
    for (key, value) in entries {
        if !is_padded_base64(value) {
            violations.push(crate::yaml::child_key(field, key), "illegal base64 data");
        }
    }
}

fn is_padded_base64(value: &str) -> bool {
    let bytes = value.as_bytes();
    let body = value.trim_end_matches('=');
    bytes.len().is_multiple_of(4)
        && bytes.len() - body.len() <= 2
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
}

#[cfg(test)]
mod tests {
    use super::is_padded_base64;

    #[test]
    fn base64_must_be_padded_standard_alphabet() {
        for good in ["", "YQ==", "YWI=", "YWJj"] {
            assert!(is_padded_base64(good), "{good}");
        }
        for bad in ["YQ", "Y===", "a b=", "YW-j", "YWJj="] {
            assert!(!is_padded_base64(bad), "{bad}");
        }
    }
}
