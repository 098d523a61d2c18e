//! Counts of resources validated on load, with the names istiod's
//! validation webhook uses (`galley_validation_passed`,
//! `galley_validation_failed`): a config source is where Trellis validates
//! what an Istio cluster's webhook would. Each resource is counted once
//! per change: a file when its text changes, an API object when its
//! `resourceVersion` does, never on a reload of what did not change.
//!
//! Labels are Istio's: the resource's API `group`, `version` and
//! `resource` (the lowercase plural, `virtualservices`), and for failures
//! a `reason`. Documents of kinds Trellis does not read are skipped with
//! a warning, not counted: they are not config it refuses.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};

use prometheus_client::encoding::{EncodeLabelSet, LabelSetEncoder};
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use trellis_api::{Document, read_documents};
use trellis_metrics::IstioCounter;

/// Why a resource was refused, as Istio's webhook words it.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum Rejection {
    /// The text does not decode into a resource: YAML syntax, a field of
    /// the wrong type or unknown to the schema, no `apiVersion` or `kind`.
    YamlDecodeError,
    /// An API object does not convert into its kind's schema.
    CrdConversionError,
    /// The resource decodes but breaks a validation rule.
    InvalidResource,
}

impl Rejection {
    fn as_str(self) -> &'static str {
        match self {
            Rejection::YamlDecodeError => "yaml_decode_error",
            Rejection::CrdConversionError => "crd_conversion_error",
            Rejection::InvalidResource => "invalid_resource",
        }
    }
}

/// A resource's type as the API server names it. Empty when a document
/// is unreadable before its type is known.
#[derive(Clone, Debug, Default, Hash, PartialEq, Eq)]
pub struct ResourceType {
    pub group: String,
    pub version: String,
    /// The lowercase plural, as in a REST path (`serviceentries`).
    pub resource: String,
}

impl ResourceType {
    /// From a document's `apiVersion` (`group/version`, or `version` for
    /// the core group) and `kind`.
    pub fn of(api_version: &str, kind: &str) -> ResourceType {
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        ResourceType {
            group: group.to_string(),
            version: version.to_string(),
            resource: plural(kind),
        }
    }
}

/// Kubernetes' default plural of a kind: `Gateway` -> `gateways`,
/// `ServiceEntry` -> `serviceentries`, `GatewayClass` -> `gatewayclasses`.
fn plural(kind: &str) -> String {
    let lower = kind.to_ascii_lowercase();
    if let Some(stem) = lower.strip_suffix('y')
        && !stem.ends_with(['a', 'e', 'i', 'o', 'u'])
    {
        return format!("{stem}ies");
    }
    if lower.ends_with(['s', 'x', 'z']) || lower.ends_with("ch") || lower.ends_with("sh") {
        return format!("{lower}es");
    }
    format!("{lower}s")
}

#[derive(Clone, Debug, Hash, PartialEq, Eq)]
struct Failure {
    resource: ResourceType,
    reason: Rejection,
}

fn encode_type(
    resource: &ResourceType,
    reason: Option<Rejection>,
    encoder: &mut LabelSetEncoder<'_>,
) -> Result<(), std::fmt::Error> {
    let mut labels = vec![
        ("group", resource.group.as_str()),
        ("version", resource.version.as_str()),
        ("resource", resource.resource.as_str()),
    ];
    labels.extend(reason.map(|reason| ("reason", reason.as_str())));
    labels.encode(encoder)
}

impl EncodeLabelSet for ResourceType {
    fn encode(&self, encoder: &mut LabelSetEncoder<'_>) -> Result<(), std::fmt::Error> {
        encode_type(self, None, encoder)
    }
}

impl EncodeLabelSet for Failure {
    fn encode(&self, encoder: &mut LabelSetEncoder<'_>) -> Result<(), std::fmt::Error> {
        encode_type(&self.resource, Some(self.reason), encoder)
    }
}

/// The two counters; clones share them.
#[derive(Clone, Debug, Default)]
pub struct ValidationMetrics {
    passed: Family<ResourceType, IstioCounter>,
    failed: Family<Failure, IstioCounter>,
}

impl ValidationMetrics {
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "galley_validation_passed",
            "Resources that passed validation when loaded, once per change",
            self.passed.clone(),
        );
        registry.register(
            "galley_validation_failed",
            "Resources refused by validation when loaded, once per change, by reason",
            self.failed.clone(),
        );
    }

    pub fn passed(&self, resource: ResourceType) {
        self.passed.get_or_create(&resource).inc();
    }

    pub fn failed(&self, resource: ResourceType, reason: Rejection) {
        self.failed
            .get_or_create(&Failure { resource, reason })
            .inc();
    }

    /// Counts each document of `text`, read from `file`.
    fn count_documents(&self, file: &Path, text: &str) {
        for document in read_documents(file, text) {
            match document {
                Document::Resource {
                    resource,
                    violations,
                    ..
                } => {
                    let kind = ResourceType::of(resource.api_version(), resource.kind());
                    if violations.is_empty() {
                        self.passed(kind);
                    } else {
                        self.failed(kind, Rejection::InvalidResource);
                    }
                }
                Document::Unreadable(_) => {
                    self.failed(ResourceType::default(), Rejection::YamlDecodeError);
                }
                Document::Unsupported(_) => {}
            }
        }
    }
}

/// Counts a directory's files as they change: each reading shows every
/// file's text, and only a text not seen at that path before is counted.
#[derive(Debug, Default)]
pub struct DirectoryTally {
    metrics: ValidationMetrics,
    /// A hash of each file's text as last counted.
    fingerprints: BTreeMap<PathBuf, u64>,
    /// The files read as text in the reading under way.
    read_now: BTreeSet<PathBuf>,
}

impl DirectoryTally {
    pub fn new(metrics: ValidationMetrics) -> DirectoryTally {
        DirectoryTally {
            metrics,
            ..DirectoryTally::default()
        }
    }

    /// `path` holds `text` in the reading under way.
    pub fn observe(&mut self, path: &Path, text: &str) {
        let mut hasher = DefaultHasher::new();
        text.hash(&mut hasher);
        let fingerprint = hasher.finish();
        if self.fingerprints.get(path) != Some(&fingerprint) {
            self.metrics.count_documents(path, text);
            self.fingerprints.insert(path.to_path_buf(), fingerprint);
        }
        self.read_now.insert(path.to_path_buf());
    }

    /// Ends a reading: files that were not read (deleted, or no longer
    /// readable) are forgotten, so that their next text counts, unless they
    /// lie where the reading could not look (`is_unknown`).
    pub fn finish_reading(&mut self, is_unknown: impl Fn(&Path) -> bool) {
        let read_now = std::mem::take(&mut self.read_now);
        self.fingerprints
            .retain(|path, _| read_now.contains(path) || is_unknown(path));
    }
}

#[cfg(test)]
mod tests;
