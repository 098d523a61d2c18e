//! Istio's value rules for AuthorizationPolicy fields, as Envoy matchers:
//! `*` alone means "present", a leading `*` a suffix match, a trailing `*`
//! a prefix match, anything else an exact match.

use envoy_types::pb::envoy::r#type::matcher::v3::{
    RegexMatcher, StringMatcher, string_matcher::MatchPattern,
};

/// What Envoy adds in front of a workload identity (`spiffe://`); Istio's
/// API writes principals without it.
pub const SPIFFE_PREFIX: &str = "spiffe://";

pub fn string_matcher(value: &str) -> StringMatcher {
    with_prefix("", value, false)
}

/// Case-insensitive, for `:authority`.
pub fn ignore_case_matcher(value: &str) -> StringMatcher {
    with_prefix("", value, true)
}

/// `value` with `prefix` prepended to what is compared: principals get
/// `spiffe://`. A leading `*` leaves the prefix out (it matches anything).
pub fn with_prefix(prefix: &str, value: &str, ignore_case: bool) -> StringMatcher {
    let pattern = if value == "*" {
        MatchPattern::SafeRegex(regex(".+"))
    } else if let Some(suffix) = value.strip_prefix('*') {
        MatchPattern::Suffix(suffix.to_string())
    } else if let Some(start) = value.strip_suffix('*') {
        MatchPattern::Prefix(format!("{prefix}{start}"))
    } else {
        MatchPattern::Exact(format!("{prefix}{value}"))
    };
    StringMatcher {
        match_pattern: Some(pattern),
        ignore_case,
    }
}

/// A principal in namespace `value` (Istio's `.*/ns/NS/.*` regex), with the
/// same wildcard rules applied to the namespace.
pub fn namespace_matcher(value: &str) -> StringMatcher {
    let namespace = if value == "*" {
        ".+".to_string()
    } else if let Some(suffix) = value.strip_prefix('*') {
        format!(".*{}", escape(suffix))
    } else if let Some(start) = value.strip_suffix('*') {
        format!("{}.*", escape(start))
    } else {
        escape(value)
    };
    StringMatcher {
        match_pattern: Some(MatchPattern::SafeRegex(regex(&format!(
            ".*/ns/{namespace}/.*"
        )))),
        ignore_case: false,
    }
}

fn regex(pattern: &str) -> RegexMatcher {
    RegexMatcher {
        regex: pattern.to_string(),
        ..Default::default()
    }
}

/// RE2 escaping of the characters that mean something in a pattern.
fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(matcher: StringMatcher) -> MatchPattern {
        matcher.match_pattern.unwrap()
    }

    #[test]
    fn wildcards_follow_istio() {
        let cases = [
            ("*", MatchPattern::SafeRegex(regex(".+"))),
            ("/admin*", MatchPattern::Prefix("/admin".into())),
            ("*.png", MatchPattern::Suffix(".png".into())),
            ("/exact", MatchPattern::Exact("/exact".into())),
        ];
        for (value, expected) in cases {
            assert_eq!(pattern(string_matcher(value)), expected, "{value}");
        }
        assert_eq!(
            pattern(with_prefix(SPIFFE_PREFIX, "cluster.local/ns/a/sa/b", false)),
            MatchPattern::Exact("spiffe://cluster.local/ns/a/sa/b".into())
        );
        assert_eq!(
            pattern(namespace_matcher("prod-*")),
            MatchPattern::SafeRegex(regex(".*/ns/prod-.*/.*"))
        );
        assert_eq!(
            pattern(namespace_matcher("a.b")),
            MatchPattern::SafeRegex(regex(r".*/ns/a\.b/.*"))
        );
    }
}
