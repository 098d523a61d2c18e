//! Semantic checks Istio and Kubernetes make when a resource is applied.
//! Messages follow Istio's wording where Istio has one. Each violation names
//! a field path; the loader turns it into a line and column.

mod destination_rule;
mod envoy_filter;
mod gateway;
mod gateway_api;
mod kube;
mod kube_objects;
mod mesh_config;
pub mod network;
mod security;
mod service_entry;
mod sidecar;
mod slo;
mod telemetry;
mod virtual_service;
mod workload_group;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

pub(crate) use mesh_config::validate_mesh_config;

use crate::istio::{ConnectionPoolSettings, Destination, Percent, StringMatch, parse_duration};
use crate::meta::{AnyResource, ObjectMeta};

/// One thing wrong with a resource, located by field path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// e.g. `spec.http[0].route[1].weight`.
    pub field: String,
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Checks one resource; an empty result means it is valid.
pub fn validate(resource: &AnyResource) -> Vec<Violation> {
    let mut violations = Violations::default();
    validate_meta(&mut violations, resource);
    match resource {
        AnyResource::VirtualService(vs) => virtual_service::validate(&mut violations, &vs.spec),
        AnyResource::DestinationRule(dr) => destination_rule::validate(&mut violations, &dr.spec),
        AnyResource::WorkloadEntry(we) => kube::validate_workload_entry(&mut violations, &we.spec),
        AnyResource::Service(service) => kube::validate_service(&mut violations, &service.spec),
        AnyResource::Deployment(deployment) => {
            kube::validate_deployment(&mut violations, &deployment.spec);
        }
        AnyResource::Gateway(gateway) => {
            gateway::validate(&mut violations, gateway.name(), &gateway.spec);
        }
        AnyResource::ServiceEntry(entry) => service_entry::validate(&mut violations, &entry.spec),
        AnyResource::Sidecar(sidecar) => sidecar::validate(&mut violations, &sidecar.spec),
        AnyResource::Pod(pod) => kube::validate_pod(&mut violations, &pod.spec),
        AnyResource::PeerAuthentication(policy) => {
            security::validate_peer_authentication(&mut violations, &policy.spec);
        }
        AnyResource::RequestAuthentication(policy) => {
            security::validate_request_authentication(&mut violations, &policy.spec);
        }
        AnyResource::AuthorizationPolicy(policy) => {
            security::validate_authorization_policy(&mut violations, &policy.spec);
        }
        AnyResource::WorkloadGroup(group) => {
            workload_group::validate_workload_group(&mut violations, &group.spec);
        }
        AnyResource::ProxyConfig(config) => {
            workload_group::validate_proxy_config(&mut violations, &config.spec);
        }
        AnyResource::EnvoyFilter(filter) => {
            envoy_filter::validate_envoy_filter(&mut violations, &filter.spec);
        }
        AnyResource::Telemetry(telemetry) => {
            telemetry::validate_telemetry(&mut violations, &telemetry.spec);
        }
        AnyResource::StatefulSet(set) => {
            kube::validate_template(&mut violations, &set.spec.template)
        }
        AnyResource::DaemonSet(set) => kube::validate_template(&mut violations, &set.spec.template),
        AnyResource::ReplicaSet(set) => {
            kube::validate_template(&mut violations, &set.spec.template)
        }
        AnyResource::Job(job) => kube::validate_template(&mut violations, &job.spec.template),
        AnyResource::EndpointSlice(slice) => {
            kube_objects::validate_endpoint_slice(&mut violations, &slice.spec);
        }
        AnyResource::Secret(secret) => kube_objects::validate_secret(&mut violations, &secret.spec),
        AnyResource::ConfigMap(map) => {
            kube_objects::validate_config_map(&mut violations, &map.spec)
        }
        AnyResource::MutatingWebhookConfiguration(config) => {
            kube_objects::validate_webhooks(&mut violations, &config.spec);
        }
        AnyResource::GatewayClass(class) => {
            gateway_api::validate_gateway_class(&mut violations, &class.spec);
        }
        AnyResource::KubernetesGateway(gateway) => {
            gateway_api::validate_gateway(&mut violations, &gateway.spec);
        }
        AnyResource::HttpRoute(route) => {
            gateway_api::validate_http_route(&mut violations, &route.spec)
        }
        AnyResource::GrpcRoute(route) => {
            gateway_api::validate_grpc_route(&mut violations, &route.spec)
        }
        AnyResource::ReferenceGrant(grant) => {
            gateway_api::validate_reference_grant(&mut violations, &grant.spec);
        }
        AnyResource::ServiceLevelObjective(slo) => slo::validate_slo(&mut violations, &slo.spec),
        AnyResource::ServiceAccount(_) | AnyResource::Namespace(_) => {}
    }
    violations.0
}

fn validate_meta(violations: &mut Violations, resource: &AnyResource) {
    let ObjectMeta {
        name, namespace, ..
    } = resource.meta();
    if name.is_empty() {
        violations.push("metadata.name", "name is required");
    } else if !is_dns1123_subdomain(name) {
        violations.push("metadata.name", dns1123_subdomain_message(name));
    }
    if let Some(namespace) = namespace.as_deref().filter(|ns| !ns.is_empty())
        && !is_dns1123_label(namespace)
    {
        violations.push(
            "metadata.namespace",
            format!("namespace {namespace:?} is not a valid DNS-1123 label"),
        );
    }
}

/// Collects violations; small helpers for checks shared by several kinds.
#[derive(Debug, Default)]
pub(crate) struct Violations(Vec<Violation>);

impl Violations {
    pub(crate) fn push(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(Violation {
            field: field.into(),
            message: message.into(),
        });
    }

    /// A duration must parse, be at least 1ms (or 0 where `allow_zero`), and
    /// be in whole milliseconds, as Istio requires.
    pub(crate) fn duration(&mut self, field: &str, value: Option<&str>, allow_zero: bool) {
        let Some(value) = value else { return };
        match parse_duration(value) {
            Err(error) => self.push(field, error.to_string()),
            Ok(duration) if duration.is_zero() && allow_zero => {}
            Ok(duration) if duration.as_millis() < 1 => {
                self.push(field, "duration must be greater than 1ms");
            }
            Ok(duration) if duration.subsec_nanos() % 1_000_000 != 0 => {
                self.push(field, "only durations to ms precision are supported");
            }
            Ok(_) => {}
        }
    }

    pub(crate) fn percent(&mut self, field: &str, percent: Option<&Percent>) {
        if let Some(Percent { value }) = percent
            && !(0.0..=100.0).contains(value)
        {
            self.push(field, format!("percentage {value} is not in range 0..100"));
        }
    }

    pub(crate) fn port(&mut self, field: &str, port: Option<u32>) {
        if let Some(port) = port
            && !(1..=65535).contains(&port)
        {
            self.push(
                field,
                format!("port number {port} must be in the range 1..65535"),
            );
        }
    }

    /// A regex must be non-empty and compile (Envoy uses RE2; the `regex`
    /// crate's syntax is the same for what both support).
    pub(crate) fn string_match(&mut self, field: &str, string_match: Option<&StringMatch>) {
        if let Some(pattern) = string_match.and_then(StringMatch::regex) {
            self.regex(field, pattern);
        }
    }

    /// A regex must be non-empty and compile.
    pub(crate) fn regex(&mut self, field: &str, pattern: &str) {
        if pattern.is_empty() {
            self.push(field, "regex string match should not be empty");
        } else if let Err(error) = regex::Regex::new(pattern) {
            self.push(field, format!("{pattern:?} is not a valid regex: {error}"));
        }
    }

    pub(crate) fn destination(&mut self, field: &str, destination: &Destination) {
        if destination.host.is_empty() {
            self.push(format!("{field}.host"), "destination host is required");
        } else if destination.host == "*" {
            self.push(
                format!("{field}.host"),
                format!("invalid destination host {}", destination.host),
            );
        }
        if let Some(subset) = destination.subset.as_deref()
            && !is_dns1123_label(subset)
        {
            self.push(
                format!("{field}.subset"),
                format!("subset name is invalid: {subset:?}"),
            );
        }
        self.port(
            &format!("{field}.port.number"),
            destination.port.map(|port| port.number),
        );
    }
}

/// Kubernetes label syntax for every key and value of `labels` (Istio's
/// `labels.Instance.Validate`).
pub(crate) fn labels(violations: &mut Violations, field: &str, labels: &BTreeMap<String, String>) {
    for (key, value) in labels {
        let entry = crate::yaml::child_key(field, key);
        if !is_label_key(key) {
            violations.push(&entry, format!("invalid tag key: {key:?}"));
        }
        if !is_label_value(value) {
            violations.push(&entry, format!("invalid tag value: {value:?}"));
        }
    }
}

/// A networking workload selector: no empty keys and no wildcards.
pub(crate) fn workload_labels(
    violations: &mut Violations,
    field: &str,
    labels: &BTreeMap<String, String>,
) {
    for (key, value) in labels {
        let entry = crate::yaml::child_key(field, key);
        let pair = format!("{key}={value}");
        if key.is_empty() {
            violations.push(
                &entry,
                format!("empty key is not supported in selector: {pair:?}"),
            );
        }
        if key.contains('*') || value.contains('*') {
            violations.push(
                &entry,
                format!("wildcard is not supported in selector: {pair:?}"),
            );
        }
    }
}

/// `exportTo`: `*`, `.`, namespaces, and for ServiceEntries `~`; no
/// duplicates, and `*` or `~` alone.
pub(crate) fn export_to(
    violations: &mut Violations,
    field: &str,
    values: &[String],
    service_entry: bool,
) {
    let mut seen = BTreeSet::new();
    for (index, value) in values.iter().enumerate() {
        let entry = format!("{field}[{index}]");
        let allowed = matches!(value.as_str(), "*" | ".")
            || (service_entry && value == "~")
            || is_dns1123_label(value);
        if !allowed {
            violations.push(&entry, format!("only . or * or a valid DNS 1123 label is allowed as exportTo entry, found {value:?}"));
        } else if !seen.insert(value.as_str()) {
            violations.push(
                &entry,
                format!("duplicate entries in exportTo for entry {value}"),
            );
        }
    }
    if values.len() > 1 && seen.contains("*") {
        violations.push(
            field,
            "cannot have both public (*) and non-public exportTo values for a resource",
        );
    }
    if values.len() > 1 && seen.contains("~") {
        violations.push(
            field,
            "cannot export service entry to no one (~) and someone",
        );
    }
}

pub(crate) fn connection_pool(
    violations: &mut Violations,
    field: &str,
    pool: &ConnectionPoolSettings,
) {
    destination_rule::validate_connection_pool(violations, field, pool);
}

fn is_label_key(key: &str) -> bool {
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    prefix.is_none_or(|prefix| !prefix.is_empty() && is_dns1123_subdomain(prefix))
        && !name.is_empty()
        && is_label_value(name)
}

fn is_label_value(value: &str) -> bool {
    let bytes = value.as_bytes();
    bytes.is_empty()
        || (bytes.len() <= 63
            && bytes
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
            && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
            && bytes.last().is_some_and(u8::is_ascii_alphanumeric))
}

/// A DNS-1123 label: what Kubernetes requires of namespace and port names.
pub(crate) fn is_dns1123_label(value: &str) -> bool {
    let bytes = value.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
}

/// A DNS-1123 subdomain: what Kubernetes requires of most object names.
pub(crate) fn is_dns1123_subdomain(value: &str) -> bool {
    value.len() <= 253 && value.split('.').all(is_dns1123_label)
}

fn dns1123_subdomain_message(name: &str) -> String {
    format!(
        "name {name:?} is invalid: a lowercase RFC 1123 subdomain must consist of lower case \
         alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_labels() {
        assert!(is_dns1123_label("v1"));
        assert!(is_dns1123_label("v2-mysql"));
        assert!(!is_dns1123_label("V1"));
        assert!(!is_dns1123_label("-a"));
        assert!(!is_dns1123_label(""));
        assert!(is_dns1123_subdomain("reviews.default"));
        assert!(!is_dns1123_subdomain("reviews..default"));
    }

    #[test]
    fn durations_follow_istio_rules() {
        let mut violations = Violations::default();
        violations.duration("a", Some("10s"), false);
        violations.duration("b", Some("0s"), true);
        assert!(violations.0.is_empty(), "{:?}", violations.0);
        violations.duration("c", Some("0s"), false);
        violations.duration("d", Some("1500us"), false);
        violations.duration("e", Some("ten"), false);
        let fields: Vec<_> = violations.0.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(fields, ["c", "d", "e"]);
    }

    #[test]
    fn regexes_must_compile() {
        let mut violations = Violations::default();
        violations.string_match("ok", Some(&StringMatch::Regex("^/api/.*$".into())));
        violations.string_match("bad", Some(&StringMatch::Regex("(".into())));
        violations.string_match("empty", Some(&StringMatch::Regex(String::new())));
        let fields: Vec<_> = violations.0.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(fields, ["bad", "empty"]);
    }
}
