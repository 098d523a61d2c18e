//! Route tables compiled from Envoy `RouteConfiguration`s: virtual host
//! selection by authority, then the first route whose match succeeds.

use std::time::Duration;

use envoy_types::pb::envoy::config::route::v3 as xds;
use envoy_types::pb::envoy::config::route::v3::header_matcher::HeaderMatchSpecifier;
use envoy_types::pb::envoy::config::route::v3::route::Action;
use envoy_types::pb::envoy::config::route::v3::route_action::{
    ClusterSpecifier, HostRewriteSpecifier,
};
use envoy_types::pb::envoy::config::route::v3::route_match::PathSpecifier;
use envoy_types::pb::envoy::r#type::matcher::v3::string_matcher::MatchPattern;
use envoy_types::pb::envoy::r#type::matcher::v3::{RegexMatcher, StringMatcher};
use http::HeaderMap;
use regex::Regex;

use crate::cors::{CORS_FILTER, CorsPolicy};
use crate::fault::FaultPolicy;
use crate::headers::HeaderMutations;
use crate::mirror::MirrorPolicy;
use crate::retry::RetryPolicy;
use crate::rewrite::{PathRewrite, Redirect};
use crate::unsupported::{Unsupported, reject_if};

#[derive(Debug)]
pub struct RouteTable {
    pub name: String,
    virtual_hosts: Vec<VirtualHost>,
}

#[derive(Debug)]
struct VirtualHost {
    name: String,
    domains: Vec<Domain>,
    routes: Vec<Route>,
}

/// Virtual host settings every route of the host applies.
#[derive(Clone, Copy, Debug)]
struct HostSettings {
    include_attempt_count: bool,
}

#[derive(Debug)]
enum Domain {
    Exact(String),
    /// `*.example.com`: the suffix including the dot.
    Suffix(String),
    /// `example.*`: the prefix including the dot.
    Prefix(String),
    Any,
}

#[derive(Debug)]
pub struct Route {
    pub name: String,
    path: PathMatch,
    headers: Vec<HeaderMatch>,
    pub action: RouteAction,
    pub request_headers: HeaderMutations,
    pub response_headers: HeaderMutations,
    /// The fault filter's per-route config.
    pub fault: Option<FaultPolicy>,
    /// The CORS filter's per-route config.
    pub cors: Option<CorsPolicy>,
    /// Send `x-envoy-attempt-count` upstream (the virtual host's setting).
    pub include_attempt_count: bool,
}

#[derive(Debug)]
enum PathMatch {
    Prefix(String, bool),
    Exact(String, bool),
    Regex(Regex),
}

/// What a request looks like to route matching.
pub struct RequestView<'a> {
    pub method: &'a str,
    pub authority: &'a str,
    pub scheme: &'a str,
    pub path: &'a str,
    pub headers: &'a HeaderMap,
}

/// Where a header matcher reads its value: a header, or one of the HTTP/2
/// pseudo-headers Envoy lets routes match on.
#[derive(Debug)]
enum HeaderSource {
    Header(http::HeaderName),
    Method,
    Authority,
    Scheme,
    Path,
}

impl HeaderSource {
    fn read<'a>(&self, request: &RequestView<'a>) -> Option<&'a str> {
        match self {
            HeaderSource::Header(name) => request.headers.get(name).and_then(|v| v.to_str().ok()),
            HeaderSource::Method => Some(request.method),
            HeaderSource::Authority => Some(request.authority),
            HeaderSource::Scheme => Some(request.scheme),
            HeaderSource::Path => Some(request.path),
        }
    }
}

#[derive(Debug)]
struct HeaderMatch {
    name: HeaderSource,
    value: ValueMatch,
    invert: bool,
}

#[derive(Debug)]
enum ValueMatch {
    Present(bool),
    Exact(String, bool),
    Prefix(String, bool),
    Suffix(String, bool),
    Contains(String, bool),
    Regex(Regex),
}

#[derive(Debug)]
pub enum RouteAction {
    Forward(Forward),
    DirectResponse {
        status: http::StatusCode,
        body: String,
    },
    Redirect(Redirect),
}

#[derive(Debug)]
pub struct Forward {
    /// A single entry for a plain cluster route.
    pub clusters: Vec<ClusterTarget>,
    pub total_weight: u32,
    /// `None`: no timeout (Istio's default for HTTP routes). Covers every
    /// attempt and the backoff between them.
    pub timeout: Option<Duration>,
    pub host_rewrite: Option<String>,
    pub path_rewrite: Option<PathRewrite>,
    pub retry: Option<RetryPolicy>,
    pub mirrors: Vec<MirrorPolicy>,
    /// The request's consistent-hash key, for RING_HASH and MAGLEV clusters.
    pub hash_policy: Vec<crate::hash_policy::HashPolicy>,
}

/// One weighted cluster, with its own header operations.
#[derive(Debug)]
pub struct ClusterTarget {
    pub name: String,
    pub weight: u32,
    pub request_headers: HeaderMutations,
    pub response_headers: HeaderMutations,
}

impl Forward {
    /// Picks a weighted cluster; `roll` is uniform in `0..total_weight`.
    pub fn pick(&self, roll: u32) -> &ClusterTarget {
        let mut acc = 0;
        for target in &self.clusters {
            acc += target.weight;
            if roll < acc {
                return target;
            }
        }
        self.clusters
            .last()
            .expect("compiled forwards have a cluster")
    }
}

impl RouteTable {
    pub fn compile(config: &xds::RouteConfiguration) -> Result<RouteTable, Unsupported> {
        reject_if(
            !config.response_headers_to_add.is_empty(),
            "response_headers_to_add",
        )?;
        reject_if(
            !config.request_headers_to_add.is_empty(),
            "request_headers_to_add",
        )?;
        let virtual_hosts = config
            .virtual_hosts
            .iter()
            .map(VirtualHost::compile)
            .collect::<Result<_, _>>()?;
        Ok(RouteTable {
            name: config.name.clone(),
            virtual_hosts,
        })
    }

    /// The route for a request, following Envoy's domain precedence: exact,
    /// then longest suffix wildcard, then longest prefix wildcard, then `*`.
    pub fn find(&self, request: &RequestView<'_>) -> Option<&Route> {
        let host = request.authority.to_ascii_lowercase();
        let vhost = self.virtual_host(&host)?;
        vhost.routes.iter().find(|r| r.matches(request))
    }

    fn virtual_host(&self, host: &str) -> Option<&VirtualHost> {
        let mut best: Option<(u8, usize, &VirtualHost)> = None;
        for vhost in &self.virtual_hosts {
            for domain in &vhost.domains {
                let Some(score) = domain.score(host) else {
                    continue;
                };
                if best.is_none_or(|(rank, len, _)| score > (rank, len)) {
                    best = Some((score.0, score.1, vhost));
                }
            }
        }
        best.map(|(_, _, vhost)| vhost)
    }

    pub fn virtual_host_names(&self) -> impl Iterator<Item = &str> {
        self.virtual_hosts.iter().map(|v| v.name.as_str())
    }
}

impl Domain {
    fn parse(domain: &str) -> Domain {
        let domain = domain.to_ascii_lowercase();
        if domain == "*" {
            Domain::Any
        } else if let Some(suffix) = domain.strip_prefix('*') {
            Domain::Suffix(suffix.to_string())
        } else if let Some(prefix) = domain.strip_suffix('*') {
            Domain::Prefix(prefix.to_string())
        } else {
            Domain::Exact(domain)
        }
    }

    /// (precedence class, specificity) if `host` matches.
    fn score(&self, host: &str) -> Option<(u8, usize)> {
        match self {
            Domain::Exact(d) => (d == host).then_some((3, d.len())),
            Domain::Suffix(s) => {
                (host.len() > s.len() && host.ends_with(s.as_str())).then_some((2, s.len()))
            }
            Domain::Prefix(p) => {
                (host.len() > p.len() && host.starts_with(p.as_str())).then_some((1, p.len()))
            }
            Domain::Any => Some((0, 0)),
        }
    }
}

impl VirtualHost {
    fn compile(vhost: &xds::VirtualHost) -> Result<VirtualHost, Unsupported> {
        reject_if(vhost.retry_policy.is_some(), "virtual_host.retry_policy")?;
        reject_if(
            !vhost.request_headers_to_add.is_empty(),
            "virtual_host.request_headers_to_add",
        )?;
        reject_if(
            !vhost.response_headers_to_add.is_empty(),
            "virtual_host.response_headers_to_add",
        )?;
        reject_if(
            !vhost.typed_per_filter_config.is_empty(),
            "virtual_host.typed_per_filter_config",
        )?;
        let settings = HostSettings {
            include_attempt_count: vhost.include_request_attempt_count,
        };
        Ok(VirtualHost {
            name: vhost.name.clone(),
            domains: vhost.domains.iter().map(|d| Domain::parse(d)).collect(),
            routes: vhost
                .routes
                .iter()
                .map(|route| Route::compile(route, settings))
                .collect::<Result<_, _>>()?,
        })
    }
}

impl Route {
    fn compile(route: &xds::Route, settings: HostSettings) -> Result<Route, Unsupported> {
        let matcher = route
            .r#match
            .as_ref()
            .ok_or(Unsupported("route without match"))?;
        reject_if(
            !matcher.query_parameters.is_empty(),
            "route.match.query_parameters",
        )?;
        reject_if(
            matcher.runtime_fraction.is_some(),
            "route.match.runtime_fraction",
        )?;
        let case_sensitive = matcher.case_sensitive.as_ref().is_none_or(|b| b.value);
        let path = match &matcher.path_specifier {
            Some(PathSpecifier::Prefix(p)) => {
                PathMatch::Prefix(fold(p, case_sensitive), case_sensitive)
            }
            Some(PathSpecifier::Path(p)) => {
                PathMatch::Exact(fold(p, case_sensitive), case_sensitive)
            }
            Some(PathSpecifier::SafeRegex(r)) => PathMatch::Regex(full_regex(r)?),
            _ => return Err(Unsupported("route.match path specifier")),
        };
        let headers = matcher
            .headers
            .iter()
            .map(HeaderMatch::compile)
            .collect::<Result<_, _>>()?;
        let action = match &route.action {
            Some(Action::Route(action)) => RouteAction::Forward(compile_forward(action)?),
            Some(Action::DirectResponse(direct)) => RouteAction::DirectResponse {
                status: http::StatusCode::from_u16(direct.status as u16)
                    .map_err(|_| Unsupported("direct_response.status"))?,
                body: direct_body(direct)?,
            },
            Some(Action::Redirect(redirect)) => RouteAction::Redirect(Redirect::compile(redirect)?),
            _ => {
                return Err(Unsupported(
                    "route action other than route, redirect or direct_response",
                ));
            }
        };
        // Each filter reads its own entry; the fault filter refuses the rest.
        let mut fault_configs = route.typed_per_filter_config.clone();
        let cors_config = fault_configs.remove(CORS_FILTER);
        let cors_config = cors_config.as_ref();
        Ok(Route {
            name: route.name.clone(),
            path,
            headers,
            action,
            request_headers: HeaderMutations::compile(
                &route.request_headers_to_add,
                &route.request_headers_to_remove,
            )?,
            response_headers: HeaderMutations::compile(
                &route.response_headers_to_add,
                &route.response_headers_to_remove,
            )?,
            fault: FaultPolicy::from_per_filter_config(&fault_configs)?,
            cors: cors_config.map(CorsPolicy::compile).transpose()?,
            include_attempt_count: settings.include_attempt_count,
        })
    }

    /// How many bytes of `path` (without its query) the route's path
    /// condition covered: its prefix, or all of it for exact and regex
    /// matches. This is what `prefix_rewrite` replaces.
    pub fn matched_len(&self, path: &str) -> usize {
        let path = path.split('?').next().unwrap_or(path);
        match &self.path {
            PathMatch::Prefix(prefix, _) => prefix.len().min(path.len()),
            PathMatch::Exact(..) | PathMatch::Regex(_) => path.len(),
        }
    }

    fn matches(&self, request: &RequestView<'_>) -> bool {
        // Envoy matches on the path without the query string.
        let path = request.path.split('?').next().unwrap_or(request.path);
        let path_ok = match &self.path {
            PathMatch::Prefix(p, true) => path.starts_with(p.as_str()),
            PathMatch::Prefix(p, false) => path.to_ascii_lowercase().starts_with(p.as_str()),
            PathMatch::Exact(p, true) => path == p,
            PathMatch::Exact(p, false) => path.eq_ignore_ascii_case(p),
            PathMatch::Regex(r) => r.is_match(path),
        };
        path_ok && self.headers.iter().all(|h| h.matches(request))
    }
}

#[allow(deprecated)] // `cors` is deprecated but must still be rejected when set
fn compile_forward(action: &xds::RouteAction) -> Result<Forward, Unsupported> {
    reject_if(action.cors.is_some(), "route.cors")?;
    reject_if(
        action.path_rewrite_policy.is_some(),
        "route.path_rewrite_policy",
    )?;
    reject_if(action.hedge_policy.is_some(), "route.hedge_policy")?;
    reject_if(action.max_grpc_timeout.is_some(), "route.max_grpc_timeout")?;
    let clusters = match &action.cluster_specifier {
        Some(ClusterSpecifier::Cluster(name)) => vec![ClusterTarget {
            name: name.clone(),
            weight: 1,
            request_headers: HeaderMutations::default(),
            response_headers: HeaderMutations::default(),
        }],
        Some(ClusterSpecifier::WeightedClusters(weighted)) => weighted_targets(weighted)?,
        _ => {
            return Err(Unsupported(
                "route.cluster_specifier other than cluster or weighted_clusters",
            ));
        }
    };
    let total_weight = clusters.iter().map(|c| c.weight).sum();
    if total_weight == 0 {
        return Err(Unsupported("weighted_clusters with no positive weight"));
    }
    let timeout = action
        .timeout
        .as_ref()
        .map(|d| Duration::new(d.seconds.max(0) as u64, d.nanos.max(0) as u32))
        .filter(|d| !d.is_zero());
    let host_rewrite = match &action.host_rewrite_specifier {
        Some(HostRewriteSpecifier::HostRewriteLiteral(host)) => Some(host.clone()),
        None => None,
        Some(_) => return Err(Unsupported("route.host_rewrite other than a literal")),
    };
    Ok(Forward {
        clusters,
        total_weight,
        timeout,
        host_rewrite,
        path_rewrite: PathRewrite::compile(&action.prefix_rewrite, action.regex_rewrite.as_ref())?,
        retry: action
            .retry_policy
            .as_ref()
            .map(RetryPolicy::compile)
            .transpose()?,
        mirrors: action
            .request_mirror_policies
            .iter()
            .map(MirrorPolicy::compile)
            .collect::<Result<_, _>>()?,
        hash_policy: action
            .hash_policy
            .iter()
            .map(crate::hash_policy::HashPolicy::compile)
            .collect::<Result<_, _>>()?,
    })
}

fn weighted_targets(weighted: &xds::WeightedCluster) -> Result<Vec<ClusterTarget>, Unsupported> {
    let mut targets = Vec::with_capacity(weighted.clusters.len());
    for cluster in &weighted.clusters {
        reject_if(
            !cluster.typed_per_filter_config.is_empty(),
            "weighted cluster typed_per_filter_config",
        )?;
        reject_if(
            cluster.host_rewrite_specifier.is_some(),
            "weighted cluster host_rewrite",
        )?;
        let weight = cluster.weight.as_ref().map_or(0, |w| w.value);
        if weight == 0 {
            continue;
        }
        targets.push(ClusterTarget {
            name: cluster.name.clone(),
            weight,
            request_headers: HeaderMutations::compile(
                &cluster.request_headers_to_add,
                &cluster.request_headers_to_remove,
            )?,
            response_headers: HeaderMutations::compile(
                &cluster.response_headers_to_add,
                &cluster.response_headers_to_remove,
            )?,
        });
    }
    Ok(targets)
}

fn direct_body(direct: &xds::DirectResponseAction) -> Result<String, Unsupported> {
    use envoy_types::pb::envoy::config::core::v3::data_source::Specifier;
    match direct.body.as_ref().and_then(|b| b.specifier.as_ref()) {
        None => Ok(String::new()),
        Some(Specifier::InlineString(s)) => Ok(s.clone()),
        Some(Specifier::InlineBytes(b)) => Ok(String::from_utf8_lossy(b).into_owned()),
        Some(_) => Err(Unsupported(
            "direct_response body from a file or environment",
        )),
    }
}

impl HeaderMatch {
    // Control planes (Istio's among them) still send the deprecated forms.
    #[allow(deprecated)]
    fn compile(matcher: &xds::HeaderMatcher) -> Result<HeaderMatch, Unsupported> {
        let name = match matcher.name.to_ascii_lowercase().as_str() {
            ":method" => HeaderSource::Method,
            ":authority" | "host" => HeaderSource::Authority,
            ":scheme" => HeaderSource::Scheme,
            ":path" => HeaderSource::Path,
            other => HeaderSource::Header(
                http::HeaderName::from_bytes(other.as_bytes())
                    .map_err(|_| Unsupported("header matcher name"))?,
            ),
        };
        let value = match &matcher.header_match_specifier {
            Some(HeaderMatchSpecifier::ExactMatch(v)) => ValueMatch::Exact(v.clone(), false),
            Some(HeaderMatchSpecifier::PrefixMatch(v)) => ValueMatch::Prefix(v.clone(), false),
            Some(HeaderMatchSpecifier::SuffixMatch(v)) => ValueMatch::Suffix(v.clone(), false),
            Some(HeaderMatchSpecifier::ContainsMatch(v)) => ValueMatch::Contains(v.clone(), false),
            Some(HeaderMatchSpecifier::SafeRegexMatch(r)) => ValueMatch::Regex(full_regex(r)?),
            Some(HeaderMatchSpecifier::PresentMatch(present)) => ValueMatch::Present(*present),
            Some(HeaderMatchSpecifier::StringMatch(m)) => string_match(m)?,
            None => ValueMatch::Present(true),
            Some(_) => return Err(Unsupported("header matcher kind")),
        };
        Ok(HeaderMatch {
            name,
            value,
            invert: matcher.invert_match,
        })
    }

    fn matches(&self, request: &RequestView<'_>) -> bool {
        let value = self.name.read(request);
        let matched = match (&self.value, value) {
            (ValueMatch::Present(present), v) => v.is_some() == *present,
            (_, None) => false,
            (ValueMatch::Exact(e, ci), Some(v)) => eq(v, e, *ci),
            (ValueMatch::Prefix(p, ci), Some(v)) => v.len() >= p.len() && eq(&v[..p.len()], p, *ci),
            (ValueMatch::Suffix(s, ci), Some(v)) => {
                v.len() >= s.len() && eq(&v[v.len() - s.len()..], s, *ci)
            }
            (ValueMatch::Contains(c, false), Some(v)) => v.contains(c.as_str()),
            (ValueMatch::Contains(c, true), Some(v)) => {
                v.to_ascii_lowercase().contains(&c.to_ascii_lowercase())
            }
            (ValueMatch::Regex(r), Some(v)) => r.is_match(v),
        };
        matched != self.invert
    }
}

fn eq(value: &str, expected: &str, ignore_case: bool) -> bool {
    if ignore_case {
        value.eq_ignore_ascii_case(expected)
    } else {
        value == expected
    }
}

fn string_match(m: &StringMatcher) -> Result<ValueMatch, Unsupported> {
    let ci = m.ignore_case;
    Ok(match &m.match_pattern {
        Some(MatchPattern::Exact(v)) => ValueMatch::Exact(v.clone(), ci),
        Some(MatchPattern::Prefix(v)) => ValueMatch::Prefix(v.clone(), ci),
        Some(MatchPattern::Suffix(v)) => ValueMatch::Suffix(v.clone(), ci),
        Some(MatchPattern::Contains(v)) => ValueMatch::Contains(v.clone(), ci),
        Some(MatchPattern::SafeRegex(r)) => ValueMatch::Regex(full_regex(r)?),
        _ => return Err(Unsupported("string matcher kind")),
    })
}

fn fold(value: &str, case_sensitive: bool) -> String {
    if case_sensitive {
        value.to_string()
    } else {
        value.to_ascii_lowercase()
    }
}

/// Envoy's safe_regex matches the whole value (RE2 full match).
fn full_regex(matcher: &RegexMatcher) -> Result<Regex, Unsupported> {
    Regex::new(&format!("^(?:{})$", matcher.regex)).map_err(|_| Unsupported("invalid safe_regex"))
}

#[cfg(test)]
mod tests;
