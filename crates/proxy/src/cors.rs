//! Envoy's CORS filter, configured per route: preflights from an allowed
//! origin are answered here; other requests from an allowed origin get the
//! `Access-Control-*` response headers. Requests from origins the policy
//! does not allow pass through untouched (the browser enforces the rest).

use envoy_types::pb::envoy::extensions::filters::http::cors::v3::CorsPolicy as EnvoyCors;
use envoy_types::pb::envoy::r#type::matcher::v3::StringMatcher;
use envoy_types::pb::envoy::r#type::matcher::v3::string_matcher::MatchPattern;
use envoy_types::pb::google::protobuf::Any;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Response, StatusCode, header};
use prost::{Message, Name};
use regex::Regex;

use crate::body::{ProxyBody, full};
use crate::unsupported::{Unsupported, reject_if};

pub const CORS_FILTER: &str = "envoy.filters.http.cors";

#[derive(Debug)]
pub struct CorsPolicy {
    origins: Vec<OriginMatch>,
    allow_methods: Option<HeaderValue>,
    allow_headers: Option<HeaderValue>,
    expose_headers: Option<HeaderValue>,
    max_age: Option<HeaderValue>,
    allow_credentials: bool,
    forward_unmatched_preflights: bool,
}

#[derive(Debug)]
enum OriginMatch {
    Exact(String),
    Prefix(String),
    Suffix(String),
    Contains(String),
    Regex(Regex),
}

/// What the filter decided for one request.
#[derive(Debug)]
pub enum CorsOutcome {
    /// Not a CORS request, or from an origin the policy does not allow.
    Untouched,
    /// Answered by the filter (a preflight); the request goes no further.
    Answered(Response<ProxyBody>),
    /// A CORS request from an allowed origin: decorate its response.
    Allowed(HeaderValue),
}

impl CorsPolicy {
    pub fn compile(any: &Any) -> Result<CorsPolicy, Unsupported> {
        reject_if(
            any.type_url != EnvoyCors::type_url(),
            "cors filter config type",
        )?;
        let config = EnvoyCors::decode(any.value.as_slice())
            .map_err(|_| Unsupported("undecodable cors filter config"))?;
        reject_if(
            config.filter_enabled.is_some() || config.shadow_enabled.is_some(),
            "cors filter_enabled / shadow_enabled",
        )?;
        reject_if(
            config.allow_private_network_access.is_some_and(|b| b.value),
            "cors allow_private_network_access",
        )?;
        Ok(CorsPolicy {
            origins: config
                .allow_origin_string_match
                .iter()
                .map(OriginMatch::compile)
                .collect::<Result<_, _>>()?,
            allow_methods: header_list(&config.allow_methods)?,
            allow_headers: header_list(&config.allow_headers)?,
            expose_headers: header_list(&config.expose_headers)?,
            max_age: header_list(&config.max_age)?,
            allow_credentials: config.allow_credentials.is_some_and(|b| b.value),
            forward_unmatched_preflights: config
                .forward_not_matching_preflights
                .is_none_or(|b| b.value),
        })
    }

    /// Runs the filter on a request's method and headers.
    pub fn inspect(&self, method: &Method, headers: &HeaderMap) -> CorsOutcome {
        let Some(origin) = headers.get(header::ORIGIN) else {
            return CorsOutcome::Untouched;
        };
        let preflight = method == Method::OPTIONS
            && headers.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
        if !self.allows(origin) {
            if preflight && !self.forward_unmatched_preflights {
                return CorsOutcome::Answered(empty_ok());
            }
            return CorsOutcome::Untouched;
        }
        if !preflight {
            return CorsOutcome::Allowed(origin.clone());
        }
        let mut response = empty_ok();
        let out = response.headers_mut();
        out.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        self.insert_credentials(out);
        for (name, value) in [
            (header::ACCESS_CONTROL_ALLOW_METHODS, &self.allow_methods),
            (header::ACCESS_CONTROL_ALLOW_HEADERS, &self.allow_headers),
            (header::ACCESS_CONTROL_MAX_AGE, &self.max_age),
        ] {
            insert_some(out, name, value);
        }
        CorsOutcome::Answered(response)
    }

    /// The response side, for a request `inspect` found `Allowed`.
    pub fn decorate(&self, origin: &HeaderValue, response: &mut HeaderMap) {
        response.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        self.insert_credentials(response);
        insert_some(
            response,
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            &self.expose_headers,
        );
    }

    fn allows(&self, origin: &HeaderValue) -> bool {
        let Ok(origin) = origin.to_str() else {
            return false;
        };
        self.origins.iter().any(|matcher| matcher.matches(origin))
    }

    fn insert_credentials(&self, headers: &mut HeaderMap) {
        if self.allow_credentials {
            headers.insert(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
    }
}

/// An allowed CORS request's response side.
pub struct AllowedCors<'a> {
    policy: &'a CorsPolicy,
    origin: HeaderValue,
}

impl AllowedCors<'_> {
    pub fn decorate(&self, response: &mut HeaderMap) {
        self.policy.decorate(&self.origin, response);
    }
}

/// Runs the filter for a route's policy (`None` when the route has none or
/// the connection manager lacks the filter). `Err` is the answer to send.
pub fn on_request<'a>(
    policy: Option<&'a CorsPolicy>,
    method: &Method,
    headers: &HeaderMap,
) -> Result<Option<AllowedCors<'a>>, Box<Response<ProxyBody>>> {
    let Some(policy) = policy else {
        return Ok(None);
    };
    match policy.inspect(method, headers) {
        CorsOutcome::Untouched => Ok(None),
        CorsOutcome::Answered(response) => Err(Box::new(response)),
        CorsOutcome::Allowed(origin) => Ok(Some(AllowedCors { policy, origin })),
    }
}

impl OriginMatch {
    fn compile(matcher: &StringMatcher) -> Result<OriginMatch, Unsupported> {
        reject_if(matcher.ignore_case, "cors origin matcher ignore_case")?;
        Ok(match &matcher.match_pattern {
            Some(MatchPattern::Exact(value)) => OriginMatch::Exact(value.clone()),
            Some(MatchPattern::Prefix(value)) => OriginMatch::Prefix(value.clone()),
            Some(MatchPattern::Suffix(value)) => OriginMatch::Suffix(value.clone()),
            Some(MatchPattern::Contains(value)) => OriginMatch::Contains(value.clone()),
            Some(MatchPattern::SafeRegex(regex)) => OriginMatch::Regex(
                Regex::new(&format!("^(?:{})$", regex.regex))
                    .map_err(|_| Unsupported("invalid cors origin safe_regex"))?,
            ),
            _ => return Err(Unsupported("cors origin matcher pattern")),
        })
    }

    fn matches(&self, origin: &str) -> bool {
        match self {
            // Envoy treats an exact `*` as "any origin".
            OriginMatch::Exact(value) => value == "*" || value == origin,
            OriginMatch::Prefix(value) => origin.starts_with(value.as_str()),
            OriginMatch::Suffix(value) => origin.ends_with(value.as_str()),
            OriginMatch::Contains(value) => origin.contains(value.as_str()),
            OriginMatch::Regex(regex) => regex.is_match(origin),
        }
    }
}

fn header_list(value: &str) -> Result<Option<HeaderValue>, Unsupported> {
    if value.is_empty() {
        return Ok(None);
    }
    HeaderValue::from_str(value)
        .map(Some)
        .map_err(|_| Unsupported("cors header value"))
}

fn insert_some(headers: &mut HeaderMap, name: HeaderName, value: &Option<HeaderValue>) {
    if let Some(value) = value {
        headers.insert(name, value.clone());
    }
}

fn empty_ok() -> Response<ProxyBody> {
    let mut response = Response::new(full(""));
    *response.status_mut() = StatusCode::OK;
    response
}

#[cfg(test)]
mod tests;
