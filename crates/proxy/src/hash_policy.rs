//! A route's `hash_policy`: the consistent-hash key of a request, from a
//! header, a cookie, the client's IP or a query parameter, for clusters
//! that balance by RING_HASH or MAGLEV. Policies combine as in Envoy (the
//! running hash rotated left by one, then xor), and a terminal policy that
//! produced a hash ends the list. A cookie policy with a `ttl` makes up the
//! cookie when the request has none and sets it on the response, so the
//! client sticks to its endpoint from its first request.

use std::net::SocketAddr;
use std::time::Duration;

use envoy_types::pb::envoy::config::route::v3::route_action::HashPolicy as XdsHashPolicy;
use envoy_types::pb::envoy::config::route::v3::route_action::hash_policy::PolicySpecifier;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};

use crate::load_balancer::hash_of;
use crate::unsupported::{Unsupported, reject_if};

#[derive(Debug, Clone, PartialEq, Eq)]
enum HashKey {
    Header(HeaderName),
    Cookie(CookieKey),
    SourceIp,
    QueryParameter(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct CookieKey {
    name: String,
    /// `Some`: generate the cookie when absent (zero: a session cookie).
    ttl: Option<Duration>,
    path: String,
    attributes: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HashPolicy {
    key: HashKey,
    terminal: bool,
}

impl HashPolicy {
    pub fn compile(policy: &XdsHashPolicy) -> Result<HashPolicy, Unsupported> {
        let key = match &policy.policy_specifier {
            Some(PolicySpecifier::Header(header)) => {
                reject_if(
                    header.regex_rewrite.is_some(),
                    "hash_policy.header.regex_rewrite",
                )?;
                let name = HeaderName::from_bytes(header.header_name.as_bytes())
                    .map_err(|_| Unsupported("hash_policy.header with an invalid name"))?;
                HashKey::Header(name)
            }
            Some(PolicySpecifier::Cookie(cookie)) => HashKey::Cookie(CookieKey {
                name: cookie.name.clone(),
                ttl: cookie
                    .ttl
                    .as_ref()
                    .map(|d| Duration::new(d.seconds.max(0) as u64, d.nanos.max(0) as u32)),
                path: cookie.path.clone(),
                attributes: cookie
                    .attributes
                    .iter()
                    .map(|a| (a.name.clone(), a.value.clone()))
                    .collect(),
            }),
            Some(PolicySpecifier::ConnectionProperties(properties)) if properties.source_ip => {
                HashKey::SourceIp
            }
            Some(PolicySpecifier::QueryParameter(query)) => {
                HashKey::QueryParameter(query.name.clone())
            }
            _ => {
                return Err(Unsupported(
                    "hash_policy other than header, cookie, source IP or query parameter",
                ));
            }
        };
        Ok(HashPolicy {
            key,
            terminal: policy.terminal,
        })
    }
}

/// What a request offers to hash on.
pub struct HashInput<'a> {
    pub headers: &'a HeaderMap,
    /// Path and query.
    pub path: &'a str,
    pub remote: SocketAddr,
    pub local: SocketAddr,
}

/// A request's hash, and the cookie to set on its response, if any.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct RequestHash {
    pub hash: Option<u64>,
    pub set_cookie: Option<HeaderValue>,
}

pub fn request_hash(policies: &[HashPolicy], input: &HashInput<'_>) -> RequestHash {
    let mut result = RequestHash::default();
    for policy in policies {
        let value = match &policy.key {
            HashKey::Header(name) => header_value(input.headers, name),
            HashKey::Cookie(cookie) => cookie_value(input.headers, &cookie.name).or_else(|| {
                let ttl = cookie.ttl?;
                let (value, set_cookie) = generate_cookie(cookie, ttl, input);
                result.set_cookie = Some(set_cookie);
                Some(value)
            }),
            HashKey::SourceIp => Some(input.remote.ip().to_string()),
            HashKey::QueryParameter(name) => query_value(input.path, name),
        };
        let Some(value) = value else { continue };
        let hash = hash_of(value.as_bytes());
        result.hash = Some(
            result
                .hash
                .map_or(hash, |running| running.rotate_left(1) ^ hash),
        );
        if policy.terminal {
            break;
        }
    }
    result
}

/// Every value of the header, in order.
fn header_value(headers: &HeaderMap, name: &HeaderName) -> Option<String> {
    let values: Vec<&[u8]> = headers
        .get_all(name)
        .iter()
        .map(HeaderValue::as_bytes)
        .collect();
    (!values.is_empty()).then(|| String::from_utf8_lossy(&values.join(&b","[..])).into_owned())
}

fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.trim_matches('"').to_string())
}

fn query_value(path: &str, name: &str) -> Option<String> {
    let (_, query) = path.split_once('?')?;
    query
        .split('&')
        .filter_map(|pair| pair.split_once('=').or(Some((pair, ""))))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.to_string())
}

/// Envoy's made-up cookie: a hash of the connection's two addresses (the
/// same for every request of a connection), and its `Set-Cookie` value.
fn generate_cookie(
    cookie: &CookieKey,
    ttl: Duration,
    input: &HashInput<'_>,
) -> (String, HeaderValue) {
    let value = format!(
        "{:016x}",
        hash_of(format!("{}{}", input.remote, input.local))
    );
    let mut set = format!("{}=\"{value}\"", cookie.name);
    if !ttl.is_zero() {
        set.push_str(&format!("; Max-Age={}", ttl.as_secs()));
    }
    if !cookie.path.is_empty() {
        set.push_str(&format!("; Path={}", cookie.path));
    }
    for (name, attribute) in &cookie.attributes {
        if attribute.is_empty() {
            set.push_str(&format!("; {name}"));
        } else {
            set.push_str(&format!("; {name}={attribute}"));
        }
    }
    set.push_str("; HttpOnly");
    let header = HeaderValue::from_str(&set).unwrap_or_else(|_| HeaderValue::from_static(""));
    (value, header)
}

#[cfg(test)]
mod tests {
    use envoy_types::pb::envoy::config::route::v3::route_action::hash_policy::{
        ConnectionProperties, Cookie, Header, QueryParameter,
    };
    use envoy_types::pb::google::protobuf::Duration as XdsDuration;

    use super::*;

    fn compile(specifier: PolicySpecifier) -> HashPolicy {
        HashPolicy::compile(&XdsHashPolicy {
            policy_specifier: Some(specifier),
            terminal: false,
        })
        .unwrap()
    }

    fn hash(policy: &HashPolicy, headers: &HeaderMap, path: &str, remote: &str) -> RequestHash {
        let input = HashInput {
            headers,
            path,
            remote: remote.parse().unwrap(),
            local: "127.0.0.9:15001".parse().unwrap(),
        };
        request_hash(std::slice::from_ref(policy), &input)
    }

    #[test]
    fn each_key_hashes_its_own_part_of_the_request() {
        let header = compile(PolicySpecifier::Header(Header {
            header_name: "x-user".into(),
            regex_rewrite: None,
        }));
        let mut alice = HeaderMap::new();
        alice.insert("x-user", HeaderValue::from_static("alice"));
        alice.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; user=\"bob\""),
        );
        let first = hash(&header, &alice, "/", "127.0.0.1:1000").hash;
        assert!(first.is_some());
        assert_eq!(first, hash(&header, &alice, "/x", "127.0.0.2:2000").hash);
        assert_eq!(
            hash(&header, &HeaderMap::new(), "/", "127.0.0.1:1").hash,
            None
        );

        let query = compile(PolicySpecifier::QueryParameter(QueryParameter {
            name: "u".into(),
        }));
        let by_query = |path| hash(&query, &HeaderMap::new(), path, "127.0.0.1:1").hash;
        assert_eq!(by_query("/p?a=b&u=alice"), by_query("/q?u=alice"));
        assert_ne!(by_query("/p?u=alice"), by_query("/p?u=bob"));
        assert_eq!(by_query("/p?user=alice"), None);

        let source = compile(PolicySpecifier::ConnectionProperties(
            ConnectionProperties { source_ip: true },
        ));
        let by_source = |remote| hash(&source, &HeaderMap::new(), "/", remote).hash;
        assert_eq!(by_source("127.0.0.1:1000"), by_source("127.0.0.1:2000"));
        assert_ne!(by_source("127.0.0.1:1000"), by_source("127.0.0.2:1000"));
    }

    #[test]
    fn a_missing_cookie_with_a_ttl_is_made_up_and_set() {
        let cookie = compile(PolicySpecifier::Cookie(Cookie {
            name: "user".into(),
            ttl: Some(XdsDuration {
                seconds: 60,
                nanos: 0,
            }),
            path: "/".into(),
            attributes: Vec::new(),
        }));
        let made = hash(&cookie, &HeaderMap::new(), "/", "127.0.0.1:1000");
        let set = made.set_cookie.expect("a Set-Cookie");
        let set = set.to_str().unwrap();
        assert!(
            set.starts_with("user=\"") && set.ends_with("; Max-Age=60; Path=/; HttpOnly"),
            "{set}"
        );
        // The client sends it back and lands on the same hash.
        let value = set.split(';').next().unwrap().to_string();
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, HeaderValue::from_str(&value).unwrap());
        let back = hash(&cookie, &headers, "/", "127.0.0.5:7");
        assert_eq!(back.hash, made.hash);
        assert_eq!(back.set_cookie, None);
    }
}
