//! RFC 6902 JSON Patch between two JSON values, as the webhook answers.

use serde::Serialize;
use serde_json::Value;

/// One JSON Patch operation.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum PatchOperation {
    Add { path: String, value: Value },
    Replace { path: String, value: Value },
    Remove { path: String },
}

/// The operations that turn `before` into `after`. Objects are compared
/// member by member; a changed list is replaced whole, which keeps the
/// patch correct whatever moved inside it (the injector prepends to
/// container lists).
pub fn diff(before: &Value, after: &Value) -> Vec<PatchOperation> {
    let mut operations = Vec::new();
    diff_at(String::new(), before, after, &mut operations);
    operations
}

fn diff_at(path: String, before: &Value, after: &Value, operations: &mut Vec<PatchOperation>) {
    match (before, after) {
        _ if before == after => {}
        (Value::Object(before), Value::Object(after)) => {
            for key in before.keys().filter(|key| !after.contains_key(*key)) {
                operations.push(PatchOperation::Remove {
                    path: child(&path, key),
                });
            }
            for (key, value) in after {
                match before.get(key) {
                    Some(old) => diff_at(child(&path, key), old, value, operations),
                    None => operations.push(PatchOperation::Add {
                        path: child(&path, key),
                        value: value.clone(),
                    }),
                }
            }
        }
        _ => operations.push(PatchOperation::Replace {
            path,
            value: after.clone(),
        }),
    }
}

/// A JSON Pointer to member `key` of `parent` (RFC 6901 escaping: label
/// and annotation keys contain `/`).
fn child(parent: &str, key: &str) -> String {
    format!("{parent}/{}", key.replace('~', "~0").replace('/', "~1"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn members_are_added_replaced_and_removed_with_escaped_paths() {
        let before = json!({"metadata": {"labels": {"app": "web", "old": "x"}}, "spec": {"containers": [1]}});
        let after = json!({
            "metadata": {"labels": {"app": "web", "security.istio.io/tlsMode": "istio"}, "annotations": {"a~b": "1"}},
            "spec": {"containers": [0, 1]},
        });
        assert_eq!(
            serde_json::to_value(diff(&before, &after)).unwrap(),
            json!([
                {"op": "add", "path": "/metadata/annotations", "value": {"a~b": "1"}},
                {"op": "remove", "path": "/metadata/labels/old"},
                {"op": "add", "path": "/metadata/labels/security.istio.io~1tlsMode", "value": "istio"},
                {"op": "replace", "path": "/spec/containers", "value": [0, 1]},
            ])
        );
    }

    #[test]
    fn equal_values_need_no_patch() {
        let pod = json!({"spec": {"containers": [{"name": "app"}]}});
        assert!(diff(&pod, &pod).is_empty());
    }
}
