//! CORS as Istio emits it: the CORS filter sits in every outbound and
//! gateway HTTP connection manager with an empty config, and each route with
//! a `corsPolicy` carries Envoy's `CorsPolicy` in `typed_per_filter_config`.

use envoy_types::pb::envoy::extensions::filters::http::cors::v3::{Cors, CorsPolicy as EnvoyCors};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpFilter, http_filter,
};
use envoy_types::pb::envoy::r#type::matcher::v3::{
    RegexMatcher, StringMatcher, string_matcher::MatchPattern,
};
use envoy_types::pb::google::protobuf::{Any, BoolValue};
use envoy_types::util::pack_any;
use trellis_api::{
    CorsPolicy, HttpRoute, Resource, StringMatch, UnmatchedPreflights, VirtualService,
    parse_duration,
};

pub const CORS_FILTER: &str = "envoy.filters.http.cors";

/// The filter as it appears in the connection manager: routes configure it.
pub fn cors_filter() -> HttpFilter {
    HttpFilter {
        name: CORS_FILTER.into(),
        config_type: Some(http_filter::ConfigType::TypedConfig(pack_any(
            Cors::default(),
        ))),
        ..Default::default()
    }
}

/// The route's CORS entry for `typed_per_filter_config`, if it has a policy.
pub fn per_route_config(vs: &Resource<VirtualService>, rule: &HttpRoute) -> Option<(String, Any)> {
    let policy = rule.cors_policy.as_ref()?;
    Some((CORS_FILTER.to_string(), pack_any(envoy_policy(vs, policy))))
}

fn envoy_policy(vs: &Resource<VirtualService>, policy: &CorsPolicy) -> EnvoyCors {
    // Istio reads the deprecated `allowOrigin` (exact origins) only when
    // `allowOrigins` is empty.
    let origins = if policy.allow_origins.is_empty() {
        policy
            .allow_origin
            .iter()
            .map(|origin| matcher(MatchPattern::Exact(origin.clone())))
            .collect()
    } else {
        policy
            .allow_origins
            .iter()
            .filter_map(origin_matcher)
            .collect()
    };
    let max_age = policy.max_age.as_deref().and_then(|text| {
        parse_duration(text)
            .inspect_err(|error| {
                tracing::warn!(virtual_service = vs.name(), %error, "corsPolicy.maxAge skipped");
            })
            .ok()
    });
    EnvoyCors {
        allow_origin_string_match: origins,
        allow_methods: policy.allow_methods.join(","),
        allow_headers: policy.allow_headers.join(","),
        expose_headers: policy.expose_headers.join(","),
        max_age: max_age
            .map(|age| age.as_secs().to_string())
            .unwrap_or_default(),
        allow_credentials: policy.allow_credentials.map(|value| BoolValue { value }),
        // Envoy forwards unmatched preflights by default; IGNORE answers them.
        forward_not_matching_preflights: (policy.unmatched_preflights
            == Some(UnmatchedPreflights::Ignore))
        .then_some(BoolValue { value: false }),
        ..Default::default()
    }
}

fn origin_matcher(origin: &StringMatch) -> Option<StringMatcher> {
    let pattern = match origin {
        StringMatch::Exact(value) => MatchPattern::Exact(value.clone()),
        StringMatch::Prefix(value) => MatchPattern::Prefix(value.clone()),
        StringMatch::Regex(value) => MatchPattern::SafeRegex(RegexMatcher {
            regex: value.clone(),
            ..Default::default()
        }),
        // Validation refuses an empty origin match; nothing to emit.
        StringMatch::Present => return None,
    };
    Some(matcher(pattern))
}

fn matcher(pattern: MatchPattern) -> StringMatcher {
    StringMatcher {
        match_pattern: Some(pattern),
        ignore_case: false,
    }
}
