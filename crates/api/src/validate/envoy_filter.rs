//! EnvoyFilter: the rules Istio's webhook applies. Valid EnvoyFilters are
//! still not applied by the Trellis data plane; the loader warns of that.

use super::{Violations, workload_labels};
use crate::istio::EnvoyFilter;

/// What a patch may apply to (EnvoyFilter's `ApplyTo`).
const APPLY_TO: [&str; 14] = [
    "LISTENER",
    "FILTER_CHAIN",
    "NETWORK_FILTER",
    "HTTP_FILTER",
    "ROUTE_CONFIGURATION",
    "VIRTUAL_HOST",
    "HTTP_ROUTE",
    "CLUSTER",
    "EXTENSION_CONFIG",
    "BOOTSTRAP",
    "LISTENER_FILTER",
    "WASM_PLUGIN",
    "FILTER_CHAINS",
    "NETWORK_FILTER_CHAIN",
];

const OPERATIONS: [&str; 7] = [
    "MERGE",
    "ADD",
    "REMOVE",
    "INSERT_BEFORE",
    "INSERT_AFTER",
    "INSERT_FIRST",
    "REPLACE",
];

pub(super) fn validate_envoy_filter(violations: &mut Violations, filter: &EnvoyFilter) {
    if let Some(selector) = &filter.workload_selector {
        workload_labels(violations, "spec.workloadSelector.labels", &selector.labels);
        if !filter.target_refs.is_empty() {
            violations.push(
                "spec",
                "only one of targetRefs or workloadSelector can be set",
            );
        }
    }
    for (index, patch) in filter.config_patches.iter().enumerate() {
        let field = format!("spec.configPatches[{index}]");
        match patch.apply_to.as_deref() {
            None => violations.push(format!("{field}.applyTo"), "Envoy filter: missing applyTo"),
            Some(apply_to) if !APPLY_TO.contains(&apply_to) => violations.push(
                format!("{field}.applyTo"),
                format!("Envoy filter: unknown applyTo {apply_to:?}"),
            ),
            Some(_) => {}
        }
        let Some(body) = &patch.patch else {
            violations.push(format!("{field}.patch"), "Envoy filter: missing patch");
            continue;
        };
        match body.operation.as_deref() {
            None => violations.push(
                format!("{field}.patch.operation"),
                "Envoy filter: missing patch operation",
            ),
            Some(operation) if !OPERATIONS.contains(&operation) => violations.push(
                format!("{field}.patch.operation"),
                format!("Envoy filter: unknown patch operation {operation:?}"),
            ),
            Some("REMOVE") if body.value.is_some() => violations.push(
                format!("{field}.patch.value"),
                "Envoy filter: a REMOVE patch takes no value",
            ),
            Some(_) => {}
        }
    }
}
