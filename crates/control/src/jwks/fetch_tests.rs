use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use rustls::RootCertStore;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use super::*;

const JWKS: &str =
    r#"{ "keys": [ {"kty": "EC", "crv": "P-256", "x": "AQ", "y": "Ag", "kid": "a"} ] }"#;
const TIMEOUT: Duration = Duration::from_secs(5);

fn routes() -> Router {
    Router::new()
        .route("/jwks", get(|| async { JWKS }))
        .route(
            "/moved",
            get(|| async { (StatusCode::FOUND, [(header::LOCATION, "/jwks")]) }),
        )
        .route(
            "/loop",
            get(|| async { (StatusCode::FOUND, [(header::LOCATION, "/loop")]) }),
        )
        .route("/html", get(|| async { "<html>sign in</html>" }))
        .route(
            "/issuer/.well-known/openid-configuration",
            get(|headers: axum::http::HeaderMap| async move {
                let host = headers[header::HOST].to_str().unwrap().to_string();
                format!(r#"{{"issuer": "http://{host}/issuer", "jwks_uri": "http://{host}/jwks"}}"#)
            }),
        )
        .route(
            "/no-jwks-uri/.well-known/openid-configuration",
            get(|| async { r#"{"issuer": "x"}"# }),
        )
        .route("/no-keys", get(|| async { r#"{"issuer": "x"}"# }))
        .route(
            "/huge",
            get(|| async { format!(r#"{{"keys": [], "pad": "{}"}}"#, "x".repeat(MAX_JWKS_BYTES)) }),
        )
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                JWKS.into_response()
            }),
        )
}

async fn http_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, routes()).await });
    address
}

/// An HTTPS server for `localhost` with a self-signed certificate, and the
/// roots that trust it.
async fn https_server() -> (SocketAddr, RootCertStore) {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let cert = CertificateDer::from(certified.cert.der().to_vec());
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        certified.signing_key.serialize_der(),
    ));
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key)
        .unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = TowerToHyperService::new(routes());
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    let mut roots = RootCertStore::empty();
    roots.add(cert).unwrap();
    (address, roots)
}

fn at(uri: impl Into<String>) -> JwksSource {
    JwksSource::Uri(uri.into())
}

fn fetcher() -> HttpFetcher {
    HttpFetcher::with_roots(RootCertStore::empty())
}

#[tokio::test]
async fn fetches_a_jwks_in_canonical_form() {
    let server = http_server().await;
    let keys = fetcher()
        .fetch(&at(format!("http://{server}/jwks")), TIMEOUT)
        .await
        .unwrap();
    assert_eq!(
        keys,
        r#"{"keys":[{"crv":"P-256","kid":"a","kty":"EC","x":"AQ","y":"Ag"}]}"#
    );
}

#[tokio::test]
async fn follows_redirects_a_bounded_number_of_times() {
    let server = http_server().await;
    let moved = fetcher()
        .fetch(&at(format!("http://{server}/moved")), TIMEOUT)
        .await;
    assert!(moved.unwrap().contains(r#""kid":"a""#));
    let looping = fetcher()
        .fetch(&at(format!("http://{server}/loop")), TIMEOUT)
        .await;
    assert!(matches!(looping, Err(FetchError::TooManyRedirects)));
}

#[tokio::test]
async fn refuses_what_is_not_a_jwks() {
    let server = http_server().await;
    let fetch = |path: &'static str| async move {
        fetcher()
            .fetch(&at(format!("http://{server}{path}")), TIMEOUT)
            .await
            .unwrap_err()
    };
    assert!(matches!(fetch("/html").await, FetchError::NotJwks(_)));
    assert!(matches!(fetch("/no-keys").await, FetchError::NotJwks(_)));
    assert!(matches!(fetch("/huge").await, FetchError::Body(_)));
    assert!(matches!(
        fetch("/absent").await,
        FetchError::Status(StatusCode::NOT_FOUND)
    ));
}

#[tokio::test]
async fn gives_up_after_the_timeout() {
    let server = http_server().await;
    let error = fetcher()
        .fetch(
            &at(format!("http://{server}/slow")),
            Duration::from_millis(200),
        )
        .await
        .unwrap_err();
    assert!(matches!(error, FetchError::Timeout(_)), "{error}");
}

#[tokio::test]
async fn reports_unreachable_servers_and_bad_uris() {
    let closed = {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap()
    };
    let error = fetcher()
        .fetch(&at(format!("http://{closed}/jwks")), TIMEOUT)
        .await
        .unwrap_err();
    assert!(matches!(error, FetchError::Connect { .. }), "{error}");
    for uri in ["ftp://example.com/jwks", "http:///jwks", "not a uri"] {
        let error = fetcher().fetch(&at(uri), TIMEOUT).await.unwrap_err();
        assert!(
            matches!(error, FetchError::InvalidUri { .. }),
            "{uri}: {error}"
        );
    }
}

#[tokio::test]
async fn fetches_over_https_from_trusted_servers_only() {
    let (server, roots) = https_server().await;
    let uri = at(format!("https://localhost:{}/jwks", server.port()));
    let keys = HttpFetcher::with_roots(roots)
        .fetch(&uri, TIMEOUT)
        .await
        .unwrap();
    assert!(keys.contains(r#""kid":"a""#));
    let untrusted = fetcher().fetch(&uri, TIMEOUT).await.unwrap_err();
    assert!(matches!(untrusted, FetchError::Tls { .. }), "{untrusted}");
}

#[tokio::test]
async fn discovers_the_jwks_uri_from_the_issuer() {
    let server = http_server().await;
    let discovery = |issuer: String| JwksSource::Discovery { issuer };
    let keys = fetcher()
        .fetch(&discovery(format!("http://{server}/issuer/")), TIMEOUT)
        .await
        .unwrap();
    assert!(keys.contains(r#""kid":"a""#));
    let error = fetcher()
        .fetch(&discovery(format!("http://{server}/no-jwks-uri")), TIMEOUT)
        .await
        .unwrap_err();
    assert!(matches!(error, FetchError::Discovery(_)), "{error}");
}
