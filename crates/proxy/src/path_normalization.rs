//! Envoy's request path transformations, which Istio's `pathNormalization`
//! mesh setting configures on inbound and gateway connection managers:
//! `path_with_escaped_slashes_action` (what `%2F`, `%5C` become), then
//! `normalize_path` (RFC 3986: unreserved characters decoded, `\` read as
//! `/`, dot segments removed), then `merge_slashes`. The rewritten path is
//! what authorization and routing see and what the upstream receives, so a
//! policy cannot be bypassed by spelling a path another way.

use std::borrow::Cow;

use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, http_connection_manager::PathWithEscapedSlashesAction,
};
use http::Uri;
use http::uri::PathAndQuery;

use crate::unsupported::{Unsupported, reject_if};

/// One connection manager's path transformations.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PathNormalization {
    /// `normalize_path` (Istio's BASE and above).
    pub rfc3986: bool,
    pub merge_slashes: bool,
    pub escaped_slashes: EscapedSlashes,
}

/// `path_with_escaped_slashes_action`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum EscapedSlashes {
    /// Left as they are (Envoy's default).
    #[default]
    Keep,
    /// A 400.
    Reject,
    /// Decoded, and the client redirected to the transformed path.
    UnescapeAndRedirect,
    /// Decoded, and the request goes on (Istio's DECODE_AND_MERGE_SLASHES).
    UnescapeAndForward,
}

/// What becomes of a request's path.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Unchanged,
    Rewritten(PathAndQuery),
    /// Answer with a redirect to this path (and the request's query).
    Redirect(String),
    /// Answer 400: the path cannot be made safe to match on.
    Refused,
}

impl PathNormalization {
    pub fn compile(hcm: &HttpConnectionManager) -> Result<PathNormalization, Unsupported> {
        reject_if(
            hcm.path_normalization_options.is_some(),
            "http_connection_manager.path_normalization_options",
        )?;
        let escaped_slashes =
            match PathWithEscapedSlashesAction::try_from(hcm.path_with_escaped_slashes_action) {
                Ok(
                    PathWithEscapedSlashesAction::ImplementationSpecificDefault
                    | PathWithEscapedSlashesAction::KeepUnchanged,
                ) => EscapedSlashes::Keep,
                Ok(PathWithEscapedSlashesAction::RejectRequest) => EscapedSlashes::Reject,
                Ok(PathWithEscapedSlashesAction::UnescapeAndRedirect) => {
                    EscapedSlashes::UnescapeAndRedirect
                }
                Ok(PathWithEscapedSlashesAction::UnescapeAndForward) => {
                    EscapedSlashes::UnescapeAndForward
                }
                Err(_) => return Err(Unsupported("unknown path_with_escaped_slashes_action")),
            };
        Ok(PathNormalization {
            rfc3986: hcm.normalize_path.is_some_and(|b| b.value),
            merge_slashes: hcm.merge_slashes,
            escaped_slashes,
        })
    }

    /// Transforms `uri`'s path, keeping its query as it is.
    pub fn apply(&self, uri: &Uri) -> Outcome {
        let path = uri.path();
        let query = uri.query();
        match self.transform(path) {
            Transformed::Same => Outcome::Unchanged,
            Transformed::Refused => Outcome::Refused,
            Transformed::Redirect(path) => Outcome::Redirect(with_query(&path, query)),
            Transformed::New(path) => match PathAndQuery::try_from(with_query(&path, query)) {
                Ok(rewritten) => Outcome::Rewritten(rewritten),
                Err(_) => Outcome::Refused,
            },
        }
    }

    fn transform(&self, path: &str) -> Transformed {
        // Envoy refuses an encoded NUL whatever the options; no backend
        // should see one, and Istio documents the 400.
        if contains_escape(path, |byte| byte == 0) {
            return Transformed::Refused;
        }
        if !path.starts_with('/') {
            return Transformed::Same; // `*` (OPTIONS) and the like
        }
        let escaped_slash = contains_escape(path, |byte| byte == b'/' || byte == b'\\');
        let mut current = Cow::Borrowed(path);
        if escaped_slash {
            match self.escaped_slashes {
                EscapedSlashes::Keep => {}
                EscapedSlashes::Reject => return Transformed::Refused,
                EscapedSlashes::UnescapeAndRedirect | EscapedSlashes::UnescapeAndForward => {
                    current = Cow::Owned(decode(&current, |byte| byte == b'/' || byte == b'\\'));
                }
            }
        }
        if self.rfc3986 && needs_rfc3986(&current) {
            let decoded = decode(&current, is_unreserved).replace('\\', "/");
            current = Cow::Owned(remove_dot_segments(&decoded));
        }
        if self.merge_slashes && current.contains("//") {
            current = Cow::Owned(merge_slashes(&current));
        }
        if escaped_slash && self.escaped_slashes == EscapedSlashes::UnescapeAndRedirect {
            return Transformed::Redirect(current.into_owned());
        }
        match current {
            Cow::Owned(new) if new != path => Transformed::New(new),
            _ => Transformed::Same,
        }
    }
}

enum Transformed {
    Same,
    New(String),
    Redirect(String),
    Refused,
}

fn with_query(path: &str, query: Option<&str>) -> String {
    match query {
        Some(query) => format!("{path}?{query}"),
        None => path.to_owned(),
    }
}

/// Whether RFC 3986 normalization could change `path` (most paths it
/// cannot, and they are not copied).
fn needs_rfc3986(path: &str) -> bool {
    path.contains(['%', '\\']) || path[1..].split('/').any(|s| s == "." || s == "..")
}

/// RFC 3986's unreserved characters, which mean the same escaped or not.
fn is_unreserved(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~')
}

fn hex_value(byte: u8) -> Option<u8> {
    (byte as char).to_digit(16).map(|digit| digit as u8)
}

/// The byte `%HH` at the start of `bytes` stands for, if it is one.
fn escape_at(bytes: &[u8]) -> Option<u8> {
    match bytes {
        [b'%', high, low, ..] => Some(hex_value(*high)? << 4 | hex_value(*low)?),
        _ => None,
    }
}

fn contains_escape(path: &str, wanted: impl Fn(u8) -> bool) -> bool {
    let bytes = path.as_bytes();
    (0..bytes.len()).any(|at| escape_at(&bytes[at..]).is_some_and(&wanted))
}

/// Decodes, once, the escapes of the bytes `wanted` selects.
fn decode(path: &str, wanted: impl Fn(u8) -> bool) -> String {
    let bytes = path.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while at < bytes.len() {
        match escape_at(&bytes[at..]) {
            Some(byte) if wanted(byte) => {
                decoded.push(byte);
                at += 3;
            }
            _ => {
                decoded.push(bytes[at]);
                at += 1;
            }
        }
    }
    // Only ASCII escapes are decoded, so the text stays UTF-8.
    String::from_utf8(decoded).unwrap_or_else(|_| path.to_owned())
}

/// RFC 3986 section 5.2.4 on an absolute path: `.` segments dropped, `..`
/// removing the segment before it (never above the root).
fn remove_dot_segments(path: &str) -> String {
    let segments: Vec<&str> = path[1..].split('/').collect();
    let mut kept: Vec<&str> = Vec::with_capacity(segments.len());
    let last = segments.len() - 1;
    let mut ends_in_directory = false;
    for (index, segment) in segments.iter().enumerate() {
        match *segment {
            "." => ends_in_directory = index == last,
            ".." => {
                kept.pop();
                ends_in_directory = index == last;
            }
            segment => kept.push(segment),
        }
    }
    let mut normalized = String::with_capacity(path.len());
    for segment in &kept {
        normalized.push('/');
        normalized.push_str(segment);
    }
    if ends_in_directory || normalized.is_empty() {
        normalized.push('/');
    }
    normalized
}

fn merge_slashes(path: &str) -> String {
    let mut merged = String::with_capacity(path.len());
    for character in path.chars() {
        if character == '/' && merged.ends_with('/') {
            continue;
        }
        merged.push(character);
    }
    merged
}

#[cfg(test)]
mod tests;
