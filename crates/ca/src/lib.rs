//! Trellis's mesh certificate authority and the workload side of mTLS.
//!
//! - [`MeshCa`] keeps a self-signed root on disk and signs SPIFFE workload
//!   certificates (`spiffe://TD/ns/NS/sa/SA`), ignoring whatever names a CSR
//!   asks for: the identity always comes from authentication.
//! - [`CertificateService`] serves Istio's `istio.v1.auth.IstioCertificateService`
//!   so Istio agents and Trellis proxies alike can fetch certificates;
//!   [`StaticTokens`] authenticates callers by bearer token in local mode.
//!   [`CaMetrics`] counts its requests with Citadel's metric names.
//! - [`request_certificate`] and [`CertificateRequest`] are the workload side:
//!   the private key is generated and kept in the workload's process.
//! - [`server_config`] and [`client_config`] build rustls mTLS configs that
//!   verify peers by chain to the mesh root and by SPIFFE identity, within
//!   the mesh's [`TrustDomains`] (its own and its aliases).

#![deny(unsafe_code)]
#![deny(rust_2018_idioms)]

mod authority;
mod client;
mod error;
mod files;
mod metrics;
mod service;
mod spiffe;
mod tls;
mod tokens;
mod trust_domains;

/// Types and stubs generated from `proto/ca.proto`.
pub mod proto {
    tonic::include_proto!("istio.v1.auth");
}

pub use authority::{
    CA_CERT_FILE, CA_KEY_FILE, CERT_CHAIN_FILE, DEFAULT_WORKLOAD_TTL, MAX_WORKLOAD_TTL, MeshCa,
    ROOT_CERT_FILE, ROOT_KEY_FILE, SERVER_CERT_TTL,
};
pub use client::{
    CONTROL_PLANE_SERVER_NAME, CertificateRequest, WorkloadCertificate, ca_channel,
    request_certificate,
};
pub use error::CaError;
pub use metrics::CaMetrics;
pub use service::{Authenticator, CertificateService, bearer_token_in};
pub use spiffe::{SpiffeId, SpiffeIdError};
pub use tls::{
    PeerIdentityError, client_config, client_config_trusting, peer_identity, server_config,
    server_config_trusting,
};
pub use tokens::{StaticTokens, TokenEntry, generate_token, write_tokens_file};
pub use trust_domains::{InvalidTrustDomain, TrustDomains};
