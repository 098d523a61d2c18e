//! The checks istiod makes of a mesh config before using it. Fields left
//! out take Istio's defaults and are not checked.

use std::collections::BTreeSet;

use super::{Violation, Violations, is_dns1123_label};
use crate::mesh_config::{LogFormat, MeshConfig, MeshExtensionProvider, ProxyDefaults};

/// Checks a mesh config; field paths start at the config's root.
pub(crate) fn validate_mesh_config(config: &MeshConfig) -> Vec<Violation> {
    let mut violations = Violations::default();
    if let Some(domain) = config.trust_domain.as_deref() {
        trust_domain(&mut violations, "trustDomain", domain);
    }
    for (index, alias) in config.trust_domain_aliases.iter().enumerate() {
        trust_domain(
            &mut violations,
            &format!("trustDomainAliases[{index}]"),
            alias,
        );
    }
    if let Some(namespace) = config.root_namespace.as_deref()
        && !is_dns1123_label(namespace)
    {
        violations.push(
            "rootNamespace",
            format!("root namespace {namespace:?} is not a valid DNS-1123 label"),
        );
    }
    violations.duration("connectTimeout", config.connect_timeout.as_deref(), false);
    violations.duration(
        "protocolDetectionTimeout",
        config.protocol_detection_timeout.as_deref(),
        true,
    );
    proxy_defaults(&mut violations, &config.default_config);
    extension_providers(&mut violations, &config.extension_providers);
    violations.0
}

/// A SPIFFE trust domain: lowercase letters, digits, `.`, `-` and `_`.
fn trust_domain(violations: &mut Violations, field: &str, domain: &str) {
    if domain.is_empty() {
        violations.push(field, "empty domain name not allowed");
        return;
    }
    let valid = domain.len() <= 255
        && domain.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'_')
        })
        && domain.split('.').all(|label| !label.is_empty());
    if !valid {
        violations.push(field, format!("trust domain {domain:?} is invalid: use lowercase letters, digits, '.', '-' and '_'"));
    }
}

fn proxy_defaults(violations: &mut Violations, defaults: &ProxyDefaults) {
    if defaults.concurrency.is_some_and(|c| c < 0) {
        violations.push(
            "defaultConfig.concurrency",
            "concurrency must be greater than or equal to 0",
        );
    }
    if defaults.stat_name_length.is_some_and(|length| length < 0) {
        violations.push(
            "defaultConfig.statNameLength",
            "statNameLength must be non-negative",
        );
    }
    violations.duration(
        "defaultConfig.drainDuration",
        defaults.drain_duration.as_deref(),
        false,
    );
    violations.duration(
        "defaultConfig.terminationDrainDuration",
        defaults.termination_drain_duration.as_deref(),
        true,
    );
    violations.port("defaultConfig.proxyAdminPort", defaults.proxy_admin_port);
    violations.port("defaultConfig.statusPort", defaults.status_port);
    if let Some(address) = defaults.discovery_address.as_deref()
        && !is_host_port(address)
    {
        violations.push(
            "defaultConfig.discoveryAddress",
            format!("invalid discovery address {address:?}: expected host:port"),
        );
    }
    for name in defaults.proxy_metadata.keys() {
        if name.is_empty() || name.contains('=') {
            let field = crate::yaml::child_key("defaultConfig.proxyMetadata", name);
            violations.push(
                field,
                format!("invalid environment variable name: {name:?}"),
            );
        }
    }
}

fn is_host_port(address: &str) -> bool {
    let Some((host, port)) = address.rsplit_once(':') else {
        return false;
    };
    !host.is_empty() && port.parse::<u16>().is_ok_and(|port| port != 0)
}

fn extension_providers(violations: &mut Violations, providers: &[MeshExtensionProvider]) {
    let mut names = BTreeSet::new();
    for (index, provider) in providers.iter().enumerate() {
        let field = format!("extensionProviders[{index}]");
        if provider.name.is_empty() {
            violations.push(format!("{field}.name"), "empty extension provider name");
        } else if !names.insert(provider.name.as_str()) {
            violations.push(
                format!("{field}.name"),
                format!("duplicate extension provider name {:?}", provider.name),
            );
        }
        let kinds = provider.kinds();
        if kinds.len() != 1 {
            violations.push(
                &field,
                format!(
                    "extension provider {:?} must set exactly one provider kind, found {}",
                    provider.name,
                    kinds.len()
                ),
            );
        }
        provider_settings(violations, &field, provider);
    }
}

fn provider_settings(violations: &mut Violations, field: &str, provider: &MeshExtensionProvider) {
    if let Some(http) = &provider.envoy_ext_authz_http {
        let field = format!("{field}.envoyExtAuthzHttp");
        service(violations, &field, &http.service, http.port);
        violations.duration(&format!("{field}.timeout"), http.timeout.as_deref(), false);
        status_on_error(violations, &field, http.status_on_error.as_deref());
        if let Some(prefix) = http.path_prefix.as_deref()
            && !prefix.starts_with('/')
        {
            violations.push(
                format!("{field}.pathPrefix"),
                format!("pathPrefix {prefix:?} must begin with /"),
            );
        }
    }
    if let Some(grpc) = &provider.envoy_ext_authz_grpc {
        let field = format!("{field}.envoyExtAuthzGrpc");
        service(violations, &field, &grpc.service, grpc.port);
        violations.duration(&format!("{field}.timeout"), grpc.timeout.as_deref(), false);
        status_on_error(violations, &field, grpc.status_on_error.as_deref());
    }
    let tracers = [
        ("zipkin", &provider.zipkin),
        ("datadog", &provider.datadog),
        ("skywalking", &provider.skywalking),
    ];
    for (name, tracer) in tracers {
        if let Some(tracer) = tracer {
            service(
                violations,
                &format!("{field}.{name}"),
                &tracer.service,
                tracer.port,
            );
        }
    }
    if let Some(otel) = &provider.opentelemetry {
        let field = format!("{field}.opentelemetry");
        service(violations, &field, &otel.service, otel.port);
        if let Some(http) = &otel.http {
            violations.duration(
                &format!("{field}.http.timeout"),
                http.timeout.as_deref(),
                false,
            );
        }
    }
    let log_services = [
        ("envoyHttpAls", &provider.envoy_http_als),
        ("envoyTcpAls", &provider.envoy_tcp_als),
        ("envoyOtelAls", &provider.envoy_otel_als),
    ];
    for (name, log_service) in log_services {
        if let Some(log_service) = log_service {
            service(
                violations,
                &format!("{field}.{name}"),
                &log_service.service,
                log_service.port,
            );
        }
    }
    if let Some(file_log) = &provider.envoy_file_access_log
        && let Some(LogFormat { text, labels }) = &file_log.log_format
        && text.is_some() == labels.is_some()
    {
        violations.push(
            format!("{field}.envoyFileAccessLog.logFormat"),
            "exactly one of text or labels must be set",
        );
    }
}

fn service(violations: &mut Violations, field: &str, service: &str, port: u32) {
    if service.is_empty() {
        violations.push(format!("{field}.service"), "service must be set");
    }
    violations.port(&format!("{field}.port"), Some(port));
}

fn status_on_error(violations: &mut Violations, field: &str, status: Option<&str>) {
    if let Some(status) = status
        && !status
            .parse::<u16>()
            .is_ok_and(|code| (100..=599).contains(&code))
    {
        violations.push(
            format!("{field}.statusOnError"),
            format!("invalid statusOnError value {status:?}: expected an HTTP status code"),
        );
    }
}
