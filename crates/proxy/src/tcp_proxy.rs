//! Envoy's tcp_proxy network filter: connects the downstream connection to
//! one endpoint of a cluster (or, for an ORIGINAL_DST cluster, to where the
//! client originally sent it) and copies bytes both ways, passing each
//! side's half-close on, until both are done or the connection sits idle.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::{
    TcpProxy, tcp_proxy::ClusterSpecifier,
};
use prost::Message;
use tokio::io::{AsyncRead, AsyncWrite};
use tower_service::Service as _;

use copy::copy_both_ways;

use crate::access_log::{AccessLogSpec, AccessLogger, LogEntry};
use crate::attributes::Attributes;
use crate::cluster::Cluster;
use crate::connection::Addresses;
use crate::connector::{MeshConnector, UpstreamStream, UpstreamTls};
use crate::metric_labels::{Service, Shared, Workload};
use crate::metrics::{Reporter, RequestLabels};
use crate::rbac::{ConnectionFacts, RbacFilter};
use crate::state::ProxyState;
use crate::stats_filter::StatsSpec;
use crate::tcp_metrics::TcpLabels;
use crate::tcp_weighted::WeightedClusters;
use crate::unsupported::{Unsupported, reject_if};

/// What a sidecar offers when it carries opaque TCP over mesh mTLS (the
/// cluster's ALPN says HTTP), so that the peer, sniffing an undeclared
/// port, picks its TCP chain.
const MESH_ALPN_TCP: &[u8] = b"istio";

#[derive(Debug)]
pub struct TcpProxySpec {
    pub stat_prefix: String,
    /// The cluster, or with `weighted` the first of the split.
    pub cluster: String,
    /// A split by weight, chosen per connection (see tcp_weighted.rs).
    pub weighted: Option<WeightedClusters>,
    /// No bytes either way for this long closes the connection (`None`: never).
    pub idle_timeout: Option<Duration>,
    pub access_logs: Vec<AccessLogSpec>,
    /// The chain's network RBAC filters, run in order on each connection.
    pub rbac: Vec<RbacFilter>,
    /// The chain's stats filter; `None`: no Istio TCP metrics.
    pub stats: Option<Arc<StatsSpec>>,
}

impl TcpProxySpec {
    pub fn compile(config: &[u8]) -> Result<TcpProxySpec, Unsupported> {
        let config = TcpProxy::decode(config).map_err(|_| Unsupported("undecodable tcp_proxy"))?;
        let (cluster, weighted) = match &config.cluster_specifier {
            Some(ClusterSpecifier::Cluster(cluster)) => (cluster.clone(), None),
            Some(ClusterSpecifier::WeightedClusters(weighted)) => {
                let weighted = WeightedClusters::compile(weighted)?;
                (weighted.first().to_owned(), Some(weighted))
            }
            None => return Err(Unsupported("tcp_proxy without a cluster")),
        };
        reject_if(
            config.tunneling_config.is_some(),
            "tcp_proxy.tunneling_config",
        )?;
        reject_if(config.metadata_match.is_some(), "tcp_proxy.metadata_match")?;
        reject_if(!config.hash_policy.is_empty(), "tcp_proxy.hash_policy")?;
        reject_if(
            config.max_downstream_connection_duration.is_some(),
            "tcp_proxy.max_downstream_connection_duration",
        )?;
        // Envoy's default is one hour; an explicit zero disables it.
        let idle_timeout = match &config.idle_timeout {
            None => Some(Duration::from_secs(3600)),
            Some(d) => Some(Duration::new(
                d.seconds.max(0) as u64,
                d.nanos.max(0) as u32,
            ))
            .filter(|d| !d.is_zero()),
        };
        let access_logs = config
            .access_log
            .iter()
            .map(AccessLogSpec::compile)
            .collect::<Result<_, _>>()?;
        Ok(TcpProxySpec {
            stat_prefix: config.stat_prefix.clone(),
            cluster,
            weighted,
            idle_timeout,
            access_logs,
            rbac: Vec::new(),
            stats: None,
        })
    }
}

/// Why a connection ended early, as Envoy's response flags name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Refusal {
    /// The cluster is unknown (NC).
    NoCluster,
    /// No endpoint to connect to: an empty cluster such as BlackHoleCluster (UH).
    NoHealthyUpstream,
    /// The original destination is the proxy itself (NR: no route).
    Loop,
    /// Connecting (or the upstream TLS handshake) failed (UF).
    ConnectFailure,
    /// A network RBAC filter denied the connection (RBAC, as the HTTP filter).
    AccessDenied,
}

impl Refusal {
    fn flag(self) -> &'static str {
        match self {
            Refusal::NoCluster => "NC",
            Refusal::NoHealthyUpstream => "UH",
            Refusal::Loop => "NR",
            Refusal::ConnectFailure => "UF",
            Refusal::AccessDenied => "RBAC",
        }
    }
}

/// Who is on the other end of a downstream connection, as the network
/// RBAC filters see it.
#[derive(Clone, Copy, Debug)]
pub struct Downstream<'a> {
    pub addresses: Addresses,
    /// The verified mTLS peer's URI SAN.
    pub principal: Option<&'a str>,
    /// The ClientHello's server name.
    pub server_name: Option<&'a str>,
}

/// Carries one downstream connection, once the network RBAC filters let
/// it through; `labels` are what its requests would report (see
/// connection.rs), completed here once the upstream is known.
pub async fn serve<S>(
    stream: S,
    spec: &TcpProxySpec,
    downstream: Downstream<'_>,
    labels: RequestLabels,
    state: Arc<ProxyState>,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let start = (SystemTime::now(), Instant::now());
    let loggers = state.access_logs.loggers(&spec.access_logs);
    let mut labels = TcpLabels::from_request(labels);
    let cluster = spec.pick_cluster();
    let mut log = ConnectionLog {
        cluster,
        addresses: downstream.addresses,
        upstream: None,
        flags: "-",
        termination_details: None,
        bytes: (0, 0),
    };
    match authorize(&spec.rbac, &downstream) {
        Err(details) => {
            // Closed without a byte read: Envoy's NoFlush close.
            log.flags = Refusal::AccessDenied.flag();
            log.termination_details = Some(details);
            report_opened(spec, &labels, &log, &downstream, &state);
        }
        Ok(()) => proxy(stream, spec, &mut labels, &mut log, &downstream, &state).await,
    }
    labels.response_flags = log.flags;
    let attributes = attributes(&log, &downstream);
    if let Some(stats) = &spec.stats {
        state
            .metrics
            .tcp
            .closed(&labels, stats, &attributes, log.bytes);
    }
    log.write(&loggers, &attributes, start);
}

/// What tag overrides read of a connection.
fn attributes<'a>(log: &ConnectionLog<'a>, downstream: &'a Downstream<'_>) -> Attributes<'a> {
    Attributes {
        source: Some(downstream.addresses.remote),
        destination: Some(downstream.addresses.local),
        upstream: log.upstream,
        mtls: downstream.principal.is_some(),
        requested_server_name: downstream.server_name,
        peer_uri_san: downstream.principal,
        response_flags: log.flags,
        cluster_name: Some(log.cluster),
        ..Default::default()
    }
}

fn report_opened(
    spec: &TcpProxySpec,
    labels: &TcpLabels,
    log: &ConnectionLog<'_>,
    downstream: &Downstream<'_>,
    state: &ProxyState,
) {
    if let Some(stats) = &spec.stats {
        let attributes = attributes(log, downstream);
        state.metrics.tcp.opened(labels, stats, &attributes);
    }
}

/// Runs the network RBAC filters in order; `Err` holds the denial's
/// connection termination details.
fn authorize(filters: &[RbacFilter], downstream: &Downstream<'_>) -> Result<(), String> {
    let facts = ConnectionFacts {
        principal: downstream.principal,
        source: downstream.addresses.remote,
        destination: downstream.addresses.local,
        server_name: downstream.server_name,
    };
    for filter in filters {
        let verdict = filter.evaluate_connection(&facts);
        if let Some(details) = verdict.details() {
            tracing::info!(
                principal = facts.principal.unwrap_or("-"),
                source = %facts.source,
                destination = %facts.destination,
                %details,
                "rbac: connection denied"
            );
            return Err(details);
        }
    }
    Ok(())
}

/// Connects upstream and copies bytes until the connection ends.
async fn proxy<S>(
    stream: S,
    spec: &TcpProxySpec,
    labels: &mut TcpLabels,
    log: &mut ConnectionLog<'_>,
    downstream: &Downstream<'_>,
    state: &ProxyState,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    match connect(log.cluster, log.addresses, state).await {
        Err(refusal) => {
            tracing::debug!(cluster = %log.cluster, destination = %log.addresses.local, ?refusal, "tcp_proxy refused");
            log.flags = refusal.flag();
            report_opened(spec, labels, log, downstream, state);
        }
        Ok(upstream) => {
            log.upstream = Some(upstream.address);
            labels.service = upstream.service;
            if labels.reporter == Reporter::Source {
                labels.destination = upstream.workload;
            }
            report_opened(spec, labels, log, downstream, state);
            let (bytes, idle) = copy_both_ways(stream, upstream.stream, spec.idle_timeout).await;
            log.bytes = bytes;
            if idle {
                log.flags = "SI"; // stream idle timeout
            }
        }
    }
}

/// A connected upstream, and what metrics call it.
struct Upstream {
    stream: UpstreamStream,
    address: SocketAddr,
    workload: Shared<Workload>,
    service: Shared<Service>,
}

async fn connect(
    cluster_name: &str,
    addresses: Addresses,
    state: &ProxyState,
) -> Result<Upstream, Refusal> {
    let cluster: Arc<Cluster> = state
        .clusters
        .load()
        .get(cluster_name)
        .cloned()
        .ok_or(Refusal::NoCluster)?;
    let (address, workload) = if cluster.spec.original_dst {
        let destination = addresses.local;
        if state.listeners.is_own(destination, state.node.ip) {
            return Err(Refusal::Loop);
        }
        (destination, state.labels.unknown_workload.clone())
    } else {
        let endpoint = cluster.pick().ok_or(Refusal::NoHealthyUpstream)?;
        (endpoint.address, endpoint.workload)
    };
    let mut connector = MeshConnector {
        tls: cluster.spec.tls.clone().map(|tls| UpstreamTls {
            alpn: MESH_ALPN_TCP,
            ..tls
        }),
        identity: state.identity.clone(),
        connect_timeout: cluster.spec.connect_timeout,
        source_address: cluster.spec.source_address,
        keepalive: cluster.spec.keepalive,
    };
    let uri = format!("tcp://{address}")
        .parse()
        .map_err(|_| Refusal::ConnectFailure)?;
    match connector.call(uri).await {
        Ok(io) => Ok(Upstream {
            stream: io.into_inner(),
            address,
            workload,
            service: cluster.service.clone(),
        }),
        Err(error) => {
            tracing::info!(%address, %error, cluster = %cluster_name, "tcp_proxy upstream connect failed");
            Err(Refusal::ConnectFailure)
        }
    }
}

/// The access-log view of one proxied connection.
struct ConnectionLog<'a> {
    cluster: &'a str,
    addresses: Addresses,
    upstream: Option<SocketAddr>,
    flags: &'static str,
    termination_details: Option<String>,
    /// Received from, sent to the downstream.
    bytes: (u64, u64),
}

impl ConnectionLog<'_> {
    fn write(
        &self,
        loggers: &[AccessLogger],
        attributes: &Attributes<'_>,
        (start, started): (SystemTime, Instant),
    ) {
        let entry = LogEntry {
            start,
            duration: started.elapsed(),
            protocol: "-",
            response_code: 0,
            response_flags: self.flags,
            response_code_details: "-",
            connection_termination_details: self.termination_details.as_deref(),
            bytes_received: self.bytes.0,
            bytes_sent: self.bytes.1,
            upstream_host: self.upstream,
            upstream_cluster: Some(self.cluster),
            upstream_peer: None,
            downstream_local: self.addresses.local,
            downstream_remote: self.addresses.remote,
            downstream_peer: None,
            route_name: None,
            request_headers: &[],
            response_headers: &[],
            jwt: None,
        };
        for logger in loggers {
            if logger.filter.as_ref().is_none_or(|f| f.matches(attributes)) {
                logger.write(&entry);
            }
        }
    }
}

mod copy;
#[cfg(test)]
mod tests;
