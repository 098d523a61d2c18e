//! CEL expressions over Envoy's attributes (`request.*`, `response.*`,
//! `connection.*`, `source.*`, `destination.*`, `upstream.*`, `xds.*`),
//! as Telemetry tag overrides and access log filters write them. An
//! expression is compiled once per config; evaluating it builds only the
//! attribute maps it names.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, LazyLock};
use std::time::{Duration, SystemTime};

use cel::{Context, Env, Program, Value};
use http::HeaderMap;

use crate::unsupported::Unsupported;

static ENV: LazyLock<Arc<Env>> = LazyLock::new(|| Arc::new(Env::stdlib()));

/// What of a request must be kept for an expression to read it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Roots {
    /// Its head (`request.*`).
    pub request: bool,
    /// The response's headers (`response.headers`).
    pub response_headers: bool,
}

impl Roots {
    pub fn union(self, other: Roots) -> Roots {
        Roots {
            request: self.request || other.request,
            response_headers: self.response_headers || other.response_headers,
        }
    }
}

/// A compiled expression and the roots it names.
pub struct CelExpression {
    program: Program,
    source: String,
    names: Vec<String>,
}

impl std::fmt::Debug for CelExpression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("CelExpression").field(&self.source).finish()
    }
}

impl CelExpression {
    pub fn compile(source: &str) -> Result<CelExpression, Unsupported> {
        let program = Program::compile(source)
            .map_err(|_| Unsupported("CEL expression that does not parse"))?;
        let names = program
            .references()
            .variables()
            .into_iter()
            .map(str::to_string)
            .collect();
        Ok(CelExpression {
            program,
            source: source.into(),
            names,
        })
    }

    /// Which per-request attributes evaluating this needs kept.
    pub fn roots(&self) -> Roots {
        Roots {
            request: self.names.iter().any(|n| n == "request"),
            response_headers: self.names.iter().any(|n| n == "response")
                && self.source.contains("headers"),
        }
    }

    fn evaluate(&self, attributes: &Attributes<'_>) -> Option<Value> {
        let mut context = Context::with_env(ENV.clone());
        for name in &self.names {
            if let Some(value) = attributes.root(name) {
                context.add_variable_from_value(name.clone(), value);
            }
        }
        self.program.execute(&context).ok()
    }

    /// A filter's verdict: an expression that fails or is not `true`
    /// rejects, as Envoy's CEL filter does.
    pub fn matches(&self, attributes: &Attributes<'_>) -> bool {
        matches!(self.evaluate(attributes), Some(Value::Bool(true)))
    }

    /// A label's value: `unknown` when the expression fails, as Istio's
    /// stats filter reports.
    pub fn label_value(&self, attributes: &Attributes<'_>) -> String {
        match self.evaluate(attributes) {
            Some(Value::String(text)) => text.to_string(),
            Some(Value::Int(n)) => n.to_string(),
            Some(Value::UInt(n)) => n.to_string(),
            Some(Value::Float(n)) => n.to_string(),
            Some(Value::Bool(b)) => b.to_string(),
            Some(Value::Bytes(bytes)) => String::from_utf8_lossy(&bytes).into_owned(),
            _ => "unknown".into(),
        }
    }
}

/// What the request carried, kept when an expression reads `request`.
#[derive(Debug, Default)]
pub struct RequestFacts {
    pub method: String,
    /// With the query.
    pub path: String,
    pub host: String,
    pub scheme: &'static str,
    pub protocol: &'static str,
    pub headers: HeaderMap,
}

/// What the response carried, kept when an expression reads `response`.
#[derive(Debug, Default)]
pub struct ResponseFacts {
    pub headers: HeaderMap,
}

/// Everything an expression can read about one request or connection.
#[derive(Debug, Default)]
pub struct Attributes<'a> {
    pub request: Option<&'a RequestFacts>,
    pub request_time: Option<SystemTime>,
    pub duration: Option<Duration>,
    pub request_size: u64,
    pub response_code: Option<u16>,
    pub response_code_details: &'a str,
    pub response_flags: &'a str,
    pub grpc_status: Option<u8>,
    pub response: Option<&'a ResponseFacts>,
    pub response_size: u64,
    pub source: Option<SocketAddr>,
    pub destination: Option<SocketAddr>,
    pub upstream: Option<SocketAddr>,
    pub mtls: bool,
    pub requested_server_name: Option<&'a str>,
    pub peer_uri_san: Option<&'a str>,
    pub route_name: Option<&'a str>,
    pub cluster_name: Option<&'a str>,
}

type Map = HashMap<String, Value>;

fn text(value: &str) -> Value {
    Value::from(value.to_string())
}

fn int(value: impl Into<i64>) -> Value {
    Value::Int(value.into())
}

fn address(map: &mut Map, address: Option<SocketAddr>) {
    if let Some(address) = address {
        map.insert("address".into(), text(&address.to_string()));
        map.insert("port".into(), int(address.port()));
    }
}

fn headers(headers: &HeaderMap) -> Value {
    let mut map = Map::new();
    for name in headers.keys() {
        let joined = headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect::<Vec<_>>()
            .join(",");
        map.insert(name.as_str().into(), Value::from(joined));
    }
    Value::from(map)
}

impl Attributes<'_> {
    fn root(&self, name: &str) -> Option<Value> {
        let mut map = Map::new();
        match name {
            "request" => self.request_map(&mut map),
            "response" => self.response_map(&mut map),
            "source" => address(&mut map, self.source),
            "destination" => address(&mut map, self.destination),
            "upstream" => address(&mut map, self.upstream),
            "connection" => {
                map.insert("mtls".into(), Value::Bool(self.mtls));
                if let Some(sni) = self.requested_server_name {
                    map.insert("requested_server_name".into(), text(sni));
                }
                if let Some(san) = self.peer_uri_san {
                    map.insert("uri_san_peer_certificate".into(), text(san));
                }
            }
            "xds" => {
                if let Some(route) = self.route_name {
                    map.insert("route_name".into(), text(route));
                }
                if let Some(cluster) = self.cluster_name {
                    map.insert("cluster_name".into(), text(cluster));
                }
            }
            _ => return None,
        }
        Some(Value::from(map))
    }

    fn request_map(&self, map: &mut Map) {
        if let Some(request) = self.request {
            let url_path = request.path.split('?').next().unwrap_or_default();
            let header = |name: &str| request.headers.get(name).and_then(|v| v.to_str().ok());
            for (key, value) in [
                ("method", Some(request.method.as_str())),
                ("path", Some(request.path.as_str())),
                ("url_path", Some(url_path)),
                ("host", Some(request.host.as_str())),
                ("scheme", Some(request.scheme)),
                ("protocol", Some(request.protocol)),
                ("id", header("x-request-id")),
                ("useragent", header("user-agent")),
                ("referer", header("referer")),
            ] {
                if let Some(value) = value {
                    map.insert(key.into(), text(value));
                }
            }
            map.insert("headers".into(), headers(&request.headers));
        }
        if let Some(time) = self.request_time
            && let Ok(since) = time.duration_since(SystemTime::UNIX_EPOCH)
        {
            map.insert("time".into(), Value::Float(since.as_secs_f64()));
        }
        if let Some(duration) = self.duration {
            map.insert("duration".into(), Value::Float(duration.as_secs_f64()));
        }
        map.insert("size".into(), int(self.request_size as i64));
        map.insert("total_size".into(), int(self.request_size as i64));
    }

    fn response_map(&self, map: &mut Map) {
        if let Some(code) = self.response_code {
            map.insert("code".into(), int(code));
        }
        map.insert("code_details".into(), text(self.response_code_details));
        map.insert("flags".into(), text(self.response_flags));
        if let Some(status) = self.grpc_status {
            map.insert("grpc_status".into(), int(status));
        }
        if let Some(response) = self.response {
            map.insert("headers".into(), headers(&response.headers));
        }
        map.insert("size".into(), int(self.response_size as i64));
        map.insert("total_size".into(), int(self.response_size as i64));
    }
}

#[cfg(test)]
mod tests;
