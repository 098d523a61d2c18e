//! Which skipped fields deserve a warning: for strict schemas, every field
//! the type lacks, except the object fields Kubernetes itself manages.

use std::path::Path;

use super::kinds::Schema;
use crate::error::ConfigError;
use crate::yaml::UnknownField;

/// Top-level fields every object may carry besides `metadata` and `spec`.
const OBJECT_FIELDS: [&str; 3] = ["apiVersion", "kind", "status"];

/// `ObjectMeta` fields Kubernetes sets or reads that the mesh does not keep.
const METADATA_FIELDS: [&str; 12] = [
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "generateName",
    "ownerReferences",
    "finalizers",
    "managedFields",
    "selfLink",
    "clusterName",
];

/// A warning for each unknown field worth one, naming its path as
/// `kubectl`'s strict decoding does.
pub(super) fn warnings(
    file: &Path,
    schema: Schema,
    unknown: Vec<UnknownField>,
) -> Vec<ConfigError> {
    if schema == Schema::Lenient {
        return Vec::new();
    }
    unknown
        .into_iter()
        .filter(|unknown| !is_object_field(&unknown.field))
        .map(|unknown| warning(file, unknown))
        .collect()
}

/// The warning for one unknown field: its path, and its name in the message.
pub(crate) fn warning(file: &Path, unknown: UnknownField) -> ConfigError {
    let message = format!("unknown field \"{}\"", last_segment(&unknown.field));
    ConfigError::new(file, unknown.position, unknown.field, message)
}

fn is_object_field(field: &str) -> bool {
    if OBJECT_FIELDS.contains(&field) {
        return true;
    }
    field
        .strip_prefix("metadata.")
        .is_some_and(|rest| METADATA_FIELDS.contains(&rest))
}

/// The key the path ends with: `rout` for `spec.http[0].rout`, the quoted
/// key for `spec.selector["a.b"]`.
fn last_segment(field: &str) -> &str {
    let Some(open) = field.rfind("[\"").filter(|_| field.ends_with("\"]")) else {
        return field.rsplit('.').next().unwrap_or(field);
    };
    &field[open + 2..field.len() - 2]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_last_key_of_a_path() {
        assert_eq!(last_segment("spec.http[0].rout"), "rout");
        assert_eq!(last_segment("spec"), "spec");
        assert_eq!(last_segment("spec.x[\"a.b\"]"), "a.b");
    }

    #[test]
    fn object_fields_kubernetes_manages_are_not_unknown() {
        assert!(is_object_field("status"));
        assert!(is_object_field("metadata.uid"));
        assert!(!is_object_field("metadata.namspace"));
        assert!(!is_object_field("spec.rout"));
    }
}
