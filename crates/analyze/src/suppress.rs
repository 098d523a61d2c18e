//! `--suppress CODE=RESOURCE` and the `galley.istio.io/analyze-suppress`
//! annotation: messages a user has chosen not to see.

use crate::message::{ALL, Message};

/// The annotation istioctl reads: a comma-separated list of codes, or `*`.
pub const SUPPRESS_ANNOTATION: &str = "galley.istio.io/analyze-suppress";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "{0} is not a valid suppression value: expected CODE=KIND NAMESPACE/NAME or CODE=KIND NAME.NAMESPACE"
)]
pub struct InvalidSuppression(String);

/// One suppression: a code and a resource pattern where `*` matches any run
/// of characters, e.g. `IST0118=Service *` or `IST0101=VirtualService default/reviews`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suppression {
    pub code: String,
    pub resource: String,
}

impl Suppression {
    pub fn parse(value: &str) -> Result<Suppression, InvalidSuppression> {
        match value.split_once('=') {
            Some((code, resource))
                if !code.is_empty() && !resource.is_empty() && !resource.contains('=') =>
            {
                Ok(Suppression {
                    code: code.trim().to_string(),
                    resource: resource.trim().to_string(),
                })
            }
            _ => Err(InvalidSuppression(value.to_string())),
        }
    }

    /// True when Trellis can report this code at all.
    pub fn is_known_code(&self) -> bool {
        ALL.iter()
            .any(|message_type| message_type.code == self.code)
    }

    /// Matches the origin as `Kind namespace/name` (Trellis and newer
    /// istioctl) or `Kind name.namespace` (older istioctl).
    pub fn matches(&self, message: &Message) -> bool {
        if message.code() != self.code {
            return false;
        }
        let origin = &message.origin;
        let dotted = if origin.namespace.is_empty() {
            format!("{} {}", origin.kind, origin.name)
        } else {
            format!("{} {}.{}", origin.kind, origin.name, origin.namespace)
        };
        glob(&self.resource, &origin.to_string()) || glob(&self.resource, &dotted)
    }
}

/// Whether the annotation value suppresses `code`.
pub fn annotation_suppresses(value: &str, code: &str) -> bool {
    value
        .split(',')
        .map(str::trim)
        .any(|entry| entry == "*" || entry == code)
}

/// `*` matches any run of characters; everything else literally.
fn glob(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.ends_with(last)
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use trellis_api::SourceRef;

    use super::*;
    use crate::message::{Origin, REFERENCED_RESOURCE_NOT_FOUND};

    fn message(namespace: &str, name: &str) -> Message {
        Message {
            message_type: &REFERENCED_RESOURCE_NOT_FOUND,
            origin: Origin {
                kind: "VirtualService".into(),
                namespace: namespace.into(),
                name: name.into(),
            },
            reference: SourceRef {
                file: PathBuf::from("x.yaml"),
                line: 1,
                column: 1,
            },
            text: String::new(),
        }
    }

    #[test]
    fn suppressions_match_both_origin_spellings_and_wildcards() {
        let cases = [
            ("IST0101=VirtualService default/reviews", true),
            ("IST0101=VirtualService reviews.default", true),
            ("IST0101=VirtualService *.default", true),
            ("IST0101=VirtualService default/*", true),
            ("IST0101=*", true),
            ("IST0101=VirtualService prod/reviews", false),
            ("IST0102=VirtualService default/reviews", false),
            ("IST0101=DestinationRule default/reviews", false),
        ];
        for (value, suppressed) in cases {
            let suppression = Suppression::parse(value).unwrap();
            assert_eq!(
                suppression.matches(&message("default", "reviews")),
                suppressed,
                "{value}"
            );
        }
    }

    #[test]
    fn malformed_suppressions_are_rejected() {
        for value in ["IST0101", "=Service a", "IST0101=", "IST0101=a=b"] {
            assert_eq!(
                Suppression::parse(value),
                Err(InvalidSuppression(value.to_string()))
            );
        }
        assert!(Suppression::parse("IST0101=x").unwrap().is_known_code());
        assert!(!Suppression::parse("IST9999=x").unwrap().is_known_code());
    }

    #[test]
    fn annotation_lists_codes_or_star() {
        assert!(annotation_suppresses("IST0101, IST0118", "IST0118"));
        assert!(annotation_suppresses("*", "IST0101"));
        assert!(!annotation_suppresses("IST0101", "IST0118"));
    }
}
