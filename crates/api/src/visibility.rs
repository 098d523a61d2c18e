//! `exportTo`, shared by VirtualService, DestinationRule, ServiceEntry and
//! the `networking.istio.io/exportTo` annotation on Services.

/// The Service annotation that plays `exportTo` (comma-separated).
pub const EXPORT_TO_ANNOTATION: &str = "networking.istio.io/exportTo";

/// Whether a resource in `own_namespace` with this `exportTo` is visible
/// from `namespace`: empty or `*` everywhere, `.` its own namespace, `~`
/// nowhere, else the namespaces named.
pub fn exported_to<S: AsRef<str>>(export_to: &[S], own_namespace: &str, namespace: &str) -> bool {
    export_to.is_empty()
        || export_to.iter().any(|to| match to.as_ref().trim() {
            "*" => true,
            "." => own_namespace == namespace,
            "~" => false,
            other => other == namespace,
        })
}

/// A Service's `networking.istio.io/exportTo` annotation, split.
pub fn annotation_export_to(annotations: &std::collections::BTreeMap<String, String>) -> Vec<&str> {
    annotations
        .get(EXPORT_TO_ANNOTATION)
        .map(|value| {
            value
                .split(',')
                .map(str::trim)
                .filter(|to| !to.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn export_to_follows_istio_words() {
        let none: [&str; 0] = [];
        assert!(exported_to(&none, "a", "b"));
        assert!(exported_to(&["*"], "a", "b"));
        assert!(exported_to(&["."], "a", "a"));
        assert!(!exported_to(&["."], "a", "b"));
        assert!(!exported_to(&["~"], "a", "a"));
        assert!(exported_to(&[".", "b"], "a", "b"));
        assert!(!exported_to(&["c"], "a", "b"));
    }

    #[test]
    fn the_annotation_is_a_comma_separated_list() {
        let annotations = [(EXPORT_TO_ANNOTATION.to_string(), " ., team-b ,".to_string())].into();
        assert_eq!(annotation_export_to(&annotations), vec![".", "team-b"]);
        assert!(annotation_export_to(&Default::default()).is_empty());
    }
}
