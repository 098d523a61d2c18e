//! `trellis demo-app`: the stand-in for a Deployment's container in local
//! mode. An HTTP server that answers with JSON naming its service, version
//! and pod, and nests the answers of the calls it makes (Bookinfo's call
//! graph for Bookinfo's service names, none otherwise), so that one request
//! to productpage shows the whole call tree.

mod call_graph;
pub mod ext_authz;
mod outbound;
mod reply;
mod server;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};

use trellis_api::parse_duration;

pub use outbound::{OutboundProxy, OutboundProxyError};
pub use reply::DemoReply;
use server::{Behaviour, DemoApp, Identity};

/// `trellis demo-app` command line.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoAppArgs {
    /// Service the app plays. Bookinfo's names (productpage, details,
    /// reviews, ratings) get Bookinfo's calls; any other name is an echo.
    #[arg(long)]
    pub service: String,
    /// Version reported in replies (reviews v2 and v3 call ratings, v1 not).
    #[arg(long, default_value = "v1")]
    pub version: String,
    /// Pod name reported in replies.
    #[arg(long)]
    pub pod: String,
    #[arg(long, default_value = "default")]
    pub namespace: String,
    /// Address to serve on; repeat for several ports.
    #[arg(long = "listen", value_name = "IP:PORT", required = true)]
    pub listen: Vec<SocketAddr>,
    /// HTTP proxy for outbound calls (the sidecar's outbound port). Without
    /// one, calls connect straight to the named host.
    #[arg(long, value_name = "URL", env = "HTTP_PROXY")]
    pub outbound_proxy: Option<OutboundProxy>,
    /// Extra latency added to every request (e.g. 50ms).
    #[arg(long, value_parser = parse_duration, default_value = "0s")]
    pub latency: Duration,
    /// Share of requests (0..1) answered with an injected 500.
    #[arg(long, value_parser = parse_error_rate, default_value = "0")]
    pub error_rate: f64,
}

/// Why an error rate was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid error rate {0:?}: expected a number from 0 to 1")]
pub struct ErrorRateError(String);

/// Parses a share of requests: a number in `0..=1`.
pub fn parse_error_rate(text: &str) -> Result<f64, ErrorRateError> {
    match text.trim().parse::<f64>() {
        Ok(rate) if (0.0..=1.0).contains(&rate) => Ok(rate),
        _ => Err(ErrorRateError(text.to_owned())),
    }
}

/// Runs the demo app until SIGTERM or SIGINT.
pub async fn run_demo_app(args: DemoAppArgs) -> anyhow::Result<()> {
    let mut listeners = Vec::with_capacity(args.listen.len());
    for address in &args.listen {
        let listener = TcpListener::bind(address)
            .await
            .with_context(|| format!("demo app: binding {address}"))?;
        listeners.push(listener);
    }
    let mut terminate = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("installing SIGINT handler")?;
    let identity = Identity {
        service: args.service,
        version: args.version,
        pod: args.pod,
        namespace: args.namespace,
    };
    let behaviour = Behaviour {
        latency: args.latency,
        error_rate: args.error_rate,
    };
    let app = Arc::new(DemoApp::new(identity, behaviour, args.outbound_proxy));
    let stop = async move {
        tokio::select! {
            _ = terminate.recv() => {}
            _ = interrupt.recv() => {}
        }
    };
    server::serve(app, listeners, stop).await;
    Ok(())
}

#[cfg(test)]
mod tests;
