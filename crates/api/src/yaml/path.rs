//! Field paths (`spec.http[0].route[1].weight`) and the map from each path
//! of a document to where it is written, so that errors found after parsing
//! (validation) can still point at a line and column.

use std::collections::HashMap;

use super::tree::{Node, Value};
use crate::error::Position;

/// The path of `key` under `parent`. Keys that are not plain identifiers
/// (label keys such as `app.kubernetes.io/name`) are bracketed and quoted.
pub(crate) fn child_key(parent: &str, key: &str) -> String {
    let identifier = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    match (identifier, parent.is_empty()) {
        (true, true) => key.to_string(),
        (true, false) => format!("{parent}.{key}"),
        (false, _) => format!("{parent}[{key:?}]"),
    }
}

/// The path of the item at `index` of the sequence at `parent`.
pub(crate) fn child_index(parent: &str, index: usize) -> String {
    format!("{parent}[{index}]")
}

/// The path one level up, or `None` at the root.
fn parent_of(path: &str) -> Option<&str> {
    if path.is_empty() {
        return None;
    }
    let cut = if path.ends_with("\"]") {
        path.rfind("[\"")
    } else if path.ends_with(']') {
        path.rfind('[')
    } else {
        path.rfind(['.', '['])
    };
    Some(cut.map_or("", |cut| &path[..cut]))
}

/// Where every field and item of one document is written: the key of a
/// mapping entry, the first character of a sequence item.
#[derive(Debug, Clone, Default)]
pub(crate) struct PositionMap {
    positions: HashMap<String, Position>,
}

impl PositionMap {
    pub(crate) fn of_document(root: &Node) -> PositionMap {
        let mut map = PositionMap::default();
        map.positions.insert(String::new(), root.position);
        map.record_children(root, "");
        map
    }

    fn record_children(&mut self, node: &Node, path: &str) {
        match &node.value {
            Value::Scalar(_) => {}
            Value::Sequence(items) => {
                for (index, item) in items.iter().enumerate() {
                    let child = child_index(path, index);
                    self.positions.insert(child.clone(), item.position);
                    self.record_children(item, &child);
                }
            }
            Value::Mapping(entries) => {
                for (key, value) in entries {
                    let Some(key_text) = key.as_scalar() else {
                        continue;
                    };
                    let child = child_key(path, key_text);
                    self.positions.entry(child.clone()).or_insert(key.position);
                    self.record_children(value, &child);
                }
            }
        }
    }

    /// The position of `field`, or of its nearest written ancestor when the
    /// field itself is absent (a required field that is missing).
    pub(crate) fn locate(&self, field: &str) -> Position {
        let mut path = field;
        loop {
            if let Some(position) = self.positions.get(path) {
                return *position;
            }
            match parent_of(path) {
                Some(parent) => path = parent,
                None => return Position::START,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::yaml::tree::parse_documents;

    #[test]
    fn paths_render_like_istio_field_names() {
        let http = child_index(&child_key("spec", "http"), 0);
        assert_eq!(child_key(&http, "timeout"), "spec.http[0].timeout");
        assert_eq!(
            child_key("metadata.labels", "app.kubernetes.io/name"),
            "metadata.labels[\"app.kubernetes.io/name\"]"
        );
    }

    #[test]
    fn parents_step_up_one_segment() {
        assert_eq!(parent_of("spec.http[0].route"), Some("spec.http[0]"));
        assert_eq!(parent_of("spec.http[0]"), Some("spec.http"));
        assert_eq!(parent_of("a[\"x.y\"]"), Some("a"));
        assert_eq!(parent_of("spec"), Some(""));
        assert_eq!(parent_of(""), None);
    }

    #[test]
    fn missing_fields_locate_at_their_parent() {
        let text = "spec:\n  http:\n  - route:\n    - destination: {}\n";
        let root = parse_documents(text).remove(0).unwrap();
        let map = PositionMap::of_document(&root);
        assert_eq!(map.locate("spec.http[0]").line, 3);
        assert_eq!(map.locate("spec.http[0].route[0].destination.host").line, 4);
        assert_eq!(map.locate("nothing.here").line, 1);
    }
}
