//! WorkloadGroup and ProxyConfig: the rules Istio's webhook applies to the
//! templates and settings of workloads.

use super::kube::validate_entry_ports;
use super::{Violations, labels, workload_labels};
use crate::istio::{ProxyConfig, ReadinessProbe, WorkloadGroup};

/// The proxy image flavours Istio publishes.
const IMAGE_TYPES: [&str; 3] = ["default", "debug", "distroless"];

pub(super) fn validate_workload_group(violations: &mut Violations, group: &WorkloadGroup) {
    if let Some(metadata) = &group.metadata {
        labels(violations, "spec.metadata.labels", &metadata.labels);
    }
    match &group.template {
        None => violations.push("spec.template", "template is required"),
        Some(template) => {
            if !template.address.is_empty() {
                violations.push(
                    "spec.template.address",
                    "address must not be set in the workload entry template",
                );
            }
            labels(violations, "spec.template.labels", &template.labels);
            validate_entry_ports(violations, "spec.template.ports", template);
        }
    }
    if let Some(probe) = &group.probe {
        validate_probe(violations, "spec.probe", probe);
    }
}

fn validate_probe(violations: &mut Violations, field: &str, probe: &ReadinessProbe) {
    let timings = [
        ("initialDelaySeconds", probe.initial_delay_seconds),
        ("timeoutSeconds", probe.timeout_seconds),
        ("periodSeconds", probe.period_seconds),
        ("successThreshold", probe.success_threshold),
        ("failureThreshold", probe.failure_threshold),
    ];
    for (name, value) in timings {
        if value < 0 {
            violations.push(
                format!("{field}.{name}"),
                format!("{name} must be non-negative"),
            );
        }
    }
    let checks = [
        probe.http_get.is_some(),
        probe.tcp_socket.is_some(),
        probe.exec.is_some(),
        probe.grpc.is_some(),
    ];
    match checks.iter().filter(|set| **set).count() {
        0 => violations.push(
            field,
            "must define a health check: httpGet, tcpSocket, exec or grpc",
        ),
        1 => {}
        _ => violations.push(
            field,
            "only one of httpGet, tcpSocket, exec or grpc may be set",
        ),
    }
    if let Some(http) = &probe.http_get {
        violations.port(&format!("{field}.httpGet.port"), Some(http.port));
        if !http.scheme.is_empty()
            && !matches!(http.scheme.to_ascii_uppercase().as_str(), "HTTP" | "HTTPS")
        {
            violations.push(
                format!("{field}.httpGet.scheme"),
                format!("scheme {:?} must be HTTP or HTTPS", http.scheme),
            );
        }
        for (index, header) in http.http_headers.iter().enumerate() {
            if header.name.is_empty() || !header.name.bytes().all(is_header_name_byte) {
                violations.push(
                    format!("{field}.httpGet.httpHeaders[{index}].name"),
                    format!("invalid header name: {:?}", header.name),
                );
            }
        }
    }
    if let Some(tcp) = &probe.tcp_socket {
        violations.port(&format!("{field}.tcpSocket.port"), Some(tcp.port));
    }
    if let Some(grpc) = &probe.grpc {
        violations.port(&format!("{field}.grpc.port"), Some(grpc.port));
    }
    if probe
        .exec
        .as_ref()
        .is_some_and(|exec| exec.command.is_empty())
    {
        violations.push(format!("{field}.exec.command"), "exec command must be set");
    }
}

/// HTTP token characters (RFC 7230), what a header name is made of.
fn is_header_name_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

pub(super) fn validate_proxy_config(violations: &mut Violations, config: &ProxyConfig) {
    if let Some(selector) = &config.selector {
        workload_labels(
            violations,
            "spec.selector.matchLabels",
            &selector.match_labels,
        );
    }
    if let Some(concurrency) = config.concurrency
        && concurrency < 0
    {
        violations.push("spec.concurrency", "concurrency must be non-negative");
    }
    for name in config.environment_variables.keys() {
        if name.is_empty() || name.contains('=') {
            let field = crate::yaml::child_key("spec.environmentVariables", name);
            violations.push(
                field,
                format!("invalid environment variable name: {name:?}"),
            );
        }
    }
    if let Some(image) = &config.image
        && !IMAGE_TYPES.contains(&image.image_type.as_str())
    {
        violations.push(
            "spec.image.imageType",
            format!(
                "imageType {:?} must be one of default, debug or distroless",
                image.image_type
            ),
        );
    }
}
