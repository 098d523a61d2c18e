//! Reading resources from a YAML text: documents, kinds, schemas,
//! validation, and errors located at a line and column.

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::error::{ConfigError, Position};
use crate::istio::{NETWORKING_API_VERSIONS, SECURITY_API_VERSIONS};
use crate::meta::{AnyResource, ObjectMeta, Resource, SourceRef};
use crate::validate::validate;
use crate::yaml::{DeError, Node, PositionMap, from_node, parse_documents};

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
            Document::Resource { violations, .. } if !violations.is_empty() => {
                outcome.errors.extend(violations);
            }
            Document::Resource {
                resource,
                name_position,
                ..
            } => {
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
            Ok(root) => read_document(file, &root),
            Err(syntax) => Document::Unreadable(vec![ConfigError::new(
                file,
                syntax.position,
                "",
                syntax.message,
            )]),
        })
        .collect()
}

fn read_document(file: &Path, root: &Node) -> Document {
    let (api_version, kind) = match read_type(file, root) {
        Ok(type_fields) => type_fields,
        Err(errors) => return Document::Unreadable(errors),
    };
    let Some(known) = KnownKind::from_kind(kind).filter(|k| k.accepts(api_version)) else {
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
    let resource = match known.read(root, header) {
        Ok(resource) => resource,
        Err(error) => {
            let (field, position) = error
                .location
                .unwrap_or_else(|| (String::new(), root.position));
            let error = ConfigError::new(file, position, field, error.message);
            return Document::Unreadable(vec![error]);
        }
    };
    let positions = PositionMap::of_document(root);
    let violations = validate(&resource)
        .into_iter()
        .map(|violation| {
            let position = positions.locate(&violation.field);
            ConfigError::new(file, position, violation.field, violation.message)
        })
        .collect();
    Document::Resource {
        resource,
        violations,
        name_position: positions.locate("metadata.name"),
    }
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

/// The kinds Trellis reads, by `kind` and accepted `apiVersion`s.
#[derive(Debug, Clone, Copy)]
enum KnownKind {
    Service,
    ServiceAccount,
    Namespace,
    Deployment,
    VirtualService,
    DestinationRule,
    WorkloadEntry,
    Gateway,
    ServiceEntry,
    Sidecar,
    PeerAuthentication,
    AuthorizationPolicy,
    Pod,
}

impl KnownKind {
    fn from_kind(kind: &str) -> Option<KnownKind> {
        Some(match kind {
            "Service" => KnownKind::Service,
            "ServiceAccount" => KnownKind::ServiceAccount,
            "Namespace" => KnownKind::Namespace,
            "Deployment" => KnownKind::Deployment,
            "VirtualService" => KnownKind::VirtualService,
            "DestinationRule" => KnownKind::DestinationRule,
            "WorkloadEntry" => KnownKind::WorkloadEntry,
            "Gateway" => KnownKind::Gateway,
            "ServiceEntry" => KnownKind::ServiceEntry,
            "Sidecar" => KnownKind::Sidecar,
            "PeerAuthentication" => KnownKind::PeerAuthentication,
            "AuthorizationPolicy" => KnownKind::AuthorizationPolicy,
            "Pod" => KnownKind::Pod,
            _ => return None,
        })
    }

    fn accepts(self, api_version: &str) -> bool {
        match self {
            KnownKind::Service
            | KnownKind::ServiceAccount
            | KnownKind::Namespace
            | KnownKind::Pod => api_version == "v1",
            KnownKind::Deployment => api_version == "apps/v1",
            KnownKind::VirtualService
            | KnownKind::DestinationRule
            | KnownKind::WorkloadEntry
            | KnownKind::Gateway
            | KnownKind::ServiceEntry
            | KnownKind::Sidecar => NETWORKING_API_VERSIONS.contains(&api_version),
            KnownKind::PeerAuthentication | KnownKind::AuthorizationPolicy => {
                SECURITY_API_VERSIONS.contains(&api_version)
            }
        }
    }
}

/// A resource document's `metadata` and `spec`; other top-level fields
/// (`status`, ...) are ignored.
#[derive(Deserialize)]
#[serde(bound(deserialize = "T: DeserializeOwned + Default"))]
struct Envelope<T> {
    #[serde(default)]
    metadata: ObjectMeta,
    #[serde(default)]
    spec: T,
}

/// What is known of a document before its body is read.
struct Header<'a> {
    api_version: &'a str,
    kind: &'a str,
    source: SourceRef,
}

impl KnownKind {
    fn read(self, root: &Node, header: Header<'_>) -> Result<AnyResource, DeError> {
        Ok(match self {
            KnownKind::Service => AnyResource::Service(typed(root, header)?),
            KnownKind::ServiceAccount => AnyResource::ServiceAccount(typed(root, header)?),
            KnownKind::Deployment => AnyResource::Deployment(typed(root, header)?),
            KnownKind::Namespace => {
                let mut namespace: Resource<crate::kube::NamespaceSpec> = typed(root, header)?;
                namespace.spec.labels = namespace.meta.labels.clone();
                AnyResource::Namespace(namespace)
            }
            KnownKind::VirtualService => AnyResource::VirtualService(typed(root, header)?),
            KnownKind::DestinationRule => AnyResource::DestinationRule(typed(root, header)?),
            KnownKind::WorkloadEntry => AnyResource::WorkloadEntry(typed(root, header)?),
            KnownKind::Gateway => AnyResource::Gateway(typed(root, header)?),
            KnownKind::ServiceEntry => AnyResource::ServiceEntry(typed(root, header)?),
            KnownKind::Sidecar => AnyResource::Sidecar(typed(root, header)?),
            KnownKind::PeerAuthentication => AnyResource::PeerAuthentication(typed(root, header)?),
            KnownKind::AuthorizationPolicy => {
                AnyResource::AuthorizationPolicy(typed(root, header)?)
            }
            KnownKind::Pod => AnyResource::Pod(typed(root, header)?),
        })
    }
}

fn typed<T: DeserializeOwned + Default>(
    root: &Node,
    header: Header<'_>,
) -> Result<Resource<T>, DeError> {
    let envelope: Envelope<T> = from_node(root, "")?;
    Ok(Resource {
        api_version: header.api_version.to_string(),
        kind: header.kind.to_string(),
        meta: envelope.metadata,
        spec: envelope.spec,
        source: header.source,
    })
}

#[cfg(test)]
mod networking_tests;
#[cfg(test)]
mod security_tests;
#[cfg(test)]
mod tests;
