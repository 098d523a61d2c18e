//! Istio's `StringMatch`: a oneof written as `{exact: x}`, `{prefix: x}` or
//! `{regex: x}`.

use serde::Deserialize;

/// How a string (URI, header, query parameter...) is matched.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
#[serde(try_from = "StringMatchFields")]
pub enum StringMatch {
    Exact(String),
    Prefix(String),
    /// An RE2-style regular expression matched against the whole value.
    Regex(String),
    /// Written `{}`: for a header, "the header is present, any value" (as
    /// Istio documents); elsewhere it matches anything.
    Present,
}

impl StringMatch {
    /// The regular expression, when this is a regex match.
    pub fn regex(&self) -> Option<&str> {
        match self {
            StringMatch::Regex(pattern) => Some(pattern),
            _ => None,
        }
    }
}

/// The oneof as written, before checking that at most one field is set.
#[derive(Deserialize)]
struct StringMatchFields {
    exact: Option<String>,
    prefix: Option<String>,
    regex: Option<String>,
}

impl TryFrom<StringMatchFields> for StringMatch {
    type Error = &'static str;

    fn try_from(fields: StringMatchFields) -> Result<StringMatch, &'static str> {
        match (fields.exact, fields.prefix, fields.regex) {
            (None, None, None) => Ok(StringMatch::Present),
            (Some(exact), None, None) => Ok(StringMatch::Exact(exact)),
            (None, Some(prefix), None) => Ok(StringMatch::Prefix(prefix)),
            (None, None, Some(regex)) => Ok(StringMatch::Regex(regex)),
            _ => Err("only one of exact, prefix or regex may be set"),
        }
    }
}
