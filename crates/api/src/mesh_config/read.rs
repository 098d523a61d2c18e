//! Reading a MeshConfig: from text, a file, or the `istio` ConfigMap, with
//! every error and unknown field located like a resource's.

use std::path::{Path, PathBuf};

use super::MeshConfig;
use crate::error::{ConfigError, Position};
use crate::kube::ConfigMapBody;
use crate::load::unknown_fields;
use crate::meta::Resource;
use crate::validate::validate_mesh_config;
use crate::yaml::{Node, PositionMap, from_node, parse_documents};

/// The ConfigMap key holding the mesh config, as istiod reads it.
pub const MESH_CONFIG_KEY: &str = "mesh";

/// A valid mesh config, and the fields it has that MeshConfig lacks.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MeshConfigOutcome {
    pub config: MeshConfig,
    pub warnings: Vec<ConfigError>,
}

#[derive(Debug, thiserror::Error)]
pub enum MeshConfigError {
    #[error("reading mesh config {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("ConfigMap {config_map} has no \"{MESH_CONFIG_KEY}\" key")]
    MissingMeshKey { config_map: String },
    /// Every error found (syntax, schema, validation), and the warnings
    /// that came with them.
    #[error("invalid mesh config: {}", join(errors))]
    Invalid {
        errors: Vec<ConfigError>,
        warnings: Vec<ConfigError>,
    },
}

fn join(errors: &[ConfigError]) -> String {
    let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
    lines.join("; ")
}

impl MeshConfig {
    /// Reads a mesh config written as YAML (or JSON); `file` only labels
    /// errors. An empty text is Istio's defaults.
    pub fn parse(file: &Path, text: &str) -> Result<MeshConfigOutcome, MeshConfigError> {
        let invalid = |error: ConfigError| MeshConfigError::Invalid {
            errors: vec![error],
            warnings: Vec::new(),
        };
        let mut documents = parse_documents(text.strip_prefix('\u{feff}').unwrap_or(text));
        if documents.len() > 1 {
            let message = "a mesh config is a single YAML document";
            return Err(invalid(ConfigError::new(
                file,
                Position::START,
                "",
                message,
            )));
        }
        let Some(document) = documents.pop() else {
            return Ok(MeshConfigOutcome::default());
        };
        let root = document.map_err(|syntax| {
            invalid(ConfigError::new(file, syntax.position, "", syntax.message))
        })?;
        read_root(file, &root)
    }

    /// Reads a mesh config file (`--meshConfig`, istiod's `mesh` file).
    pub fn from_file(path: &Path) -> Result<MeshConfigOutcome, MeshConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| MeshConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        MeshConfig::parse(path, &text)
    }

    /// Reads the `mesh` key of a ConfigMap (istiod's `istio` ConfigMap).
    /// Errors are labelled `FILE[data.mesh]`, with lines and columns
    /// counted within the key's text.
    pub fn from_config_map(
        config_map: &Resource<ConfigMapBody>,
    ) -> Result<MeshConfigOutcome, MeshConfigError> {
        let Some(text) = config_map.spec.data.get(MESH_CONFIG_KEY) else {
            return Err(MeshConfigError::MissingMeshKey {
                config_map: format!("{}/{}", config_map.namespace(), config_map.name()),
            });
        };
        let label = format!(
            "{}[data.{MESH_CONFIG_KEY}]",
            config_map.source.file.display()
        );
        MeshConfig::parse(Path::new(&label), text)
    }
}

fn read_root(file: &Path, root: &Node) -> Result<MeshConfigOutcome, MeshConfigError> {
    if !root.is_mapping() {
        let error = ConfigError::new(file, root.position, "", "a mesh config must be a mapping");
        return Err(MeshConfigError::Invalid {
            errors: vec![error],
            warnings: Vec::new(),
        });
    }
    let (config, unknown): (MeshConfig, _) = from_node(root, "").map_err(|error| {
        let (field, position) = error
            .location
            .unwrap_or_else(|| (String::new(), root.position));
        MeshConfigError::Invalid {
            errors: vec![ConfigError::new(file, position, field, error.message)],
            warnings: Vec::new(),
        }
    })?;
    let warnings: Vec<ConfigError> = unknown
        .into_iter()
        .map(|unknown| unknown_fields::warning(file, unknown))
        .collect();
    let positions = PositionMap::of_document(root);
    let errors: Vec<ConfigError> = validate_mesh_config(&config)
        .into_iter()
        .map(|violation| {
            let position = positions.locate(&violation.field);
            ConfigError::new(file, position, violation.field, violation.message)
        })
        .collect();
    if errors.is_empty() {
        Ok(MeshConfigOutcome { config, warnings })
    } else {
        Err(MeshConfigError::Invalid { errors, warnings })
    }
}
