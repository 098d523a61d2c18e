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

use super::RequestFacts;
use crate::unsupported::Unsupported;

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
}

impl Permission {
    pub fn compile(permission: &xds::Permission) -> Result<Permission, Unsupported> {
        use permission::Rule;
        let set = |set: &permission::Set| {
            set.rules
                .iter()
                .map(Permission::compile)
                .collect::<Result<Vec<_>, _>>()
        };
        Ok(match permission.rule.as_ref() {
            Some(Rule::Any(true)) => Permission::Any,
            Some(Rule::AndRules(rules)) => Permission::And(set(rules)?),
            Some(Rule::OrRules(rules)) => Permission::Or(set(rules)?),
            Some(Rule::NotRule(rule)) => Permission::Not(Box::new(Permission::compile(rule)?)),
            Some(Rule::Header(header)) => Permission::Header(Header::compile(header)?),
            Some(Rule::UrlPath(path)) => Permission::UrlPath(url_path(path)?),
            Some(Rule::DestinationPort(port)) => Permission::DestinationPort(
                u16::try_from(*port).map_err(|_| Unsupported("rbac destination_port"))?,
            ),
            Some(Rule::DestinationIp(range)) => Permission::DestinationIp(Cidr::compile(range)?),
            _ => {
                return Err(Unsupported(
                    "rbac permission other than any, and/or/not, header, url_path, destination_port or destination_ip",
                ));
            }
        })
    }

    pub fn matches(&self, request: &RequestFacts<'_>) -> bool {
        match self {
            Permission::Any => true,
            Permission::And(rules) => rules.iter().all(|r| r.matches(request)),
            Permission::Or(rules) => rules.iter().any(|r| r.matches(request)),
            Permission::Not(rule) => !rule.matches(request),
            Permission::Header(header) => header.matches(request),
            Permission::UrlPath(text) => {
                let path = request.path.split(['?', '#']).next().unwrap_or_default();
                text.matches(path)
            }
            Permission::DestinationPort(port) => request.destination.port() == *port,
            Permission::DestinationIp(cidr) => cidr.contains(request.destination.ip()),
        }
    }
}

impl Principal {
    #[allow(deprecated)] // source_ip: older control planes still send it
    pub fn compile(principal: &xds::Principal) -> Result<Principal, Unsupported> {
        use principal::Identifier;
        let set = |set: &principal::Set| {
            set.ids
                .iter()
                .map(Principal::compile)
                .collect::<Result<Vec<_>, _>>()
        };
        Ok(match principal.identifier.as_ref() {
            Some(Identifier::Any(true)) => Principal::Any,
            Some(Identifier::AndIds(ids)) => Principal::And(set(ids)?),
            Some(Identifier::OrIds(ids)) => Principal::Or(set(ids)?),
            Some(Identifier::NotId(id)) => Principal::Not(Box::new(Principal::compile(id)?)),
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
            Some(Identifier::Header(header)) => Principal::Header(Header::compile(header)?),
            _ => {
                return Err(Unsupported(
                    "rbac principal other than any, and/or/not ids, authenticated, source ip or header",
                ));
            }
        })
    }

    pub fn matches(&self, request: &RequestFacts<'_>) -> bool {
        match self {
            Principal::Any => true,
            Principal::And(ids) => ids.iter().all(|id| id.matches(request)),
            Principal::Or(ids) => ids.iter().any(|id| id.matches(request)),
            Principal::Not(id) => !id.matches(request),
            Principal::Authenticated(name) => match (request.principal, name) {
                (None, _) => false,
                (Some(_), None) => true,
                (Some(principal), Some(name)) => name.matches(principal),
            },
            Principal::SourceIp(cidr) => cidr.contains(request.source.ip()),
            Principal::Header(header) => header.matches(request),
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
