//! Reading resources from a YAML text: documents, kinds, schemas,
//! validation, and errors located at a line and column.

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::error::{ConfigError, Position};
use crate::istio::NETWORKING_API_VERSIONS;
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
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut loader = Loader {
        file,
        outcome: ParseOutcome::default(),
        first_definition: HashMap::new(),
    };
    for document in parse_documents(text) {
        match document {
            Ok(root) => loader.load_document(&root),
            Err(syntax) => loader.error(syntax.position, "", syntax.message),
        }
    }
    loader.outcome
}

struct Loader<'a> {
    file: &'a Path,
    outcome: ParseOutcome,
    /// Where each resource key was first defined in this text.
    first_definition: HashMap<crate::meta::ResourceKey, Position>,
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
            _ => return None,
        })
    }

    fn accepts(self, api_version: &str) -> bool {
        match self {
            KnownKind::Service | KnownKind::ServiceAccount | KnownKind::Namespace => {
                api_version == "v1"
            }
            KnownKind::Deployment => api_version == "apps/v1",
            KnownKind::VirtualService | KnownKind::DestinationRule | KnownKind::WorkloadEntry => {
                NETWORKING_API_VERSIONS.contains(&api_version)
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

impl Loader<'_> {
    fn error(&mut self, position: Position, field: &str, message: impl Into<String>) {
        let error = ConfigError::new(self.file, position, field, message);
        self.outcome.errors.push(error);
    }

    fn load_document(&mut self, root: &Node) {
        let Some((api_version, kind)) = self.read_type(root) else {
            return;
        };
        let Some(known) = KnownKind::from_kind(kind).filter(|k| k.accepts(api_version)) else {
            let message = format!("skipping unsupported resource {kind} ({api_version})");
            let warning = ConfigError::new(self.file, root.position, "", message);
            self.outcome.warnings.push(warning);
            return;
        };
        let source = SourceRef {
            file: self.file.to_path_buf(),
            line: root.position.line,
            column: root.position.column,
        };
        let header = Header {
            api_version,
            kind,
            source,
        };
        match known.read(root, header) {
            Ok(resource) => self.accept(root, resource),
            Err(error) => {
                let (field, position) = error
                    .location
                    .unwrap_or_else(|| (String::new(), root.position));
                self.error(position, &field, error.message);
            }
        }
    }

    /// `apiVersion` and `kind`, or an error when either is missing.
    fn read_type<'n>(&mut self, root: &'n Node) -> Option<(&'n str, &'n str)> {
        if !root.is_mapping() {
            self.error(root.position, "", "a resource must be a mapping");
            return None;
        }
        let mut field = |name: &str| match root.get(name).and_then(Node::as_scalar) {
            Some(value) if !value.is_empty() => Some(value),
            _ => {
                self.error(
                    root.position,
                    name,
                    format!("missing required field \"{name}\""),
                );
                None
            }
        };
        let api_version = field("apiVersion");
        let kind = field("kind");
        Some((api_version?, kind?))
    }

    /// Validates a parsed resource and keeps it when valid.
    fn accept(&mut self, root: &Node, resource: AnyResource) {
        let violations = validate(&resource);
        if !violations.is_empty() {
            let positions = PositionMap::of_document(root);
            for violation in violations {
                let position = positions.locate(&violation.field);
                self.error(position, &violation.field, violation.message);
            }
            return;
        }
        let key = resource.key();
        if let Some(first) = self.first_definition.get(&key) {
            let message = format!("{key} is already defined at line {}", first.line);
            let position = PositionMap::of_document(root).locate("metadata.name");
            self.error(position, "metadata.name", message);
            return;
        }
        self.first_definition.insert(key, root.position);
        self.outcome.resources.push(resource);
    }
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
mod tests;
