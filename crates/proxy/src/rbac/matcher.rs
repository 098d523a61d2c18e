//! The permission and principal trees of an RBAC policy, and the string,
//! header and CIDR matchers at their leaves.

use std::net::IpAddr;

use envoy_types::pb::envoy::config::core::v3::CidrRange;
use envoy_types::pb::envoy::config::rbac::v3::{self as xds, permission, principal};
use envoy_types::pb::envoy::config::route::v3::{
    HeaderMatcher, header_matcher::HeaderMatchSpecifier,
};
use envoy_types::pb::envoy::r#type::matcher::v3::{
    PathMatcher, StringMatcher, path_matcher, string_matcher::MatchPattern,
};
use regex::Regex;

use super::metadata::JwtMetadata;
use super::{Facts, RequestFacts};
use crate::unsupported::{Unsupported, reject_if};

/// Which filter a policy is compiled for, and so which facts it may read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layer {
    /// The HTTP filter: everything but the TLS server name.
    Http,
    /// The network filter: only what a connection shows.
    Network,
}

fn http_only(layer: Layer, what: &'static str) -> Result<(), Unsupported> {
    reject_if(layer == Layer::Network, what)
}

#[derive(Debug)]
pub enum Permission {
    Any,
    And(Vec<Permission>),
    Or(Vec<Permission>),
    Not(Box<Permission>),
    Header(Header),
    /// The path without its query string.
    UrlPath(Text),
    DestinationPort(u16),
    DestinationIp(Cidr),
    /// The TLS server name (network filter only).
    RequestedServerName(Text),
}

#[derive(Debug)]
pub enum Principal {
    Any,
    And(Vec<Principal>),
    Or(Vec<Principal>),
    Not(Box<Principal>),
    /// A verified peer whose URI SAN matches (any verified peer if `None`).
    Authenticated(Option<Text>),
    /// The downstream connection's address (Envoy's `direct_remote_ip` and
    /// `source_ip`; also `remote_ip`, as no trusted proxy hops are set).
    SourceIp(Cidr),
    Header(Header),
    /// A claim of the request's verified JWT (`request.auth.*`).
    JwtMetadata(JwtMetadata),
}

impl Permission {
    pub fn compile(permission: &xds::Permission, layer: Layer) -> Result<Permission, Unsupported> {
        use permission::Rule;
        let set = |set: &permission::Set| {
            set.rules
                .iter()
                .map(|rule| Permission::compile(rule, layer))
                .collect::<Result<Vec<_>, _>>()
        };
        Ok(match permission.rule.as_ref() {
            Some(Rule::Any(true)) => Permission::Any,
            Some(Rule::AndRules(rules)) => Permission::And(set(rules)?),
            Some(Rule::OrRules(rules)) => Permission::Or(set(rules)?),
            Some(Rule::NotRule(rule)) => {
                Permission::Not(Box::new(Permission::compile(rule, layer)?))
            }
            Some(Rule::Header(header)) => {
                http_only(layer, "network rbac header permission")?;
                Permission::Header(Header::compile(header)?)
            }
            Some(Rule::UrlPath(path)) => {
                http_only(layer, "network rbac url_path permission")?;
                Permission::UrlPath(url_path(path)?)
            }
            Some(Rule::RequestedServerName(name)) => {
                Permission::RequestedServerName(Text::compile(name)?)
            }
            Some(Rule::DestinationPort(port)) => Permission::DestinationPort(
                u16::try_from(*port).map_err(|_| Unsupported("rbac destination_port"))?,
            ),
            Some(Rule::DestinationIp(range)) => Permission::DestinationIp(Cidr::compile(range)?),
            _ => {
                return Err(Unsupported(
                    "rbac permission other than any, and/or/not, header, url_path, destination_port, destination_ip or requested_server_name",
                ));
            }
        })
    }

    pub(super) fn matches(&self, facts: Facts<'_>) -> bool {
        match self {
            Permission::Any => true,
            Permission::And(rules) => rules.iter().all(|r| r.matches(facts)),
            Permission::Or(rules) => rules.iter().any(|r| r.matches(facts)),
            Permission::Not(rule) => !rule.matches(facts),
            Permission::Header(header) => facts.request().is_some_and(|r| header.matches(r)),
            Permission::UrlPath(text) => facts.request().is_some_and(|request| {
                let path = request.path.split(['?', '#']).next().unwrap_or_default();
                text.matches(path)
            }),
            Permission::DestinationPort(port) => facts.destination().port() == *port,
            Permission::DestinationIp(cidr) => cidr.contains(facts.destination().ip()),
            Permission::RequestedServerName(text) => {
                text.matches(facts.server_name().unwrap_or_default())
            }
        }
    }
}

impl Principal {
    #[allow(deprecated)] // source_ip and metadata: control planes (Istio) still send them
    pub fn compile(principal: &xds::Principal, layer: Layer) -> Result<Principal, Unsupported> {
        use principal::Identifier;
        let set = |set: &principal::Set| {
            set.ids
                .iter()
                .map(|id| Principal::compile(id, layer))
                .collect::<Result<Vec<_>, _>>()
        };
        Ok(match principal.identifier.as_ref() {
            Some(Identifier::Any(true)) => Principal::Any,
            Some(Identifier::AndIds(ids)) => Principal::And(set(ids)?),
            Some(Identifier::OrIds(ids)) => Principal::Or(set(ids)?),
            Some(Identifier::NotId(id)) => Principal::Not(Box::new(Principal::compile(id, layer)?)),
            Some(Identifier::Authenticated(authenticated)) => Principal::Authenticated(
                authenticated
                    .principal_name
                    .as_ref()
                    .map(Text::compile)
                    .transpose()?,
            ),
            Some(
                Identifier::DirectRemoteIp(range)
                | Identifier::SourceIp(range)
                | Identifier::RemoteIp(range),
            ) => Principal::SourceIp(Cidr::compile(range)?),
            Some(Identifier::Header(header)) => {
                http_only(layer, "network rbac header principal")?;
                Principal::Header(Header::compile(header)?)
            }
            Some(Identifier::Metadata(matcher)) => {
                http_only(layer, "network rbac metadata principal")?;
                Principal::JwtMetadata(JwtMetadata::compile(matcher)?)
            }
            _ => {
                return Err(Unsupported(
                    "rbac principal other than any, and/or/not ids, authenticated, source ip, header or metadata",
                ));
            }
        })
    }

    pub(super) fn matches(&self, facts: Facts<'_>) -> bool {
        match self {
            Principal::Any => true,
            Principal::And(ids) => ids.iter().all(|id| id.matches(facts)),
            Principal::Or(ids) => ids.iter().any(|id| id.matches(facts)),
            Principal::Not(id) => !id.matches(facts),
            Principal::Authenticated(name) => match (facts.principal(), name) {
                (None, _) => false,
                (Some(_), None) => true,
                (Some(principal), Some(name)) => name.matches(principal),
            },
            Principal::SourceIp(cidr) => cidr.contains(facts.source().ip()),
            Principal::Header(header) => facts.request().is_some_and(|r| header.matches(r)),
            Principal::JwtMetadata(metadata) => {
                metadata.matches(facts.request().and_then(|r| r.jwt))
            }
        }
    }
}

fn url_path(path: &PathMatcher) -> Result<Text, Unsupported> {
    match &path.rule {
        Some(path_matcher::Rule::Path(matcher)) => Text::compile(matcher),
        None => Err(Unsupported("rbac url_path without a matcher")),
    }
}

/// Envoy's `StringMatcher`.
#[derive(Debug)]
pub enum Text {
    Exact(String, bool),
    Prefix(String, bool),
    Suffix(String, bool),
    Contains(String, bool),
    /// Matches the whole value.
    Regex(Regex),
}

impl Text {
    pub fn compile(matcher: &StringMatcher) -> Result<Text, Unsupported> {
        let ci = matcher.ignore_case;
        Ok(match &matcher.match_pattern {
            Some(MatchPattern::Exact(v)) => Text::Exact(v.clone(), ci),
            Some(MatchPattern::Prefix(v)) => Text::Prefix(v.clone(), ci),
            Some(MatchPattern::Suffix(v)) => Text::Suffix(v.clone(), ci),
            Some(MatchPattern::Contains(v)) => Text::Contains(v.clone(), ci),
            Some(MatchPattern::SafeRegex(r)) => Text::Regex(full_regex(&r.regex)?),
            _ => return Err(Unsupported("rbac string matcher kind")),
        })
    }

    pub fn matches(&self, value: &str) -> bool {
        let fold = |text: &str, ci: bool| {
            if ci {
                text.to_ascii_lowercase()
            } else {
                text.to_string()
            }
        };
        match self {
            Text::Exact(e, ci) => fold(value, *ci) == fold(e, *ci),
            Text::Prefix(p, ci) => fold(value, *ci).starts_with(&fold(p, *ci)),
            Text::Suffix(s, ci) => fold(value, *ci).ends_with(&fold(s, *ci)),
            Text::Contains(c, ci) => fold(value, *ci).contains(&fold(c, *ci)),
            Text::Regex(regex) => regex.is_match(value),
        }
    }
}

fn full_regex(pattern: &str) -> Result<Regex, Unsupported> {
    Regex::new(&format!("^(?:{pattern})$")).map_err(|_| Unsupported("rbac invalid safe_regex"))
}

/// Envoy's `HeaderMatcher` over a request; `:method`, `:authority` and
/// `:path` read the request line.
#[derive(Debug)]
pub struct Header {
    name: String,
    value: HeaderValueMatch,
    invert: bool,
}

#[derive(Debug)]
enum HeaderValueMatch {
    Present(bool),
    Text(Text),
}

impl Header {
    // Control planes still send the deprecated forms.
    #[allow(deprecated)]
    pub fn compile(header: &HeaderMatcher) -> Result<Header, Unsupported> {
        let text = |pattern: MatchPattern| {
            Text::compile(&StringMatcher {
                match_pattern: Some(pattern),
                ignore_case: false,
            })
        };
        let value = match &header.header_match_specifier {
            None => HeaderValueMatch::Present(true),
            Some(HeaderMatchSpecifier::PresentMatch(present)) => {
                HeaderValueMatch::Present(*present)
            }
            Some(HeaderMatchSpecifier::StringMatch(m)) => HeaderValueMatch::Text(Text::compile(m)?),
            Some(HeaderMatchSpecifier::ExactMatch(v)) => {
                HeaderValueMatch::Text(text(MatchPattern::Exact(v.clone()))?)
            }
            Some(HeaderMatchSpecifier::PrefixMatch(v)) => {
                HeaderValueMatch::Text(text(MatchPattern::Prefix(v.clone()))?)
            }
            Some(HeaderMatchSpecifier::SuffixMatch(v)) => {
                HeaderValueMatch::Text(text(MatchPattern::Suffix(v.clone()))?)
            }
            Some(HeaderMatchSpecifier::SafeRegexMatch(r)) => {
                HeaderValueMatch::Text(Text::Regex(full_regex(&r.regex)?))
            }
            Some(_) => return Err(Unsupported("rbac header matcher kind")),
        };
        Ok(Header {
            name: header.name.to_ascii_lowercase(),
            value,
            invert: header.invert_match,
        })
    }

    fn matches(&self, request: &RequestFacts<'_>) -> bool {
        let value = self.read(request);
        let matched = match (&self.value, value) {
            (HeaderValueMatch::Present(present), value) => value.is_some() == *present,
            (HeaderValueMatch::Text(_), None) => false,
            (HeaderValueMatch::Text(text), Some(value)) => text.matches(&value),
        };
        matched != self.invert
    }

    /// Several values of one header are seen joined by `,`, as Envoy does.
    fn read(&self, request: &RequestFacts<'_>) -> Option<String> {
        match self.name.as_str() {
            ":method" => Some(request.method.to_string()),
            ":authority" | "host" => Some(request.authority.to_string()),
            ":path" => Some(request.path.to_string()),
            name => {
                let values: Vec<&str> = request
                    .headers
                    .get_all(name)
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .collect();
                (!values.is_empty()).then(|| values.join(","))
            }
        }
    }
}

/// An address range.
#[derive(Debug)]
pub struct Cidr {
    network: IpAddr,
    bits: u8,
}

impl Cidr {
    fn compile(range: &CidrRange) -> Result<Cidr, Unsupported> {
        let network: IpAddr = range
            .address_prefix
            .parse()
            .map_err(|_| Unsupported("rbac cidr address"))?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let bits = range.prefix_len.as_ref().map_or(max, |len| len.value);
        if bits > max {
            return Err(Unsupported("rbac cidr prefix length"));
        }
        Ok(Cidr {
            network,
            bits: bits as u8,
        })
    }

    fn contains(&self, address: IpAddr) -> bool {
        let address = match address {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, IpAddr::V4),
            v4 => v4,
        };
        match (self.network, address) {
            (IpAddr::V4(net), IpAddr::V4(addr)) => {
                prefix_eq(&net.octets(), &addr.octets(), self.bits)
            }
            (IpAddr::V6(net), IpAddr::V6(addr)) => {
                prefix_eq(&net.octets(), &addr.octets(), self.bits)
            }
            _ => false,
        }
    }
}

fn prefix_eq(network: &[u8], address: &[u8], bits: u8) -> bool {
    let (whole, rest) = (usize::from(bits / 8), bits % 8);
    if network[..whole] != address[..whole] {
        return false;
    }
    rest == 0 || {
        let mask = 0xffu8 << (8 - rest);
        network[whole] & mask == address[whole] & mask
    }
}
