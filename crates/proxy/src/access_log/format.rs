//! Envoy's access log format strings: parsed once into literal text and
//! command operators (`%NAME%`, `%NAME(ARG)%`, `%NAME(ARG):MAX_LENGTH%`),
//! then rendered per request. Missing values and operators the proxy does
//! not know render as `-`, as Envoy prints them.

use std::fmt::Write;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use envoy_types::pb::google::protobuf::Struct;
use http::{HeaderMap, HeaderName, HeaderValue};

use crate::jwt::VerifiedJwt;
use metadata::MetadataPath;

mod json;
mod metadata;

/// A header a `REQ`/`RESP` operator reads: a pseudo-header or a real one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HeaderKey {
    Method,
    Path,
    Authority,
    Scheme,
    Named(HeaderName),
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Operator {
    StartTime,
    Protocol,
    ResponseCode,
    ResponseFlags,
    ResponseCodeDetails,
    ConnectionTerminationDetails,
    BytesReceived,
    BytesSent,
    Duration,
    UpstreamHost,
    UpstreamCluster,
    DownstreamLocalAddress,
    DownstreamRemoteAddress,
    RouteName,
    DownstreamPeerUriSan,
    UpstreamPeerUriSan,
    /// Indexes into the captured request headers: the header, then `?` fallback.
    Request(usize, Option<usize>),
    Response(usize, Option<usize>),
    DynamicMetadata(MetadataPath),
    /// Known to Envoy or not, the proxy has no value for it.
    Unavailable,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Operator {
        operator: Operator,
        max_length: Option<usize>,
    },
}

/// What one request's log line is made of.
pub struct LogEntry<'a> {
    pub start: SystemTime,
    pub duration: Duration,
    pub protocol: &'static str,
    pub response_code: u16,
    pub response_flags: &'static str,
    pub response_code_details: &'static str,
    /// Why a network filter closed the connection (Envoy's
    /// `CONNECTION_TERMINATION_DETAILS`), e.g. network RBAC's denial.
    pub connection_termination_details: Option<&'a str>,
    pub bytes_received: u64,
    pub bytes_sent: u64,
    pub upstream_host: Option<SocketAddr>,
    pub upstream_cluster: Option<&'a str>,
    pub upstream_peer: Option<&'a str>,
    pub downstream_local: SocketAddr,
    pub downstream_remote: SocketAddr,
    pub downstream_peer: Option<&'a str>,
    pub route_name: Option<&'a str>,
    /// Values of [`LogFormat::request_keys`], in order.
    pub request_headers: &'a [Option<HeaderValue>],
    pub response_headers: &'a [Option<HeaderValue>],
    /// The request's verified JWT, the source of its dynamic metadata.
    pub jwt: Option<&'a VerifiedJwt>,
}

/// How a line is laid out: one format string, or a JSON object whose
/// values are format strings (Envoy's `json_format`).
#[derive(Debug, PartialEq, Eq)]
enum Layout {
    Text(Vec<Segment>),
    Json(json::JsonObject),
}

/// A parsed access log format.
#[derive(Debug, PartialEq, Eq)]
pub struct LogFormat {
    layout: Layout,
    /// The headers a request must keep for its line.
    pub request_keys: Vec<HeaderKey>,
    pub response_keys: Vec<HeaderKey>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FormatError {
    #[error("START_TIME with a custom time format is not implemented")]
    CustomStartTime,
    #[error("operator {0} needs a header name")]
    MissingHeader(String),
    #[error("operator {0} needs a metadata namespace")]
    MissingNamespace(String),
    #[error("json_format field {0}: only strings, numbers, booleans and objects are supported")]
    JsonValue(String),
}

impl LogFormat {
    pub fn parse(text: &str) -> Result<LogFormat, FormatError> {
        let mut format = LogFormat::empty();
        format.layout = Layout::Text(format.template(text)?);
        Ok(format)
    }

    /// A `json_format`: `fields` maps keys to format strings or to nested
    /// objects of them.
    pub fn parse_json(fields: &Struct) -> Result<LogFormat, FormatError> {
        let mut format = LogFormat::empty();
        format.layout = Layout::Json(json::JsonObject::parse(&mut format, fields)?);
        Ok(format)
    }

    /// With `omit_empty`, JSON fields without a value are left out rather
    /// than written as `null`.
    pub fn omit_empty_values(mut self, omit_empty: bool) -> Self {
        if let Layout::Json(object) = &mut self.layout {
            object.omit_empty = omit_empty;
        }
        self
    }

    fn empty() -> LogFormat {
        LogFormat {
            layout: Layout::Text(Vec::new()),
            request_keys: Vec::new(),
            response_keys: Vec::new(),
        }
    }

    /// One format string's literal text and operators.
    fn template(&mut self, text: &str) -> Result<Vec<Segment>, FormatError> {
        let mut segments = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find('%') {
            let after = &rest[start + 1..];
            match scan_operator(after) {
                Some((name, argument, max_length, length)) => {
                    literal(&mut segments, &rest[..start]);
                    let operator = self.operator(name, argument)?;
                    segments.push(Segment::Operator {
                        operator,
                        max_length,
                    });
                    rest = &after[length..];
                }
                None => {
                    literal(&mut segments, &rest[..=start]);
                    rest = after;
                }
            }
        }
        literal(&mut segments, rest);
        Ok(segments)
    }

    fn operator(&mut self, name: &str, argument: Option<&str>) -> Result<Operator, FormatError> {
        Ok(match name {
            "START_TIME" if argument.is_some() => return Err(FormatError::CustomStartTime),
            "START_TIME" => Operator::StartTime,
            "PROTOCOL" => Operator::Protocol,
            "RESPONSE_CODE" => Operator::ResponseCode,
            "RESPONSE_FLAGS" => Operator::ResponseFlags,
            "RESPONSE_CODE_DETAILS" => Operator::ResponseCodeDetails,
            "CONNECTION_TERMINATION_DETAILS" => Operator::ConnectionTerminationDetails,
            "BYTES_RECEIVED" => Operator::BytesReceived,
            "BYTES_SENT" => Operator::BytesSent,
            "DURATION" => Operator::Duration,
            "UPSTREAM_HOST" => Operator::UpstreamHost,
            // No alt_stat_name is configured, so both are the cluster's name.
            "UPSTREAM_CLUSTER" | "UPSTREAM_CLUSTER_RAW" => Operator::UpstreamCluster,
            "DOWNSTREAM_LOCAL_ADDRESS" => Operator::DownstreamLocalAddress,
            "DOWNSTREAM_REMOTE_ADDRESS" => Operator::DownstreamRemoteAddress,
            "ROUTE_NAME" => Operator::RouteName,
            "DOWNSTREAM_PEER_URI_SAN" => Operator::DownstreamPeerUriSan,
            "UPSTREAM_PEER_URI_SAN" => Operator::UpstreamPeerUriSan,
            "DYNAMIC_METADATA" | "METADATA" => {
                let argument =
                    argument.ok_or_else(|| FormatError::MissingNamespace(name.into()))?;
                Operator::DynamicMetadata(if name == "METADATA" {
                    MetadataPath::parse_typed(argument)
                } else {
                    MetadataPath::parse(argument)
                })
            }
            "REQ" | "RESP" => {
                let argument = argument.ok_or_else(|| FormatError::MissingHeader(name.into()))?;
                let keys = if name == "REQ" {
                    &mut self.request_keys
                } else {
                    &mut self.response_keys
                };
                let (primary, fallback) = match argument.split_once('?') {
                    Some((primary, fallback)) => (primary, Some(fallback)),
                    None => (argument, None),
                };
                let Some(primary) = key_index(keys, primary) else {
                    return Ok(Operator::Unavailable);
                };
                let fallback = fallback.and_then(|f| key_index(keys, f));
                if name == "REQ" {
                    Operator::Request(primary, fallback)
                } else {
                    Operator::Response(primary, fallback)
                }
            }
            _ => Operator::Unavailable,
        })
    }

    /// The request's values of [`Self::request_keys`].
    pub fn capture_request(
        &self,
        request: &RequestHead<'_>,
        headers: &HeaderMap,
    ) -> Vec<Option<HeaderValue>> {
        self.request_keys
            .iter()
            .map(|key| match key {
                HeaderKey::Method => method_value(request.method),
                HeaderKey::Path => HeaderValue::from_str(request.path).ok(),
                HeaderKey::Authority => HeaderValue::from_str(request.authority?).ok(),
                HeaderKey::Scheme => Some(HeaderValue::from_static(request.scheme)),
                HeaderKey::Named(name) => headers.get(name).cloned(),
            })
            .collect()
    }

    pub fn capture_response(&self, headers: &HeaderMap) -> Vec<Option<HeaderValue>> {
        self.response_keys
            .iter()
            .map(|key| match key {
                HeaderKey::Named(name) => headers.get(name).cloned(),
                _ => None,
            })
            .collect()
    }

    /// Appends the entry's line to `out`.
    pub fn render(&self, entry: &LogEntry<'_>, out: &mut String) {
        match &self.layout {
            Layout::Text(segments) => render_segments(segments, entry, out),
            Layout::Json(object) => object.render_line(entry, out),
        }
    }
}

/// The standard methods need no copy.
fn method_value(method: &str) -> Option<HeaderValue> {
    const STANDARD: [&str; 9] = [
        "GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "CONNECT", "TRACE",
    ];
    match STANDARD.iter().copied().find(|m| *m == method) {
        Some(standard) => Some(HeaderValue::from_static(standard)),
        None => HeaderValue::from_str(method).ok(),
    }
}

fn literal(segments: &mut Vec<Segment>, text: &str) {
    if text.is_empty() {
        return;
    }
    if let Some(Segment::Literal(previous)) = segments.last_mut() {
        previous.push_str(text);
    } else {
        segments.push(Segment::Literal(text.into()));
    }
}

fn render_segments(segments: &[Segment], entry: &LogEntry<'_>, out: &mut String) {
    for segment in segments {
        match segment {
            Segment::Literal(text) => out.push_str(text),
            Segment::Operator {
                operator,
                max_length,
            } => {
                let start = out.len();
                render_operator(operator, entry, out);
                if out.len() == start {
                    out.push('-');
                } else if let Some(max) = max_length {
                    truncate(out, start + max);
                }
            }
        }
    }
}

/// The request line's parts a format can name as pseudo-headers.
pub struct RequestHead<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub authority: Option<&'a str>,
    pub scheme: &'static str,
}

/// `NAME%`, `NAME(ARG)%` or either with `:MAX_LENGTH` before the `%`:
/// the name, argument, maximum length and bytes taken, or `None` if `text`
/// does not start with an operator.
fn scan_operator(text: &str) -> Option<(&str, Option<&str>, Option<usize>, usize)> {
    let name_end = text
        .find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
        .unwrap_or(text.len());
    let name = &text[..name_end];
    if name.is_empty() {
        return None;
    }
    let mut rest = &text[name_end..];
    let mut argument = None;
    if let Some(inside) = rest.strip_prefix('(') {
        let close = inside.find(')')?;
        argument = Some(&inside[..close]);
        rest = &inside[close + 1..];
    }
    let mut max_length = None;
    if let Some(limit) = rest.strip_prefix(':') {
        let digits = limit
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(limit.len());
        max_length = Some(limit[..digits].parse().ok()?);
        rest = &limit[digits..];
    }
    rest.strip_prefix('%')?;
    Some((name, argument, max_length, text.len() - rest.len() + 1))
}

fn key_index(keys: &mut Vec<HeaderKey>, name: &str) -> Option<usize> {
    let key = match name.to_ascii_lowercase().as_str() {
        ":method" => HeaderKey::Method,
        ":path" => HeaderKey::Path,
        ":authority" => HeaderKey::Authority,
        ":scheme" => HeaderKey::Scheme,
        other => HeaderKey::Named(HeaderName::from_bytes(other.as_bytes()).ok()?),
    };
    Some(match keys.iter().position(|k| *k == key) {
        Some(index) => index,
        None => {
            keys.push(key);
            keys.len() - 1
        }
    })
}

fn render_operator(operator: &Operator, entry: &LogEntry<'_>, out: &mut String) {
    // Writing to a String cannot fail.
    let _ = match operator {
        Operator::StartTime => write_rfc3339_millis(entry.start, out),
        Operator::Protocol => out.write_str(entry.protocol),
        Operator::ResponseCode => write!(out, "{}", entry.response_code),
        Operator::ResponseFlags => out.write_str(entry.response_flags),
        Operator::ResponseCodeDetails => out.write_str(entry.response_code_details),
        Operator::ConnectionTerminationDetails => {
            optional(out, entry.connection_termination_details)
        }
        Operator::BytesReceived => write!(out, "{}", entry.bytes_received),
        Operator::BytesSent => write!(out, "{}", entry.bytes_sent),
        Operator::Duration => write!(out, "{}", entry.duration.as_millis()),
        Operator::UpstreamHost => optional(out, entry.upstream_host),
        Operator::UpstreamCluster => optional(out, entry.upstream_cluster),
        Operator::DownstreamLocalAddress => write!(out, "{}", entry.downstream_local),
        Operator::DownstreamRemoteAddress => write!(out, "{}", entry.downstream_remote),
        Operator::RouteName => optional(out, entry.route_name),
        Operator::DownstreamPeerUriSan => optional(out, entry.downstream_peer),
        Operator::UpstreamPeerUriSan => optional(out, entry.upstream_peer),
        Operator::Request(primary, fallback) => {
            header(out, entry.request_headers, *primary, *fallback)
        }
        Operator::Response(primary, fallback) => {
            header(out, entry.response_headers, *primary, *fallback)
        }
        Operator::DynamicMetadata(path) => {
            path.render(entry.jwt, out);
            Ok(())
        }
        Operator::Unavailable => Ok(()),
    };
}

fn optional(out: &mut String, value: Option<impl std::fmt::Display>) -> std::fmt::Result {
    match value {
        Some(value) => write!(out, "{value}"),
        None => Ok(()),
    }
}

fn header(
    out: &mut String,
    values: &[Option<HeaderValue>],
    primary: usize,
    fallback: Option<usize>,
) -> std::fmt::Result {
    let value = values
        .get(primary)
        .and_then(Option::as_ref)
        .or_else(|| values.get(fallback?)?.as_ref());
    if let Some(value) = value {
        // Almost every value is visible ASCII, checked faster than UTF-8.
        match value.to_str() {
            Ok(text) => out.push_str(text),
            Err(_) => out.push_str(&String::from_utf8_lossy(value.as_bytes())),
        }
    }
    Ok(())
}

fn truncate(out: &mut String, at: usize) {
    if at < out.len() {
        let mut at = at;
        while !out.is_char_boundary(at) {
            at -= 1;
        }
        out.truncate(at);
    }
}

/// `2026-02-24T14:23:15.456Z`, Envoy's default START_TIME.
fn write_rfc3339_millis(time: SystemTime, out: &mut String) -> std::fmt::Result {
    let since_epoch = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let seconds = since_epoch.as_secs();
    let (year, month, day) = civil_from_days((seconds / 86_400) as i64);
    let of_day = seconds % 86_400;
    write!(
        out,
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        of_day / 3600,
        of_day / 60 % 60,
        of_day % 60,
        since_epoch.subsec_millis()
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's
/// `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * shifted_month + 2) / 5 + 1) as u32;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
#[path = "format_tests.rs"]
mod tests;
