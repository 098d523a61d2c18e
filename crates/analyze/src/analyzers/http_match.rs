//! When one HTTP match makes a later one dead: every request the later
//! match accepts, the earlier one accepts too.

use std::collections::BTreeMap;

use trellis_api::{HttpMatchRequest, StringMatch};

/// True when every request `later` matches is also matched by `earlier`
/// (so `later`, coming after it, is never used). Conservative: regexes are
/// only compared for equality.
pub(crate) fn covers(earlier: &HttpMatchRequest, later: &HttpMatchRequest) -> bool {
    uri_covers(earlier, later)
        && optional_covers(&earlier.scheme, &later.scheme)
        && optional_covers(&earlier.method, &later.method)
        && optional_covers(&earlier.authority, &later.authority)
        && map_covers(&earlier.headers, &later.headers)
        && map_covers(&earlier.query_params, &later.query_params)
        && earlier.without_headers.iter().all(|(name, excluded)| {
            // `later` must exclude at least what `earlier` excludes.
            later
                .without_headers
                .get(name)
                .is_some_and(|own| string_covers(own, excluded, false))
        })
        && earlier.port.is_none_or(|port| later.port == Some(port))
        && earlier
            .source_labels
            .iter()
            .all(|(k, v)| later.source_labels.get(k) == Some(v))
        && earlier
            .source_namespace
            .as_ref()
            .is_none_or(|ns| later.source_namespace.as_ref() == Some(ns))
        && (earlier.gateways.is_empty()
            || (!later.gateways.is_empty()
                && later.gateways.iter().all(|g| earlier.gateways.contains(g))))
}

fn uri_covers(earlier: &HttpMatchRequest, later: &HttpMatchRequest) -> bool {
    match (&earlier.uri, &later.uri) {
        (None, _) => true,
        (Some(_), None) => false,
        // A case-insensitive later match accepts cases the earlier one refuses.
        (Some(_), Some(_)) if later.ignore_uri_case && !earlier.ignore_uri_case => false,
        (Some(a), Some(b)) => string_covers(a, b, earlier.ignore_uri_case),
    }
}

fn optional_covers(earlier: &Option<StringMatch>, later: &Option<StringMatch>) -> bool {
    match (earlier, later) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(a), Some(b)) => string_covers(a, b, false),
    }
}

fn map_covers(
    earlier: &BTreeMap<String, StringMatch>,
    later: &BTreeMap<String, StringMatch>,
) -> bool {
    earlier
        .iter()
        .all(|(name, a)| later.get(name).is_some_and(|b| string_covers(a, b, false)))
}

/// Whether every value `b` accepts, `a` accepts.
fn string_covers(a: &StringMatch, b: &StringMatch, ignore_case: bool) -> bool {
    let fold = |value: &str| {
        if ignore_case {
            value.to_ascii_lowercase()
        } else {
            value.to_string()
        }
    };
    match (a, b) {
        (StringMatch::Present, _) => true,
        (StringMatch::Exact(x), StringMatch::Exact(y)) => fold(x) == fold(y),
        (StringMatch::Prefix(p), StringMatch::Exact(v) | StringMatch::Prefix(v)) => {
            fold(v).starts_with(&fold(p))
        }
        (StringMatch::Regex(x), StringMatch::Regex(y)) => x == y,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uri(value: StringMatch) -> HttpMatchRequest {
        HttpMatchRequest {
            uri: Some(value),
            ..HttpMatchRequest::default()
        }
    }

    #[test]
    fn coverage_of_uris_and_headers() {
        let prefix = |p: &str| uri(StringMatch::Prefix(p.into()));
        let exact = |p: &str| uri(StringMatch::Exact(p.into()));
        assert!(covers(&prefix("/api"), &exact("/api/v1")));
        assert!(covers(&prefix("/api"), &prefix("/api/v1")));
        assert!(!covers(&prefix("/api/v1"), &prefix("/api")));
        assert!(!covers(&exact("/a"), &exact("/b")));
        assert!(covers(&HttpMatchRequest::default(), &exact("/b")));
        let mut with_header = prefix("/api");
        with_header
            .headers
            .insert("end-user".into(), StringMatch::Exact("jason".into()));
        assert!(!covers(&with_header, &prefix("/api")));
        assert!(covers(&prefix("/api"), &with_header));
        let mut insensitive = prefix("/API");
        insensitive.ignore_uri_case = true;
        assert!(covers(&insensitive, &prefix("/api/x")));
        assert!(!covers(&prefix("/api"), &insensitive));
    }
}
