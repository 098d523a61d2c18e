//! The `istio` ConfigMap holds the mesh config as text under its `mesh`
//! key: that text is validated too, with errors pointing into the file.

use std::path::Path;

use crate::error::{ConfigError, Position};
use crate::mesh_config::{MESH_CONFIG_KEY, MeshConfig, MeshConfigError};
use crate::meta::AnyResource;
use crate::yaml::Node;

/// The ConfigMap istiod reads its mesh config from.
const MESH_CONFIG_MAP: &str = "istio";

/// Errors and warnings of the mesh config in `resource`, when it is the
/// `istio` ConfigMap; located in the file when the text is a literal block
/// (`mesh: |`), at the `mesh` value otherwise.
pub(super) fn check(
    file: &Path,
    text: &str,
    root: &Node,
    resource: &AnyResource,
) -> (Vec<ConfigError>, Vec<ConfigError>) {
    let AnyResource::ConfigMap(config_map) = resource else {
        return (Vec::new(), Vec::new());
    };
    let value = root.get("data").and_then(|data| data.get(MESH_CONFIG_KEY));
    let (Some(mesh), Some(value)) = (config_map.spec.data.get(MESH_CONFIG_KEY), value) else {
        return (Vec::new(), Vec::new());
    };
    if config_map.name() != MESH_CONFIG_MAP {
        return (Vec::new(), Vec::new());
    }
    let (errors, warnings) = match MeshConfig::parse(file, mesh) {
        Ok(outcome) => (Vec::new(), outcome.warnings),
        Err(MeshConfigError::Invalid { errors, warnings }) => (errors, warnings),
        Err(other) => {
            let error = ConfigError::new(file, value.position, "data.mesh", other.to_string());
            (vec![error], Vec::new())
        }
    };
    let place = Placement::of(text, value.position);
    let relocate = |found: Vec<ConfigError>| found.into_iter().map(|e| place.relocate(e)).collect();
    (relocate(errors), relocate(warnings))
}

/// Whether `line` is `mesh: |`, optionally with chomping (`-`, `+`) and
/// indentation (a digit) indicators.
fn is_literal_indicator(line: &str) -> bool {
    let Some(value) = line.trim().strip_prefix(MESH_CONFIG_KEY) else {
        return false;
    };
    let Some(indicator) = value.trim_start().strip_prefix(':').map(str::trim) else {
        return false;
    };
    indicator
        .strip_prefix('|')
        .is_some_and(|rest| rest.chars().all(|c| matches!(c, '-' | '+' | '1'..='9')))
}

/// How a position in the embedded text maps to one in the file.
enum Placement {
    /// A literal block: embedded line 1 is the line after the indicator,
    /// every line indented by the same amount.
    Block {
        indicator_line: usize,
        indent: usize,
    },
    /// Anything else: point at the value itself.
    At(Position),
}

impl Placement {
    /// The parser places a block scalar at its first content character;
    /// its indicator (`|`, `|-`, `|+`) ends the closest non-blank line above.
    fn of(text: &str, value: Position) -> Placement {
        let above: Vec<&str> = text.lines().take(value.line - 1).collect();
        let indicator = above
            .iter()
            .enumerate()
            .rev()
            .find(|(_, line)| !line.trim().is_empty());
        match indicator {
            Some((index, line)) if is_literal_indicator(line) => Placement::Block {
                indicator_line: index + 1,
                indent: value.column - 1,
            },
            _ => Placement::At(value),
        }
    }

    fn relocate(&self, error: ConfigError) -> ConfigError {
        let field = if error.field.is_empty() {
            "data.mesh".to_string()
        } else {
            format!("data.mesh: {}", error.field)
        };
        let position = match *self {
            Placement::Block {
                indicator_line,
                indent,
            } => Position {
                line: indicator_line + error.line,
                column: indent + error.column,
            },
            Placement::At(position) => position,
        };
        ConfigError::new(error.file, position, field, error.message)
    }
}
