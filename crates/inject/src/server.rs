//! The webhook's HTTPS server: `POST /inject` (Istio's path, with or
//! without a suffix) answers AdmissionReviews; everything else is 404.

use std::convert::Infallible;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

use crate::error::InjectError;
use crate::webhook::{WebhookOptions, review};

/// The API server sends objects up to its own request limit (3 MiB);
/// anything much larger is not an AdmissionReview.
const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;
/// The API server gives up on a webhook after at most 30 seconds.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A server-side TLS config from PEM files, on the aws-lc-rs provider.
pub fn tls_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, InjectError> {
    let material_error =
        |path: &Path, error: rustls_pki_types::pem::Error| InjectError::TlsMaterial {
            path: path.to_owned(),
            reason: error.to_string(),
        };
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|error| material_error(cert, error))?;
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|error| material_error(key, error))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key_der)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Serves the webhook on `listener` until `shutdown` completes; requests
/// already being answered are finished first.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<ServerConfig>,
    options: WebhookOptions,
    shutdown: impl Future<Output = ()>,
) {
    let acceptor = TlsAcceptor::from(tls);
    let options = Arc::new(options);
    let connections = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    let watcher = connections.watcher();
                    tokio::spawn(serve_connection(acceptor.clone(), stream, options.clone(), watcher));
                }
                Err(error) => {
                    // Typically EMFILE: back off instead of spinning.
                    tracing::warn!(%error, "inject webhook: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
    if tokio::time::timeout(REQUEST_TIMEOUT, connections.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("inject webhook: connections still open at shutdown; closing them");
    }
}

async fn serve_connection(
    acceptor: TlsAcceptor,
    stream: TcpStream,
    options: Arc<WebhookOptions>,
    watcher: Watcher,
) {
    let stream = match tokio::time::timeout(REQUEST_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(error)) => return tracing::debug!(%error, "inject webhook: TLS handshake failed"),
        Err(_) => return tracing::debug!("inject webhook: TLS handshake timed out"),
    };
    let service = service_fn(move |request| {
        let options = options.clone();
        async move { Ok::<_, Infallible>(handle(request, &options).await) }
    });
    let builder = auto::Builder::new(TokioExecutor::new());
    let connection = builder.serve_connection(TokioIo::new(stream), service);
    if let Err(error) = watcher.watch(connection).await {
        tracing::debug!(%error, "inject webhook: connection ended with an error");
    }
}

async fn handle(request: Request<Incoming>, options: &WebhookOptions) -> Response<Full<Bytes>> {
    if request.uri().path() != "/inject" && !request.uri().path().starts_with("/inject/") {
        return text(StatusCode::NOT_FOUND, "not found");
    }
    if request.method() != Method::POST {
        return text(StatusCode::METHOD_NOT_ALLOWED, "POST an AdmissionReview");
    }
    let body = match Limited::new(request.into_body(), MAX_BODY_BYTES)
        .collect()
        .await
    {
        Ok(body) => body.to_bytes(),
        Err(error) => return text(StatusCode::PAYLOAD_TOO_LARGE, &error.to_string()),
    };
    match review(&body, options) {
        Ok(answer) => Response::builder()
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(full(answer.to_string()))
            .expect("a static response is valid"),
        Err(error) => text(StatusCode::BAD_REQUEST, &error.to_string()),
    }
}

fn text(status: StatusCode, message: &str) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, "text/plain")
        .body(full(format!("{message}\n")))
        .expect("a static response is valid")
}

fn full(body: String) -> Full<Bytes> {
    Full::new(Bytes::from(body))
}
