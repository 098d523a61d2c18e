//! IST0106: validation errors (what Istio's admission webhook would reject)
//! surfaced as analysis messages, one per problem, naming the field.

use trellis_api::{AnyResource, ConfigError, SourceRef};

use crate::message::{Message, SCHEMA_VALIDATION_ERROR};

/// One message per violation of `resource`, located at the offending field.
pub(crate) fn analyze(
    resource: &AnyResource,
    violations: &[ConfigError],
    messages: &mut Vec<Message>,
) {
    for violation in violations {
        let detail = if violation.field.is_empty() {
            violation.message.clone()
        } else {
            format!("{}: {}", violation.field, violation.message)
        };
        let mut message = Message::about(
            &SCHEMA_VALIDATION_ERROR,
            resource,
            format!("Schema validation error: {detail}"),
        );
        message.reference = SourceRef {
            file: violation.file.clone(),
            line: violation.line,
            column: violation.column,
        };
        messages.push(message);
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use trellis_api::{Document, read_documents};

    use super::*;

    fn analyze_text(yaml: &str) -> Vec<Message> {
        let mut messages = Vec::new();
        for document in read_documents(Path::new("vs.yaml"), yaml) {
            if let Document::Resource {
                resource,
                violations,
                ..
            } = document
            {
                analyze(&resource, &violations, &mut messages);
            }
        }
        messages
    }

    #[test]
    fn violations_become_schema_errors_at_their_field() {
        let cases: [(&str, &[&str]); 3] = [
            ("weight: 100", &[]),
            (
                "weight: -10",
                &[
                    "Error [IST0106] (VirtualService default/reviews) Schema validation error: spec.http[0].route[0].weight: percentage -10 is not in range 0..100",
                ],
            ),
            (
                "weight: 200",
                &[
                    "Error [IST0106] (VirtualService default/reviews) Schema validation error: spec.http[0].route[0].weight: percentage 200 is not in range 0..100",
                ],
            ),
        ];
        for (weight, expected) in cases {
            let yaml = format!(
                "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: reviews}}\nspec:\n  hosts: [reviews]\n  http:\n  - route:\n    - destination: {{host: reviews}}\n      {weight}\n"
            );
            let messages = analyze_text(&yaml);
            let rendered: Vec<String> = messages.iter().map(Message::to_string).collect();
            assert_eq!(rendered, expected, "{weight}");
            if let Some(message) = messages.first() {
                assert_eq!((message.reference.line, message.reference.column), (9, 7));
            }
        }
    }
}
