//! The Trellis data plane: an xDS-driven HTTP proxy that runs beside each
//! workload, with mesh mTLS, Istio routing semantics, and Istio's metrics.
#![deny(unsafe_code)]
#![deny(rust_2018_idioms)]

mod access_log;
mod admin;
mod attempt;
mod attributes;
mod authorize;
#[cfg(feature = "bench-support")]
#[doc(hidden)]
pub mod bench_support;
mod body;
mod circuit_breaker;
mod client_hello;
mod cluster;
mod config_follower;
mod connection;
mod connector;
mod cors;
mod dns;
mod drain;
mod ext_authz;
mod failure;
mod fault;
mod filter_chain_match;
mod forward;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod gateway_tls;
mod grpc_messages;
mod hash_policy;
mod headers;
mod http1_framing;
mod http_inspector;
pub mod identity;
mod in_use;
mod inspect;
mod jwt;
mod keepalive;
mod listener;
mod listeners;
mod load_balancer;
pub mod log_levels;
mod merged_metrics;
mod metric_labels;
mod metrics;
mod mirror;
mod options;
mod original_dst;
mod outlier;
mod path_normalization;
mod peer_metadata;
mod priority;
mod rbac;
mod recording;
mod replay;
mod request_line;
mod response_flags;
mod retry;
mod rewrite;
mod route;
mod side_call;
mod state;
mod stats_filter;
mod tcp_metrics;
mod tcp_proxy;
mod tcp_weighted;
mod tls_context;
mod tls_origination;
mod trace;
mod unsupported;
mod upstream_bind;
mod xds_address;
mod xds_stats;

use std::net::SocketAddr;
use std::sync::Arc;

pub use options::{InterceptionMode, ProxyOptions, ProxyType};
use trellis_ca::SpiffeId;
use trellis_xds::NodeInfo;
use trellis_xds::client::AdsClient;
use trellis_xds::node::{Interception, ProxyKind};

pub use state::ProxyState;

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("the token in {0} is not a valid header value")]
    InvalidToken(std::path::PathBuf),
    #[error("cannot reach the control plane: {0}")]
    ControlPlane(#[from] trellis_ca::CaError),
    #[error(transparent)]
    TrustDomain(#[from] trellis_ca::InvalidTrustDomain),
    #[error("{0}")]
    AppMetrics(String),
    #[error("cannot serve {address}: {source}")]
    Bind {
        address: SocketAddr,
        source: std::io::Error,
    },
}

/// Starts the proxy and returns its state; the work runs on spawned tasks.
pub async fn start(options: &ProxyOptions) -> Result<Arc<ProxyState>, ProxyError> {
    let read = |path: &std::path::Path| {
        std::fs::read_to_string(path).map_err(|source| ProxyError::Read {
            path: path.to_path_buf(),
            source,
        })
    };
    let app_metrics = match &options.app_prometheus {
        Some(json) => merged_metrics::AppScrape::parse(json)
            .and_then(|app| app.target(options.ip))
            .map_err(ProxyError::AppMetrics)?,
        None => None,
    };
    let root_pem = read(&options.root_cert)?;
    let token = read(&options.token_file)?.trim().to_string();
    let node = node_info(options);
    let trust = trellis_ca::TrustDomains::new(
        &options.trust_domain,
        options.trust_domain_aliases.iter().cloned(),
    )?;
    let identity = identity::Identity::trusting(
        SpiffeId::new(
            &options.trust_domain,
            &options.namespace,
            &options.service_account,
        ),
        trust,
    );
    let channel = trellis_ca::ca_channel(&options.discovery_address, &root_pem)?;
    let ads = AdsClient::new(channel.clone(), node.to_node())
        .with_bearer_token(&token)
        .map_err(|_| ProxyError::InvalidToken(options.token_file.clone()))?;
    tokio::spawn(identity.clone().run(channel, token, root_pem));
    let state = ProxyState::new(identity, node.clone(), Arc::default());
    if let Some(dir) = &options.credentials_dir {
        state.credentials.set_dir(dir.clone());
    }
    tokio::spawn(ads.run(state.clone()));
    // Under capture, inbound traffic to any port of the workload's address
    // reaches it, so the admin port (config, quit) stays on loopback as in Istio.
    let admin_ip = match node.interception {
        Interception::Redirect => std::net::IpAddr::from([127, 0, 0, 1]),
        Interception::None => options.ip,
    };
    for (ip, port, router) in [
        (
            admin_ip,
            options.admin_port,
            admin::admin_router(state.clone()),
        ),
        (
            options.ip,
            options.stats_port,
            admin::stats_router(state.clone()),
        ),
        (
            options.ip,
            options.health_port,
            admin::health_router(state.clone()),
        ),
        (
            options.ip,
            options.status_port,
            admin::status_router(state.clone(), app_metrics),
        ),
    ] {
        let address = SocketAddr::new(ip, port);
        admin::serve(address, router)
            .await
            .map_err(|source| ProxyError::Bind { address, source })?;
    }
    Ok(state)
}

fn node_info(options: &ProxyOptions) -> NodeInfo {
    NodeInfo {
        kind: match options.proxy_type {
            ProxyType::Sidecar => ProxyKind::Sidecar,
            ProxyType::Router => ProxyKind::Router,
        },
        ip: options.ip,
        pod_name: options.pod_name.clone(),
        namespace: options.namespace.clone(),
        service_account: options.service_account.clone(),
        workload_name: options.workload_name.clone(),
        labels: options.labels.iter().cloned().collect(),
        interception: match options.interception_mode {
            options::InterceptionMode::Redirect => Interception::Redirect,
            options::InterceptionMode::None => Interception::None,
        },
        app_ports: options.app_ports.iter().copied().collect(),
        outbound_port: options.outbound_port,
        locality: options.locality.clone().unwrap_or_default(),
    }
}
