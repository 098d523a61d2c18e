//! Semantic checks Istio and Kubernetes make when a resource is applied.
//! Messages follow Istio's wording where Istio has one. Each violation names
//! a field path; the loader turns it into a line and column.

mod destination_rule;
mod kube;
mod virtual_service;

use std::fmt;

use crate::istio::{Destination, Percent, StringMatch, parse_duration};
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
        let Some(pattern) = string_match.and_then(StringMatch::regex) else {
            return;
        };
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
