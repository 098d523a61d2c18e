//! Istio's `IstioCertificateService` over gRPC: authenticate the caller,
//! then sign its CSR for the identity it authenticated as.

use std::sync::Arc;
use std::time::Duration;

use tonic::{Request, Response, Status};

use crate::authority::{DEFAULT_WORKLOAD_TTL, MeshCa};
use crate::error::CaError;
use crate::metrics::CaMetrics;
use crate::proto::istio_certificate_service_server::{
    IstioCertificateService, IstioCertificateServiceServer,
};
use crate::proto::{IstioCertificateRequest, IstioCertificateResponse};
use crate::spiffe::SpiffeId;

/// Decides which identity, if any, a bearer token stands for.
pub trait Authenticator: Send + Sync + 'static {
    /// The identity `token` authenticates, or `None` if it is unknown.
    fn authenticate(&self, token: &str) -> Option<SpiffeId>;
}

/// The certificate API served on the control plane's TLS port.
pub struct CertificateService {
    ca: Arc<MeshCa>,
    authenticator: Arc<dyn Authenticator>,
    metrics: CaMetrics,
}

impl CertificateService {
    pub fn new(ca: Arc<MeshCa>, authenticator: Arc<dyn Authenticator>) -> CertificateService {
        let metrics = CaMetrics::for_ca(&ca);
        CertificateService {
            ca,
            authenticator,
            metrics,
        }
    }

    /// What this service counts (clones share the counts), for the
    /// control plane's `/metrics`.
    pub fn metrics(&self) -> &CaMetrics {
        &self.metrics
    }

    /// Wraps the service for `tonic::transport::Server::add_service`.
    pub fn into_server(self) -> IstioCertificateServiceServer<CertificateService> {
        IstioCertificateServiceServer::new(self)
    }

    fn authenticate<T>(&self, request: &Request<T>) -> Result<SpiffeId, Status> {
        let token = bearer_token(request)
            .ok_or_else(|| Status::unauthenticated("missing \"authorization: Bearer\" token"))?;
        self.authenticator
            .authenticate(token)
            .ok_or_else(|| Status::unauthenticated("unknown token"))
    }
}

#[tonic::async_trait]
impl IstioCertificateService for CertificateService {
    async fn create_certificate(
        &self,
        request: Request<IstioCertificateRequest>,
    ) -> Result<Response<IstioCertificateResponse>, Status> {
        self.metrics.csr_received();
        let identity = match self.authenticate(&request) {
            Ok(identity) => identity,
            Err(status) => {
                self.metrics.authentication_failed();
                tracing::warn!(peer = ?request.remote_addr(), reason = status.message(), "certificate request refused");
                return Err(status);
            }
        };
        let request = request.into_inner();
        let ttl = requested_ttl(request.validity_duration);
        let cert_chain = self
            .ca
            .sign_workload_csr(&request.csr, &identity, ttl)
            .map_err(|e| {
                self.metrics.signing_failed(&e);
                signing_status(&identity, e)
            })?;
        self.metrics.issued();
        tracing::info!(%identity, ttl_secs = ttl.as_secs(), "issued workload certificate");
        Ok(Response::new(IstioCertificateResponse { cert_chain }))
    }
}

fn bearer_token<T>(request: &Request<T>) -> Option<&str> {
    bearer_token_in(request.metadata().as_ref())
}

/// The token from `authorization: Bearer <token>`; the scheme is
/// case-insensitive (RFC 7235).
pub fn bearer_token_in(headers: &tonic::codegen::http::HeaderMap) -> Option<&str> {
    let value = headers.get("authorization")?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Istio sends the lifetime in seconds; zero or less means "CA default".
fn requested_ttl(validity_seconds: i64) -> Duration {
    u64::try_from(validity_seconds)
        .ok()
        .filter(|&secs| secs > 0)
        .map_or(DEFAULT_WORKLOAD_TTL, Duration::from_secs)
}

fn signing_status(identity: &SpiffeId, error: CaError) -> Status {
    match error {
        CaError::InvalidCsr(_) => Status::invalid_argument(error.to_string()),
        // The authenticator vouched for an identity this CA may not sign:
        // a configuration problem, not the caller's fault.
        CaError::InvalidIdentity(_) | CaError::ForeignTrustDomain { .. } => {
            tracing::error!(%identity, %error, "authenticated identity cannot be signed");
            Status::permission_denied(error.to_string())
        }
        other => {
            tracing::error!(%identity, error = %other, "certificate signing failed");
            Status::internal("certificate signing failed")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request_with_authorization(value: &str) -> Request<()> {
        let mut request = Request::new(());
        request
            .metadata_mut()
            .insert("authorization", value.parse().unwrap());
        request
    }

    #[test]
    fn bearer_token_parsing() {
        let token = |v: &str| bearer_token(&request_with_authorization(v)).map(str::to_string);
        assert_eq!(token("Bearer abc").as_deref(), Some("abc"));
        assert_eq!(token("bearer abc").as_deref(), Some("abc"));
        assert_eq!(token("Basic abc"), None);
        assert_eq!(token("Bearer "), None);
        assert_eq!(token("abc"), None);
        assert_eq!(bearer_token(&Request::new(())), None);
    }

    #[test]
    fn non_positive_validity_means_default() {
        assert_eq!(requested_ttl(0), DEFAULT_WORKLOAD_TTL);
        assert_eq!(requested_ttl(-5), DEFAULT_WORKLOAD_TTL);
        assert_eq!(requested_ttl(3600), Duration::from_secs(3600));
    }
}
