//! AuthorizationPolicy's CUSTOM action as Istio emits it: a shadow RBAC
//! filter whose rules are the CUSTOM policies' (named
//! `istio-ext-authz-ns[NS]-policy[NAME]-rule[N]`), publishing the policy a
//! request matches, then an ext_authz filter for the mesh config's
//! extension provider, enabled only for requests those rules matched.

use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::{
    GrpcService, HeaderValue, HttpUri, grpc_service, http_uri::HttpUpstreamType,
};
use envoy_types::pb::envoy::extensions::filters::http::ext_authz::v3::{
    AuthorizationRequest, AuthorizationResponse, ExtAuthz, HttpService, ext_authz::Services,
};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpFilter, http_filter,
};
use envoy_types::pb::envoy::r#type::matcher::v3::{
    ListStringMatcher, MetadataMatcher, StringMatcher, ValueMatcher, metadata_matcher::PathSegment,
    metadata_matcher::path_segment::Segment, string_matcher::MatchPattern, value_matcher,
};
use envoy_types::pb::envoy::r#type::v3::HttpStatus;
use envoy_types::util::pack_any;

use crate::build::duration;
use crate::names::outbound_cluster_name;

pub const EXT_AUTHZ_FILTER: &str = "envoy.filters.http.ext_authz";
/// The shadow RBAC filter's stat prefix, hence its metadata keys' prefix.
pub const SHADOW_STAT_PREFIX: &str = "istio_ext_authz_";
/// Every CUSTOM rule's RBAC policy name starts so.
pub const POLICY_PREFIX: &str = "istio-ext-authz";
/// Istio's default for `timeout`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

/// A mesh config `extensionProviders` authorizer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthzProvider {
    pub name: String,
    /// The service's host name.
    pub service: String,
    pub port: u16,
    pub protocol: AuthzProtocol,
    pub timeout: Duration,
    /// Let requests through when the service cannot answer.
    pub fail_open: bool,
    /// The status when it cannot (and `fail_open` is off); 403 if unset.
    pub status_on_error: Option<u16>,
    pub clear_route_cache: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthzProtocol {
    Http(HttpAuthz),
    Grpc,
}

/// `envoyExtAuthzHttp`'s own settings. Header lists take Istio's patterns:
/// `abc`, `abc*` (prefix), `*abc` (suffix).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HttpAuthz {
    pub path_prefix: String,
    pub include_request_headers_in_check: Vec<String>,
    pub include_additional_headers_in_check: Vec<(String, String)>,
    pub headers_to_upstream_on_allow: Vec<String>,
    pub headers_to_downstream_on_allow: Vec<String>,
    pub headers_to_downstream_on_deny: Vec<String>,
}

/// The ext_authz filter calling `provider`, enabled by the shadow rules.
pub fn filter(provider: &AuthzProvider) -> HttpFilter {
    let cluster = outbound_cluster_name(provider.port, "", &provider.service);
    let timeout = Some(duration(provider.timeout));
    let (services, allowed_headers) = match &provider.protocol {
        AuthzProtocol::Http(http) => (
            Services::HttpService(HttpService {
                server_uri: Some(HttpUri {
                    uri: format!("http://{}", provider.service),
                    timeout,
                    http_upstream_type: Some(HttpUpstreamType::Cluster(cluster)),
                }),
                path_prefix: http.path_prefix.clone(),
                authorization_request: Some(AuthorizationRequest {
                    headers_to_add: http
                        .include_additional_headers_in_check
                        .iter()
                        .map(|(key, value)| HeaderValue {
                            key: key.clone(),
                            value: value.clone(),
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                }),
                authorization_response: Some(AuthorizationResponse {
                    allowed_upstream_headers: header_list(&http.headers_to_upstream_on_allow),
                    allowed_client_headers: header_list(&http.headers_to_downstream_on_deny),
                    allowed_client_headers_on_success: header_list(
                        &http.headers_to_downstream_on_allow,
                    ),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            header_list(&http.include_request_headers_in_check),
        ),
        AuthzProtocol::Grpc => (
            Services::GrpcService(GrpcService {
                target_specifier: Some(grpc_service::TargetSpecifier::EnvoyGrpc(
                    grpc_service::EnvoyGrpc {
                        cluster_name: cluster,
                        authority: provider.service.clone(),
                        ..Default::default()
                    },
                )),
                timeout,
                ..Default::default()
            }),
            None,
        ),
    };
    let config = ExtAuthz {
        services: Some(services),
        transport_api_version: 2, // V3
        failure_mode_allow: provider.fail_open,
        status_on_error: provider
            .status_on_error
            .map(|code| HttpStatus { code: code.into() }),
        clear_route_cache: provider.clear_route_cache,
        allowed_headers,
        filter_enabled_metadata: Some(shadow_match_gate()),
        ..Default::default()
    };
    HttpFilter {
        name: EXT_AUTHZ_FILTER.into(),
        config_type: Some(http_filter::ConfigType::TypedConfig(pack_any(config))),
        ..Default::default()
    }
}

/// Enabled when the shadow rules matched a CUSTOM policy.
fn shadow_match_gate() -> MetadataMatcher {
    MetadataMatcher {
        filter: super::rbac::RBAC_FILTER.into(),
        path: vec![PathSegment {
            segment: Some(Segment::Key(format!(
                "{SHADOW_STAT_PREFIX}shadow_effective_policy_id"
            ))),
        }],
        value: Some(ValueMatcher {
            match_pattern: Some(value_matcher::MatchPattern::StringMatch(StringMatcher {
                match_pattern: Some(MatchPattern::Prefix(POLICY_PREFIX.into())),
                ignore_case: false,
            })),
        }),
        invert: false,
    }
}

/// Istio's header patterns as case-insensitive name matchers; `None` for
/// an empty list (the filter's default then applies).
fn header_list(patterns: &[String]) -> Option<ListStringMatcher> {
    if patterns.is_empty() {
        return None;
    }
    let matcher = |pattern: &String| {
        let pattern = if let Some(prefix) = pattern.strip_suffix('*') {
            MatchPattern::Prefix(prefix.to_owned())
        } else if let Some(suffix) = pattern.strip_prefix('*') {
            MatchPattern::Suffix(suffix.to_owned())
        } else {
            MatchPattern::Exact(pattern.clone())
        };
        StringMatcher {
            match_pattern: Some(pattern),
            ignore_case: true,
        }
    };
    Some(ListStringMatcher {
        patterns: patterns.iter().map(matcher).collect(),
    })
}
