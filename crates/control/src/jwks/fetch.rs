//! One JWKS fetch over HTTP or HTTPS, as istiod's resolver does it: a GET
//! bounded in time and size, a few redirects followed, and the body checked
//! to be a JWKS (a JSON object with a `keys` array) before it is used. For
//! a rule without `jwksUri`, the URI is first read from the issuer's OpenID
//! configuration (`ISSUER/.well-known/openid-configuration`).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use http::{StatusCode, Uri, header};
use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::{Bytes, Incoming};
use hyper_util::rt::TokioIo;
use rustls::RootCertStore;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::JwksSource;

/// Larger bodies are refused: a JWKS holds a handful of keys.
pub const MAX_JWKS_BYTES: usize = 1 << 20;
/// As many redirects as a careful client follows before giving up.
const MAX_REDIRECTS: usize = 5;
const USER_AGENT: &str = concat!("trellis-control-plane/", env!("CARGO_PKG_VERSION"));

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("invalid URI {uri:?}: {why}")]
    InvalidUri { uri: String, why: String },
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("connecting to {authority}: {source}")]
    Connect {
        authority: String,
        source: std::io::Error,
    },
    #[error("TLS handshake with {authority}: {source}")]
    Tls {
        authority: String,
        source: std::io::Error,
    },
    #[error("HTTP: {0}")]
    Http(#[from] hyper::Error),
    #[error("building the request: {0}")]
    Request(#[from] http::Error),
    #[error("answered {0}")]
    Status(StatusCode),
    #[error("redirected more than {MAX_REDIRECTS} times")]
    TooManyRedirects,
    #[error("reading the body: {0}")]
    Body(String),
    #[error("not a JWKS: {0}")]
    NotJwks(String),
    #[error("OpenID discovery: {0}")]
    Discovery(String),
}

/// Where keys come from; tests substitute their own.
pub trait FetchJwks: Send + Sync + 'static {
    /// The JWKS of `source` in canonical JSON, or why it could not be had
    /// within `timeout`.
    fn fetch(
        &self,
        source: &JwksSource,
        timeout: Duration,
    ) -> impl Future<Output = Result<String, FetchError>> + Send;
}

/// Fetches over HTTP/1.1, with TLS (rustls, aws-lc-rs) for `https`.
#[derive(Clone)]
pub struct HttpFetcher {
    tls: TlsConnector,
}

impl HttpFetcher {
    /// Trusts the system's roots, as istiod does; Mozilla's roots
    /// (webpki-roots) when the system has none (e.g. a distroless image).
    pub fn with_system_roots() -> HttpFetcher {
        let mut roots = RootCertStore::empty();
        let system = rustls_native_certs::load_native_certs();
        for error in &system.errors {
            tracing::debug!(%error, "reading a system root certificate");
        }
        let (added, _ignored) = roots.add_parsable_certificates(system.certs);
        if added == 0 {
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        }
        HttpFetcher::with_roots(roots)
    }

    pub fn with_roots(roots: RootCertStore) -> HttpFetcher {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("aws-lc-rs supports the default protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        HttpFetcher {
            tls: TlsConnector::from(Arc::new(config)),
        }
    }

    async fn resolve(&self, source: &JwksSource) -> Result<String, FetchError> {
        let uri = match source {
            JwksSource::Uri(uri) => uri.clone(),
            JwksSource::Discovery { issuer } => self.discover(issuer).await?,
        };
        canonical_jwks(&self.follow(&uri).await?)
    }

    /// The `jwks_uri` of `issuer`'s OpenID configuration.
    async fn discover(&self, issuer: &str) -> Result<String, FetchError> {
        let configuration = format!(
            "{}/.well-known/openid-configuration",
            issuer.trim_end_matches('/')
        );
        let body = self.follow(&configuration).await?;
        let document: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|e| FetchError::Discovery(format!("{configuration}: {e}")))?;
        document
            .get("jwks_uri")
            .and_then(serde_json::Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| FetchError::Discovery(format!("{configuration} has no jwks_uri")))
    }

    /// GETs `uri`, following redirects, and returns the body of the final
    /// successful answer.
    async fn follow(&self, uri: &str) -> Result<Bytes, FetchError> {
        let mut target = parse_uri(uri)?;
        for _ in 0..=MAX_REDIRECTS {
            let response = self.get(&target).await?;
            let status = response.status();
            if status.is_redirection()
                && let Some(location) = response.headers().get(header::LOCATION)
            {
                target = redirect_target(&target, location)?;
                continue;
            }
            if !status.is_success() {
                return Err(FetchError::Status(status));
            }
            let body = Limited::new(response.into_body(), MAX_JWKS_BYTES)
                .collect()
                .await
                .map_err(|error| FetchError::Body(error.to_string()))?;
            return Ok(body.to_bytes());
        }
        Err(FetchError::TooManyRedirects)
    }

    async fn get(&self, uri: &Uri) -> Result<http::Response<Incoming>, FetchError> {
        let authority = uri.authority().map(|a| a.to_string()).unwrap_or_default();
        let host = uri.host().unwrap_or_default();
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let https = uri.scheme() == Some(&http::uri::Scheme::HTTPS);
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let tcp = TcpStream::connect((host, port))
            .await
            .map_err(|source| FetchError::Connect {
                authority: authority.clone(),
                source,
            })?;
        let request = http::Request::get(uri.path_and_query().map_or("/", |p| p.as_str()))
            .header(header::HOST, &authority)
            .header(header::ACCEPT, "application/json")
            .header(header::USER_AGENT, USER_AGENT)
            .body(Empty::<Bytes>::new())?;
        if !https {
            return send(tcp, request).await;
        }
        let server_name =
            ServerName::try_from(host.to_string()).map_err(|e| FetchError::InvalidUri {
                uri: uri.to_string(),
                why: e.to_string(),
            })?;
        let tls = self
            .tls
            .connect(server_name, tcp)
            .await
            .map_err(|source| FetchError::Tls { authority, source })?;
        send(tls, request).await
    }
}

impl FetchJwks for HttpFetcher {
    async fn fetch(&self, source: &JwksSource, timeout: Duration) -> Result<String, FetchError> {
        tokio::time::timeout(timeout, self.resolve(source))
            .await
            .map_err(|_| FetchError::Timeout(timeout))?
    }
}

async fn send<S>(
    stream: S,
    request: http::Request<Empty<Bytes>>,
) -> Result<http::Response<Incoming>, FetchError>
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    // The connection task ends with the response body (or the timeout
    // dropping the sender).
    tokio::spawn(connection);
    Ok(sender.send_request(request).await?)
}

fn parse_uri(uri: &str) -> Result<Uri, FetchError> {
    let invalid = |why: &str| FetchError::InvalidUri {
        uri: uri.to_string(),
        why: why.to_string(),
    };
    let parsed: Uri = uri
        .parse()
        .map_err(|e: http::uri::InvalidUri| invalid(&e.to_string()))?;
    match parsed.scheme_str() {
        Some("http" | "https") => {}
        _ => return Err(invalid("the scheme must be http or https")),
    }
    if parsed.host().is_none_or(str::is_empty) {
        return Err(invalid("no host"));
    }
    Ok(parsed)
}

/// A `Location` resolved against the URI that answered: absolute, or a
/// path on the same server.
fn redirect_target(from: &Uri, location: &http::HeaderValue) -> Result<Uri, FetchError> {
    let location = location.to_str().map_err(|_| FetchError::InvalidUri {
        uri: format!("{location:?}"),
        why: "the redirect location is not text".into(),
    })?;
    if location.starts_with('/') && !location.starts_with("//") {
        let scheme = from.scheme_str().unwrap_or("http");
        let authority = from.authority().map(|a| a.as_str()).unwrap_or_default();
        return parse_uri(&format!("{scheme}://{authority}{location}"));
    }
    parse_uri(location)
}

/// `body` re-serialized canonically (object keys sorted), so that a server
/// that reorders or re-indents the same keys causes no push.
fn canonical_jwks(body: &[u8]) -> Result<String, FetchError> {
    let document: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| FetchError::NotJwks(e.to_string()))?;
    if !document
        .get("keys")
        .is_some_and(serde_json::Value::is_array)
    {
        return Err(FetchError::NotJwks("no \"keys\" array".into()));
    }
    Ok(document.to_string())
}

#[cfg(test)]
#[path = "fetch_tests.rs"]
mod tests;
