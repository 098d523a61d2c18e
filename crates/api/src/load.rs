//! Reading resources from a YAML text: documents, kinds, schemas,
//! validation, and errors located at a line and column.

use std::collections::HashMap;
use std::path::Path;

mod kinds;
mod mesh_config_map;
pub(crate) mod unknown_fields;

use crate::error::{ConfigError, Position};
use crate::meta::{AnyResource, SourceRef};
use crate::validate::validate;
use crate::yaml::{DeError, Node, PositionMap, parse_documents};
use kinds::{Header, KnownKind, Read};

/// Everything read from one text. Invalid documents contribute errors and no
/// resources; documents of kinds Trellis does not handle contribute warnings.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ParseOutcome {
    pub resources: Vec<AnyResource>,
    pub errors: Vec<ConfigError>,
    pub warnings: Vec<ConfigError>,
}

impl ParseOutcome {
    pub fn is_valid(&self) -> bool {
        self.errors.is_empty()
    }
}

/// Reads every document of a (possibly multi-document) YAML text. `file` is
/// only used to label resources and errors.
pub fn parse_yaml(file: &Path, text: &str) -> ParseOutcome {
    let mut outcome = ParseOutcome::default();
    let mut first_definition = HashMap::new();
    for document in read_documents(file, text) {
        match document {
            Document::Unreadable(errors) => outcome.errors.extend(errors),
            Document::Unsupported(warning) => outcome.warnings.push(warning),
            Document::Resource {
                violations,
                warnings,
                ..
            } if !violations.is_empty() => {
                outcome.errors.extend(violations);
                outcome.warnings.extend(warnings);
            }
            Document::Resource {
                resource,
                name_position,
                warnings,
                ..
            } => {
                outcome.warnings.extend(warnings);
                let key = resource.key();
                if let Some(first) = first_definition.get(&key) {
                    let message = format!("{key} is already defined at line {first}");
                    let error = ConfigError::new(file, name_position, "metadata.name", message);
                    outcome.errors.push(error);
                    continue;
                }
                first_definition.insert(key, resource.source().line);
                outcome.resources.push(resource);
            }
        }
    }
    outcome
}

/// One document of a text, as read, before any filtering: tools that report
/// problems per resource (`trellis analyze`) need invalid resources too.
// Documents are consumed as soon as they are read; boxing the resource would
// cost an allocation per document for no saving.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Document {
    /// A resource of a kind Trellis reads, with what validation found wrong
    /// with it (empty when valid), each error located in the text.
    Resource {
        resource: AnyResource,
        violations: Vec<ConfigError>,
        /// Where `metadata.name` is written, to point at duplicates.
        name_position: Position,
        /// What deserves attention without making it invalid: fields its
        /// schema does not have, features the data plane does not apply.
        warnings: Vec<ConfigError>,
    },
    /// A document that could not be read: a syntax error, a field of the
    /// wrong type, an unknown field, a missing `apiVersion` or `kind`.
    Unreadable(Vec<ConfigError>),
    /// A kind (or apiVersion) Trellis does not read, as a warning.
    Unsupported(ConfigError),
}

/// Reads every document of `text` without dropping invalid resources or
/// checking for duplicates; [`parse_yaml`] is built on it.
pub fn read_documents(file: &Path, text: &str) -> Vec<Document> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    parse_documents(text)
        .into_iter()
        .map(|document| match document {
            Ok(root) => read_document(file, text, &root),
            Err(syntax) => Document::Unreadable(vec![ConfigError::new(
                file,
                syntax.position,
                "",
                syntax.message,
            )]),
        })
        .collect()
}

fn read_document(file: &Path, text: &str, root: &Node) -> Document {
    let (api_version, kind) = match read_type(file, root) {
        Ok(type_fields) => type_fields,
        Err(errors) => return Document::Unreadable(errors),
    };
    let Some(known) = KnownKind::identify(kind, api_version) else {
        let message = format!("skipping unsupported resource {kind} ({api_version})");
        return Document::Unsupported(ConfigError::new(file, root.position, "", message));
    };
    let source = SourceRef {
        file: file.to_path_buf(),
        line: root.position.line,
        column: root.position.column,
    };
    let header = Header {
        api_version,
        kind,
        source,
    };
    let Read {
        resource,
        unknown_fields,
    } = match known.read(root, header) {
        Ok(read) => read,
        Err(error) => return Document::Unreadable(vec![schema_error(file, root, error)]),
    };
    let positions = PositionMap::of_document(root);
    let mut violations: Vec<ConfigError> = validate(&resource)
        .into_iter()
        .map(|violation| {
            let position = positions.locate(&violation.field);
            ConfigError::new(file, position, violation.field, violation.message)
        })
        .collect();
    let mut warnings = unknown_fields::warnings(file, known.schema(), unknown_fields);
    warnings.extend(unsupported_warnings(file, &resource));
    // The `istio` ConfigMap's mesh config is checked where it is written.
    let (mesh_errors, mesh_warnings) = mesh_config_map::check(file, text, root, &resource);
    violations.extend(mesh_errors);
    warnings.extend(mesh_warnings);
    Document::Resource {
        resource,
        violations,
        name_position: positions.locate("metadata.name"),
        warnings,
    }
}

/// A document that does not fit its kind's schema, at the innermost field
/// known.
fn schema_error(file: &Path, root: &Node, error: DeError) -> ConfigError {
    let (field, position) = error
        .location
        .unwrap_or_else(|| (String::new(), root.position));
    ConfigError::new(file, position, field, error.message)
}

/// `apiVersion` and `kind`, or an error for each that is missing.
fn read_type<'n>(file: &Path, root: &'n Node) -> Result<(&'n str, &'n str), Vec<ConfigError>> {
    if !root.is_mapping() {
        let error = ConfigError::new(file, root.position, "", "a resource must be a mapping");
        return Err(vec![error]);
    }
    let mut errors = Vec::new();
    let mut field = |name: &str| match root.get(name).and_then(Node::as_scalar) {
        Some(value) if !value.is_empty() => Some(value),
        _ => {
            let message = format!("missing required field \"{name}\"");
            errors.push(ConfigError::new(file, root.position, name, message));
            None
        }
    };
    let api_version = field("apiVersion");
    let kind = field("kind");
    match (api_version, kind) {
        (Some(api_version), Some(kind)) => Ok((api_version, kind)),
        _ => Err(errors),
    }
}

/// Resources, or parts of them, that Trellis reads but its data plane
/// does not apply: loading them must not look like they take effect.
fn unsupported_warnings(file: &Path, resource: &AnyResource) -> Vec<ConfigError> {
    let (source, message, field) = match resource {
        AnyResource::EnvoyFilter(filter) => (
            &filter.source,
            format!(
                "EnvoyFilter {}/{} is not supported by the Trellis data plane: its patches are not applied",
                filter.namespace(),
                filter.name()
            ),
            String::new(),
        ),
        AnyResource::Telemetry(telemetry) => {
            let Some((field, what)) = unapplied_telemetry(&telemetry.spec) else {
                return Vec::new();
            };
            (
                &telemetry.source,
                format!(
                    "Telemetry {}/{}: {what} is not supported by the Trellis data plane and has no effect",
                    telemetry.namespace(),
                    telemetry.name()
                ),
                field,
            )
        }
        _ => return Vec::new(),
    };
    let position = crate::Position {
        line: source.line,
        column: source.column,
    };
    vec![ConfigError::new(file, position, field, message)]
}

/// The first part of a Telemetry spec the data plane does not apply.
fn unapplied_telemetry(spec: &crate::istio::Telemetry) -> Option<(String, &'static str)> {
    if spec.target_ref.is_some() || !spec.target_refs.is_empty() {
        // Skipped as a whole: applying it namespace-wide would widen it.
        return Some(("spec.targetRefs".into(), "targetRefs (the resource)"));
    }
    for (index, metrics) in spec.metrics.iter().enumerate() {
        if metrics.reporting_interval.is_some() {
            return Some((
                format!("spec.metrics[{index}].reportingInterval"),
                "reportingInterval",
            ));
        }
        for (at, item) in metrics.overrides.iter().enumerate() {
            if item
                .match_
                .as_ref()
                .is_some_and(|m| m.custom_metric.is_some())
            {
                return Some((
                    format!("spec.metrics[{index}].overrides[{at}].match.customMetric"),
                    "a customMetric override",
                ));
            }
        }
    }
    None
}

#[cfg(test)]
mod extension_tests;
#[cfg(test)]
mod gateway_api_tests;
#[cfg(test)]
mod kube_tests;
#[cfg(test)]
mod networking_tests;
#[cfg(test)]
mod security_tests;
#[cfg(test)]
mod slo_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod unknown_field_tests;
