//! RBAC's `metadata` principal over the one dynamic metadata this proxy
//! produces: the JWT filter's verified payload (`request.auth.*` in
//! Istio's policies). Envoy's value matchers, on the payload's JSON as
//! Envoy's protobuf `Value` sees it (numbers are doubles).

use envoy_types::pb::envoy::r#type::matcher::v3::{
    MetadataMatcher, ValueMatcher, list_matcher, metadata_matcher::path_segment::Segment,
    value_matcher::MatchPattern,
};
use serde_json::Value;

use super::matcher::Text;
use crate::jwt::VerifiedJwt;
use crate::unsupported::Unsupported;

const JWT_FILTER: &str = "envoy.filters.http.jwt_authn";

#[derive(Debug)]
pub struct JwtMetadata {
    /// The first key: where the JWT filter put the payload.
    metadata_key: String,
    /// Keys into the payload.
    path: Vec<String>,
    value: ValueMatch,
    invert: bool,
}

#[derive(Debug)]
enum ValueMatch {
    Null,
    Text(Text),
    Bool(bool),
    Present(bool),
    /// A list holding a value that matches.
    OneOf(Box<ValueMatch>),
    Or(Vec<ValueMatch>),
}

impl JwtMetadata {
    pub fn compile(matcher: &MetadataMatcher) -> Result<JwtMetadata, Unsupported> {
        if matcher.filter != JWT_FILTER {
            return Err(Unsupported(
                "rbac metadata of a filter other than jwt_authn",
            ));
        }
        let mut keys = matcher.path.iter().map(|segment| match &segment.segment {
            Some(Segment::Key(key)) => Ok(key.clone()),
            None => Err(Unsupported("rbac metadata path segment without a key")),
        });
        let metadata_key = keys
            .next()
            .ok_or(Unsupported("rbac metadata matcher without a path"))??;
        Ok(JwtMetadata {
            metadata_key,
            path: keys.collect::<Result<_, _>>()?,
            value: ValueMatch::compile(
                matcher
                    .value
                    .as_ref()
                    .ok_or(Unsupported("rbac metadata matcher without a value"))?,
            )?,
            invert: matcher.invert,
        })
    }

    pub fn matches(&self, jwt: Option<&VerifiedJwt>) -> bool {
        let value = jwt
            .filter(|jwt| jwt.metadata_key == self.metadata_key)
            .and_then(|jwt| {
                self.path
                    .iter()
                    .try_fold(&jwt.payload, |value, key| value.get(key))
            });
        // As Envoy: a missing value matches nothing, whatever `invert` says.
        value.is_some_and(|value| self.value.matches(value) != self.invert)
    }
}

impl ValueMatch {
    fn compile(matcher: &ValueMatcher) -> Result<ValueMatch, Unsupported> {
        Ok(match &matcher.match_pattern {
            Some(MatchPattern::NullMatch(_)) => ValueMatch::Null,
            Some(MatchPattern::StringMatch(text)) => ValueMatch::Text(Text::compile(text)?),
            Some(MatchPattern::BoolMatch(flag)) => ValueMatch::Bool(*flag),
            Some(MatchPattern::PresentMatch(present)) => ValueMatch::Present(*present),
            Some(MatchPattern::ListMatch(list)) => match &list.match_pattern {
                Some(list_matcher::MatchPattern::OneOf(inner)) => {
                    ValueMatch::OneOf(Box::new(ValueMatch::compile(inner)?))
                }
                None => return Err(Unsupported("rbac list matcher without one_of")),
            },
            Some(MatchPattern::OrMatch(or)) => ValueMatch::Or(
                or.value_matchers
                    .iter()
                    .map(ValueMatch::compile)
                    .collect::<Result<_, _>>()?,
            ),
            _ => return Err(Unsupported("rbac value matcher kind")),
        })
    }

    fn matches(&self, value: &Value) -> bool {
        match (self, value) {
            (ValueMatch::Null, Value::Null) => true,
            (ValueMatch::Text(text), Value::String(string)) => text.matches(string),
            (ValueMatch::Bool(wanted), Value::Bool(flag)) => wanted == flag,
            (ValueMatch::Present(present), _) => *present,
            (ValueMatch::OneOf(inner), Value::Array(items)) => {
                items.iter().any(|item| inner.matches(item))
            }
            (ValueMatch::Or(alternatives), value) => alternatives.iter().any(|m| m.matches(value)),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use envoy_types::pb::envoy::r#type::matcher::v3::{
        ListMatcher, OrMatcher, StringMatcher, metadata_matcher::PathSegment,
        string_matcher::MatchPattern as Pattern,
    };
    use serde_json::json;

    use super::*;

    /// Istio's claim matcher: the claim is the string, or a list holding it.
    fn claim(path: &[&str], exact: &str) -> JwtMetadata {
        let text = ValueMatcher {
            match_pattern: Some(MatchPattern::StringMatch(StringMatcher {
                match_pattern: Some(Pattern::Exact(exact.into())),
                ignore_case: false,
            })),
        };
        let list = ValueMatcher {
            match_pattern: Some(MatchPattern::ListMatch(Box::new(ListMatcher {
                match_pattern: Some(list_matcher::MatchPattern::OneOf(Box::new(text.clone()))),
            }))),
        };
        JwtMetadata::compile(&MetadataMatcher {
            filter: JWT_FILTER.into(),
            path: std::iter::once("payload")
                .chain(path.iter().copied())
                .map(|key| PathSegment {
                    segment: Some(Segment::Key(key.into())),
                })
                .collect(),
            value: Some(ValueMatcher {
                match_pattern: Some(MatchPattern::OrMatch(OrMatcher {
                    value_matchers: vec![list, text],
                })),
            }),
            invert: false,
        })
        .unwrap()
    }

    fn jwt(payload: Value) -> VerifiedJwt {
        VerifiedJwt {
            principal: "iss/sub".into(),
            metadata_key: "payload".into(),
            payload,
        }
    }

    #[test]
    fn claims_match_strings_lists_and_nested_objects() {
        let token = jwt(
            json!({"groups": ["group1", "group2"], "sub": "alice", "n": 3, "realm": {"role": "admin"}}),
        );
        assert!(claim(&["groups"], "group1").matches(Some(&token)));
        assert!(!claim(&["groups"], "group3").matches(Some(&token)));
        assert!(claim(&["sub"], "alice").matches(Some(&token)));
        assert!(claim(&["realm", "role"], "admin").matches(Some(&token)));
        assert!(
            !claim(&["n"], "3").matches(Some(&token)),
            "numbers are not strings"
        );
        assert!(!claim(&["missing"], "x").matches(Some(&token)));
        assert!(
            !claim(&["sub"], "alice").matches(None),
            "no token, no claims"
        );
    }

    #[test]
    fn other_filters_metadata_is_refused() {
        let matcher = MetadataMatcher {
            filter: "istio_authn".into(),
            ..Default::default()
        };
        assert!(JwtMetadata::compile(&matcher).is_err());
    }
}
