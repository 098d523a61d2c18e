//! `request.auth.*` (the verified JWT) as RBAC principals: metadata
//! matchers on the payload the JWT filter stores, as Istio generates them.
//! A claim may be a string or a list of strings; a value matches either a
//! string claim equal to it or a list claim holding it.

use envoy_types::pb::envoy::config::rbac::v3::{Principal, principal};
use envoy_types::pb::envoy::r#type::matcher::v3::{
    ListMatcher, MetadataMatcher, OrMatcher, StringMatcher, ValueMatcher, list_matcher,
    metadata_matcher::{PathSegment, path_segment::Segment},
    value_matcher::MatchPattern,
};

use crate::security::jwt::{JWT_FILTER, PAYLOAD_METADATA_KEY};
use crate::security::values::string_matcher;

/// A `requestPrincipals` value (`ISS/SUB`, Istio's wildcards): the issuer
/// and subject claims, split at the last `/` since issuers are often URLs.
pub fn request_principal(value: &str) -> Principal {
    let (issuer, subject) = principal_parts(value);
    let mut ids = vec![claim(&["iss"], issuer)];
    if let Some(subject) = subject {
        ids.push(claim(&["sub"], subject));
    }
    match ids.len() {
        1 => ids.remove(0),
        _ => Principal {
            identifier: Some(principal::Identifier::AndIds(principal::Set { ids })),
        },
    }
}

/// The matchers on `iss` and (unless any subject does) `sub` for a
/// principal pattern. A wildcard part stays on the side it touches.
fn principal_parts(value: &str) -> (StringMatcher, Option<StringMatcher>) {
    let any = || string_matcher("*");
    if value == "*" {
        return (any(), None);
    }
    if let Some(suffix) = value.strip_prefix('*') {
        return match split_principal(suffix) {
            Some((issuer_end, subject)) => (
                string_matcher(&format!("*{issuer_end}")),
                Some(string_matcher(subject)),
            ),
            None => (any(), Some(string_matcher(value))),
        };
    }
    if let Some(prefix) = value.strip_suffix('*') {
        return match split_principal(prefix) {
            Some((issuer, subject_start)) => (
                string_matcher(issuer),
                Some(string_matcher(&format!("{subject_start}*"))),
            ),
            None => (string_matcher(value), None),
        };
    }
    match split_principal(value) {
        Some((issuer, subject)) => (string_matcher(issuer), Some(string_matcher(subject))),
        // Not ISS/SUB: a principal never equals it.
        None => (string_matcher(value), Some(string_matcher(""))),
    }
}

/// `ISS/SUB` split at the last `/` that is not part of a URL's `://`.
fn split_principal(value: &str) -> Option<(&str, &str)> {
    value
        .match_indices('/')
        .map(|(index, _)| index)
        .rev()
        .find(|&index| {
            let in_scheme = value[..index].ends_with(":/")
                || (value[..index].ends_with(':') && value[index + 1..].starts_with('/'));
            !in_scheme
        })
        .map(|index| (&value[..index], &value[index + 1..]))
}

/// The claim at `path` (nested objects) matches `value`.
pub fn claim(path: &[&str], value: StringMatcher) -> Principal {
    let segment = |key: &str| PathSegment {
        segment: Some(Segment::Key(key.to_string())),
    };
    let as_string = ValueMatcher {
        match_pattern: Some(MatchPattern::StringMatch(value)),
    };
    let in_list = ValueMatcher {
        match_pattern: Some(MatchPattern::ListMatch(Box::new(ListMatcher {
            match_pattern: Some(list_matcher::MatchPattern::OneOf(Box::new(
                as_string.clone(),
            ))),
        }))),
    };
    let matcher = MetadataMatcher {
        filter: JWT_FILTER.into(),
        path: std::iter::once(PAYLOAD_METADATA_KEY)
            .chain(path.iter().copied())
            .map(segment)
            .collect(),
        value: Some(ValueMatcher {
            match_pattern: Some(MatchPattern::OrMatch(OrMatcher {
                value_matchers: vec![in_list, as_string],
            })),
        }),
        invert: false,
    };
    // Istio still generates `metadata`; `sourced_metadata` only adds a
    // choice of source this mesh does not need.
    #[allow(deprecated)]
    Principal {
        identifier: Some(principal::Identifier::Metadata(matcher)),
    }
}

#[cfg(test)]
mod tests {
    use envoy_types::pb::envoy::r#type::matcher::v3::string_matcher::MatchPattern as Text;

    use super::*;

    fn text(matcher: &StringMatcher) -> String {
        match matcher.match_pattern.as_ref().unwrap() {
            Text::Exact(v) => format!("={v}"),
            Text::Prefix(v) => format!("{v}*"),
            Text::Suffix(v) => format!("*{v}"),
            Text::SafeRegex(r) => format!("~{}", r.regex),
            other => panic!("{other:?}"),
        }
    }

    fn parts(value: &str) -> (String, Option<String>) {
        let (issuer, subject) = principal_parts(value);
        (text(&issuer), subject.as_ref().map(text))
    }

    #[test]
    fn principals_split_at_the_last_slash() {
        let case = |iss: &str, sub: Option<&str>| (iss.to_string(), sub.map(str::to_string));
        assert_eq!(
            parts("https://accounts.example.com/user-1"),
            case("=https://accounts.example.com", Some("=user-1"))
        );
        assert_eq!(parts("*"), case("~.+", None));
        assert_eq!(parts("issuer/*"), case("=issuer", Some("~.+")));
        assert_eq!(parts("*/admin"), case("~.+", Some("=admin")));
        assert_eq!(parts("*@example.com"), case("~.+", Some("*@example.com")));
        assert_eq!(
            parts("https://iss/team-*"),
            case("=https://iss", Some("team-*"))
        );
        assert_eq!(parts("https://iss*"), case("https://iss*", None));
        assert_eq!(parts("no-slash"), case("=no-slash", Some("=")));
        assert_eq!(parts("https://iss"), case("=https://iss", Some("=")));
    }

    #[test]
    #[allow(deprecated)] // the Metadata principal, as Istio generates it
    fn claims_match_strings_and_lists_under_the_payload() {
        let Some(principal::Identifier::Metadata(matcher)) =
            claim(&["realm", "roles"], string_matcher("admin")).identifier
        else {
            panic!("not a metadata matcher");
        };
        assert_eq!(matcher.filter, JWT_FILTER);
        let keys: Vec<_> = matcher
            .path
            .iter()
            .map(|s| match &s.segment {
                Some(Segment::Key(key)) => key.as_str(),
                None => "",
            })
            .collect();
        assert_eq!(keys, [PAYLOAD_METADATA_KEY, "realm", "roles"]);
        let Some(MatchPattern::OrMatch(or)) = matcher.value.unwrap().match_pattern else {
            panic!("not an or");
        };
        assert!(matches!(
            or.value_matchers[0].match_pattern,
            Some(MatchPattern::ListMatch(_))
        ));
        assert!(matches!(
            or.value_matchers[1].match_pattern,
            Some(MatchPattern::StringMatch(_))
        ));
    }
}
