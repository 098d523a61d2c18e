//! Path and authority changes of a route: `prefix_rewrite` (the part of
//! the path the route matched is replaced), `regex_rewrite`, and redirects
//! (`RedirectAction`), which answer with a `Location` instead.

use envoy_types::pb::envoy::config::route::v3::RedirectAction;
use envoy_types::pb::envoy::config::route::v3::redirect_action::{
    PathRewriteSpecifier, RedirectResponseCode, SchemeRewriteSpecifier,
};
use envoy_types::pb::envoy::r#type::matcher::v3::RegexMatchAndSubstitute;
use http::StatusCode;
use regex::Regex;

use crate::unsupported::{Unsupported, reject_if};

#[derive(Debug)]
pub enum PathRewrite {
    /// Replaces the matched part of the path (for exact and regex routes,
    /// the whole path); the query string stays.
    Prefix(String),
    /// Every match of the pattern in the path (not the query) is replaced.
    Regex(Regex, String),
}

impl PathRewrite {
    pub fn compile(
        prefix: &str,
        regex: Option<&RegexMatchAndSubstitute>,
    ) -> Result<Option<PathRewrite>, Unsupported> {
        match (prefix.is_empty(), regex) {
            (true, None) => Ok(None),
            (false, None) => Ok(Some(PathRewrite::Prefix(prefix.to_string()))),
            (true, Some(regex)) => {
                let pattern = regex
                    .pattern
                    .as_ref()
                    .ok_or(Unsupported("regex_rewrite without a pattern"))?;
                let compiled = Regex::new(&pattern.regex)
                    .map_err(|_| Unsupported("invalid regex_rewrite pattern"))?;
                Ok(Some(PathRewrite::Regex(
                    compiled,
                    substitution(&regex.substitution),
                )))
            }
            (false, Some(_)) => Err(Unsupported("both prefix_rewrite and regex_rewrite")),
        }
    }

    /// `path_and_query` rewritten; `matched` is how many bytes of the path
    /// the route's match covered.
    pub fn apply(&self, path_and_query: &str, matched: usize) -> String {
        let (path, query) = match path_and_query.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (path_and_query, None),
        };
        let mut rewritten = match self {
            PathRewrite::Prefix(replacement) => {
                let rest = path.get(matched.min(path.len())..).unwrap_or("");
                format!("{replacement}{rest}")
            }
            PathRewrite::Regex(pattern, replacement) => {
                pattern.replace_all(path, replacement.as_str()).into_owned()
            }
        };
        if let Some(query) = query {
            rewritten.push('?');
            rewritten.push_str(query);
        }
        rewritten
    }
}

/// RE2 substitutions name groups `\1`; Rust's regex says `${1}` and needs
/// literal dollars doubled.
fn substitution(re2: &str) -> String {
    let mut out = String::with_capacity(re2.len());
    let mut chars = re2.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '$' => out.push_str("$$"),
            '\\' => match chars.peek().copied() {
                Some(digit) if digit.is_ascii_digit() => {
                    chars.next();
                    out.push_str(&format!("${{{digit}}}"));
                }
                Some('\\') => {
                    chars.next();
                    out.push('\\');
                }
                _ => out.push('\\'),
            },
            other => out.push(other),
        }
    }
    out
}

#[derive(Debug)]
pub struct Redirect {
    scheme: Option<String>,
    host: Option<String>,
    port: Option<u16>,
    path: Option<RedirectPath>,
    strip_query: bool,
    pub status: StatusCode,
}

#[derive(Debug)]
enum RedirectPath {
    Replace(String),
    Rewrite(PathRewrite),
}

/// What a redirect needs to know about the request.
pub struct Origin<'a> {
    pub scheme: &'a str,
    pub authority: &'a str,
    pub path_and_query: &'a str,
    /// Bytes of the path the route matched (for a prefix redirect).
    pub matched: usize,
}

impl Redirect {
    pub fn compile(redirect: &RedirectAction) -> Result<Redirect, Unsupported> {
        let scheme = match &redirect.scheme_rewrite_specifier {
            Some(SchemeRewriteSpecifier::HttpsRedirect(true)) => Some("https".to_string()),
            Some(SchemeRewriteSpecifier::HttpsRedirect(false)) | None => None,
            Some(SchemeRewriteSpecifier::SchemeRedirect(s)) => Some(s.to_ascii_lowercase()),
        };
        let path = match &redirect.path_rewrite_specifier {
            None => None,
            Some(PathRewriteSpecifier::PathRedirect(p)) => Some(RedirectPath::Replace(p.clone())),
            Some(PathRewriteSpecifier::PrefixRewrite(p)) => {
                Some(RedirectPath::Rewrite(PathRewrite::Prefix(p.clone())))
            }
            Some(PathRewriteSpecifier::RegexRewrite(r)) => {
                PathRewrite::compile("", Some(r))?.map(RedirectPath::Rewrite)
            }
            Some(PathRewriteSpecifier::PathRewrite(_)) => {
                return Err(Unsupported("redirect path_rewrite extension"));
            }
        };
        reject_if(
            redirect.port_redirect > u32::from(u16::MAX),
            "redirect port",
        )?;
        Ok(Redirect {
            scheme,
            host: (!redirect.host_redirect.is_empty()).then(|| redirect.host_redirect.clone()),
            port: (redirect.port_redirect != 0).then_some(redirect.port_redirect as u16),
            path,
            strip_query: redirect.strip_query,
            status: redirect_status(redirect.response_code)?,
        })
    }

    /// The `Location` for a request.
    pub fn location(&self, origin: &Origin<'_>) -> String {
        let scheme = self.scheme.as_deref().unwrap_or(origin.scheme);
        let (request_host, request_port) = split_port(origin.authority);
        let host = self.host.as_deref().unwrap_or(request_host);
        // A new port replaces the old; a changed scheme drops the old one.
        let port = match (self.port, self.scheme.is_some() || self.host.is_some()) {
            (Some(port), _) => Some(port.to_string()),
            (None, false) => request_port.map(str::to_string),
            (None, true) => None,
        }
        .filter(|port| !is_default_port(scheme, port));
        let path_and_query = match &self.path {
            None => origin.path_and_query.to_string(),
            Some(RedirectPath::Rewrite(rewrite)) => {
                rewrite.apply(origin.path_and_query, origin.matched)
            }
            Some(RedirectPath::Replace(path)) if path.contains('?') => path.clone(),
            Some(RedirectPath::Replace(path)) => match origin.path_and_query.split_once('?') {
                Some((_, query)) => format!("{path}?{query}"),
                None => path.clone(),
            },
        };
        let path_and_query = if self.strip_query {
            path_and_query
                .split('?')
                .next()
                .unwrap_or_default()
                .to_string()
        } else {
            path_and_query
        };
        match port {
            Some(port) => format!("{scheme}://{host}:{port}{path_and_query}"),
            None => format!("{scheme}://{host}{path_and_query}"),
        }
    }
}

fn split_port(authority: &str) -> (&str, Option<&str>) {
    match authority.rsplit_once(':') {
        Some((host, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => {
            (host, Some(port))
        }
        _ => (authority, None),
    }
}

fn is_default_port(scheme: &str, port: &str) -> bool {
    matches!((scheme, port), ("http", "80") | ("https", "443"))
}

fn redirect_status(code: i32) -> Result<StatusCode, Unsupported> {
    Ok(match RedirectResponseCode::try_from(code) {
        Ok(RedirectResponseCode::MovedPermanently) => StatusCode::MOVED_PERMANENTLY,
        Ok(RedirectResponseCode::Found) => StatusCode::FOUND,
        Ok(RedirectResponseCode::SeeOther) => StatusCode::SEE_OTHER,
        Ok(RedirectResponseCode::TemporaryRedirect) => StatusCode::TEMPORARY_REDIRECT,
        Ok(RedirectResponseCode::PermanentRedirect) => StatusCode::PERMANENT_REDIRECT,
        Err(_) => return Err(Unsupported("redirect response_code")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::envoy::r#type::matcher::v3::RegexMatcher;

    #[test]
    fn prefix_rewrite_replaces_what_matched_and_keeps_the_query() {
        let rewrite = PathRewrite::compile("/v2/", None).unwrap().unwrap();
        assert_eq!(rewrite.apply("/v1/reviews/0?x=1", 4), "/v2/reviews/0?x=1");
        assert_eq!(rewrite.apply("/exact", 6), "/v2/");
        let to_root = PathRewrite::compile("/", None).unwrap().unwrap();
        assert_eq!(to_root.apply("/api/items", 4), "//items");
    }

    #[test]
    fn regex_rewrite_substitutes_re2_groups() {
        let regex = RegexMatchAndSubstitute {
            pattern: Some(RegexMatcher {
                regex: "^/service/([^/]+)(/.*)$".into(),
                ..Default::default()
            }),
            substitution: "\\2/instance/\\1".into(),
        };
        let rewrite = PathRewrite::compile("", Some(&regex)).unwrap().unwrap();
        assert_eq!(
            rewrite.apply("/service/foo/v1/api?q=1", 0),
            "/v1/api/instance/foo?q=1"
        );
        assert_eq!(substitution("$1 \\\\ \\0"), "$$1 \\ ${0}");
    }

    fn redirect(action: RedirectAction) -> Redirect {
        Redirect::compile(&action).unwrap()
    }

    fn origin(authority: &'static str, path: &'static str, matched: usize) -> Origin<'static> {
        Origin {
            scheme: "http",
            authority,
            path_and_query: path,
            matched,
        }
    }

    #[test]
    fn redirects_build_locations_as_envoy_does() {
        let path_only = redirect(RedirectAction {
            path_rewrite_specifier: Some(PathRewriteSpecifier::PathRedirect(
                "/v1/bookRatings".into(),
            )),
            ..Default::default()
        });
        assert_eq!(path_only.status, StatusCode::MOVED_PERMANENTLY);
        assert_eq!(
            path_only.location(&origin("ratings:9080", "/v1/getProductRatings?id=1", 0)),
            "http://ratings:9080/v1/bookRatings?id=1"
        );
        let elsewhere = redirect(RedirectAction {
            host_redirect: "newratings.default.svc.cluster.local".into(),
            port_redirect: 8080,
            scheme_rewrite_specifier: Some(SchemeRewriteSpecifier::SchemeRedirect("https".into())),
            response_code: RedirectResponseCode::PermanentRedirect as i32,
            strip_query: true,
            ..Default::default()
        });
        assert_eq!(elsewhere.status, StatusCode::PERMANENT_REDIRECT);
        assert_eq!(
            elsewhere.location(&origin("ratings:9080", "/r?x=1", 0)),
            "https://newratings.default.svc.cluster.local:8080/r"
        );
        let https = redirect(RedirectAction {
            scheme_rewrite_specifier: Some(SchemeRewriteSpecifier::HttpsRedirect(true)),
            port_redirect: 443,
            path_rewrite_specifier: Some(PathRewriteSpecifier::PrefixRewrite("/new".into())),
            ..Default::default()
        });
        assert_eq!(
            https.location(&origin("shop.example:80", "/old/cart", 4)),
            "https://shop.example/new/cart"
        );
    }
}
