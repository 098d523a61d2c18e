//! Upstream clusters compiled from Envoy `Cluster`s: their endpoints (from
//! EDS or inline), priorities and locality weights ([`crate::priority`]),
//! load balancing ([`crate::load_balancer`]), circuit
//! breakers ([`crate::circuit_breaker`]), outlier detection
//! ([`crate::outlier`]) and one connection pool each.

use std::net::SocketAddr;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use arc_swap::ArcSwap;
use envoy_types::pb::envoy::config::cluster::v3 as xds;
use envoy_types::pb::envoy::config::cluster::v3::cluster::{
    ClusterDiscoveryType, DiscoveryType, LbPolicy,
};
use envoy_types::pb::envoy::config::core::v3::HttpProtocolOptions as CommonOptions;
use envoy_types::pb::envoy::config::endpoint::v3::{
    ClusterLoadAssignment, lb_endpoint::HostIdentifier,
};
use envoy_types::pb::envoy::extensions::upstreams::http::v3::HttpProtocolOptions;
use envoy_types::pb::envoy::extensions::upstreams::http::v3::http_protocol_options::{
    UpstreamProtocolOptions, explicit_http_config::ProtocolConfig,
};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use prost::Message;

use crate::body::ProxyBody;
use crate::circuit_breaker::{CircuitBreakers, Thresholds};
use crate::connector::{MeshConnector, UpstreamTls};
use crate::dns::DnsDiscovery;
use crate::identity::{Identity, MESH_ALPN_H2, MESH_ALPN_HTTP11};
use crate::keepalive::TcpKeepalive;
use crate::load_balancer::Balancing;
use crate::metric_labels::{Service, Shared, UNKNOWN, Workload};
use crate::outlier::{OutlierConfig, OutlierDetector};
use crate::priority::{Levels, Placement};
use crate::tls_context;
use crate::unsupported::{Unsupported, reject_if};
use crate::xds_address::socket_address;

const HTTP_PROTOCOL_OPTIONS: &str = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions";
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an unused pooled connection stays open unless the cluster says.
const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// What a cluster is, as configured (compared to decide whether an update
/// can keep the running cluster and its pooled connections).
#[derive(Clone, Debug, PartialEq)]
pub struct ClusterSpec {
    pub name: String,
    pub eds: bool,
    pub tls: Option<UpstreamTls>,
    pub http2: bool,
    pub connect_timeout: Duration,
    /// Inline endpoints of a STATIC cluster.
    pub static_endpoints: Vec<Endpoint>,
    /// STRICT_DNS / LOGICAL_DNS: the names the proxy resolves (dns.rs).
    pub dns: Option<DnsDiscovery>,
    /// ORIGINAL_DST: connections go where the client originally sent them
    /// (tcp_proxy only; see tcp_proxy.rs).
    pub original_dst: bool,
    /// Connect from this address (`upstream_bind_config`).
    pub source_address: Option<std::net::IpAddr>,
    pub keepalive: Option<TcpKeepalive>,
    pub thresholds: Thresholds,
    pub outlier: Option<OutlierConfig>,
    pub balancing: Balancing,
    pub idle_timeout: Duration,
    /// Close a connection after this many requests (`None`: never).
    pub max_requests_per_connection: Option<u32>,
    /// Retire a connection this long after it was opened (`None`: never).
    pub max_connection_duration: Option<Duration>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    pub address: SocketAddr,
    /// `load_balancing_weight`, 1 when unset.
    pub weight: u32,
    /// Istio's endpoint metadata `istio.workload`: `NAME;NAMESPACE;SERVICE;REVISION;CLUSTER`.
    pub workload: Option<String>,
    pub placement: Placement,
}

/// An endpoint as requests use it: where it is, and what metrics call it.
#[derive(Clone, Debug)]
pub struct LiveEndpoint {
    pub address: SocketAddr,
    /// `IP:PORT`, formatted once: the upstream request's URI authority.
    pub authority: http::uri::Authority,
    pub workload: Shared<Workload>,
    pub weight: u32,
    /// Requests in flight to the endpoint (for least request).
    pub active: Arc<AtomicUsize>,
}

/// The endpoints, and the same grouped by priority and locality.
#[derive(Default)]
struct EndpointSet {
    endpoints: Vec<LiveEndpoint>,
    levels: Levels,
}

pub struct Cluster {
    pub spec: ClusterSpec,
    /// The Service this cluster reaches, for metrics.
    pub service: Shared<Service>,
    endpoints: ArcSwap<EndpointSet>,
    pub client: Client<MeshConnector, ProxyBody>,
    pub retry_budget: crate::retry::RetryBudget,
    pub breakers: CircuitBreakers,
    pub outlier: Option<OutlierDetector>,
    /// The DNS refresh task of a DNS cluster, stopped with the cluster.
    dns_refresh: OnceLock<tokio::task::AbortHandle>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Some(task) = self.dns_refresh.get() {
            task.abort();
        }
    }
}

impl ClusterSpec {
    pub fn compile(cluster: &xds::Cluster) -> Result<ClusterSpec, Unsupported> {
        reject_if(!cluster.health_checks.is_empty(), "cluster.health_checks")?;
        let keepalive = TcpKeepalive::compile(cluster.upstream_connection_options.as_ref())?;
        let thresholds = Thresholds::compile(cluster.circuit_breakers.as_ref())?;
        let outlier = cluster
            .outlier_detection
            .as_ref()
            .map(OutlierConfig::compile)
            .transpose()?;
        let original_dst = matches!(
            cluster.cluster_discovery_type,
            Some(ClusterDiscoveryType::Type(t)) if t == DiscoveryType::OriginalDst as i32
        );
        let balancing = if original_dst {
            reject_if(
                cluster.lb_policy != LbPolicy::ClusterProvided as i32,
                "ORIGINAL_DST cluster with an lb_policy other than CLUSTER_PROVIDED",
            )?;
            Balancing::ORIGINAL_DESTINATION
        } else {
            Balancing::compile(cluster)?
        };
        let kind = match cluster.cluster_discovery_type {
            Some(ClusterDiscoveryType::Type(t)) => DiscoveryType::try_from(t)
                .map_err(|_| Unsupported("unknown cluster discovery type"))?,
            None => DiscoveryType::Static,
            Some(ClusterDiscoveryType::ClusterType(_)) => {
                return Err(Unsupported("custom cluster types"));
            }
        };
        let dns = match kind {
            DiscoveryType::StrictDns | DiscoveryType::LogicalDns => {
                Some(DnsDiscovery::compile(cluster, kind)?)
            }
            _ => None,
        };
        let eds = match kind {
            DiscoveryType::Eds => true,
            DiscoveryType::Static | DiscoveryType::OriginalDst => false,
            _ if dns.is_some() => false,
            _ => {
                return Err(Unsupported(
                    "cluster type other than EDS, STATIC, STRICT_DNS, LOGICAL_DNS or ORIGINAL_DST",
                ));
            }
        };
        let static_endpoints = match (&cluster.load_assignment, eds) {
            _ if original_dst || dns.is_some() => Vec::new(),
            (Some(assignment), false) => endpoints_of(assignment)?,
            (None, false) => return Err(Unsupported("STATIC cluster without load_assignment")),
            (_, true) => Vec::new(),
        };
        let protocol = ProtocolOptions::compile(cluster)?;
        let http2 = protocol.http2;
        let tls = match &cluster.transport_socket {
            Some(socket) => Some(tls_context::upstream(
                socket,
                if http2 {
                    MESH_ALPN_H2
                } else {
                    MESH_ALPN_HTTP11
                },
            )?),
            None => None,
        };
        let connect_timeout = cluster
            .connect_timeout
            .as_ref()
            .map(|d| Duration::new(d.seconds.max(0) as u64, d.nanos.max(0) as u32))
            .filter(|d| !d.is_zero())
            .unwrap_or(DEFAULT_CONNECT_TIMEOUT);
        Ok(ClusterSpec {
            name: cluster.name.clone(),
            eds,
            tls,
            http2,
            connect_timeout,
            static_endpoints,
            dns,
            original_dst,
            keepalive,
            source_address: crate::upstream_bind::source_address(
                cluster.upstream_bind_config.as_ref(),
            )?,
            thresholds,
            outlier,
            balancing,
            idle_timeout: protocol.idle_timeout.unwrap_or(DEFAULT_IDLE_TIMEOUT),
            max_requests_per_connection: protocol.max_requests_per_connection,
            max_connection_duration: protocol.max_connection_duration,
        })
    }
}

/// What a cluster's `HttpProtocolOptions` ask of its connections.
#[derive(Default)]
struct ProtocolOptions {
    http2: bool,
    idle_timeout: Option<Duration>,
    max_requests_per_connection: Option<u32>,
    max_connection_duration: Option<Duration>,
}

/// What `common_http_protocol_options` ask; the rest is rejected.
#[derive(Default)]
struct CommonLimits {
    idle_timeout: Option<Duration>,
    max_requests_per_connection: Option<u32>,
    max_connection_duration: Option<Duration>,
}

impl ProtocolOptions {
    fn compile(cluster: &xds::Cluster) -> Result<ProtocolOptions, Unsupported> {
        let Some(options) = cluster
            .typed_extension_protocol_options
            .get(HTTP_PROTOCOL_OPTIONS)
        else {
            return Ok(ProtocolOptions::default());
        };
        let options = HttpProtocolOptions::decode(options.value.as_slice())
            .map_err(|_| Unsupported("undecodable HttpProtocolOptions"))?;
        let http2 = match options.upstream_protocol_options {
            Some(UpstreamProtocolOptions::ExplicitHttpConfig(explicit)) => {
                match explicit.protocol_config {
                    Some(ProtocolConfig::Http2ProtocolOptions(_)) => true,
                    Some(ProtocolConfig::HttpProtocolOptions(_)) | None => false,
                    Some(ProtocolConfig::Http3ProtocolOptions(_)) => {
                        return Err(Unsupported("HTTP/3 upstreams"));
                    }
                }
            }
            None => false,
            Some(_) => {
                return Err(Unsupported(
                    "upstream protocol options other than explicit_http_config",
                ));
            }
        };
        let common = common_options(options.common_http_protocol_options.unwrap_or_default())?;
        Ok(ProtocolOptions {
            http2,
            idle_timeout: common.idle_timeout,
            max_requests_per_connection: common.max_requests_per_connection,
            max_connection_duration: common.max_connection_duration,
        })
    }
}

fn common_options(common: CommonOptions) -> Result<CommonLimits, Unsupported> {
    let rest = CommonOptions {
        idle_timeout: None,
        max_requests_per_connection: None,
        max_connection_duration: None,
        ..common
    };
    reject_if(
        rest != CommonOptions::default(),
        "common_http_protocol_options other than idle_timeout, max_requests_per_connection and max_connection_duration",
    )?;
    let duration = |d: Option<envoy_types::pb::google::protobuf::Duration>| {
        d.map(|d| Duration::new(d.seconds.max(0) as u64, d.nanos.max(0) as u32))
    };
    Ok(CommonLimits {
        idle_timeout: duration(common.idle_timeout),
        max_requests_per_connection: common
            .max_requests_per_connection
            .map(|n| n.value)
            .filter(|n| *n > 0),
        // Zero means no limit, as in Envoy.
        max_connection_duration: duration(common.max_connection_duration).filter(|d| !d.is_zero()),
    })
}

/// Endpoints of an assignment, in order, each with its priority and
/// locality.
pub fn endpoints_of(assignment: &ClusterLoadAssignment) -> Result<Vec<Endpoint>, Unsupported> {
    let mut endpoints = Vec::new();
    for (index, locality) in assignment.endpoints.iter().enumerate() {
        reject_if(
            locality.proximity.is_some(),
            "LocalityLbEndpoints.proximity",
        )?;
        let placement = Placement {
            priority: locality.priority,
            locality: index,
            locality_weight: locality
                .load_balancing_weight
                .as_ref()
                .map_or(0, |w| w.value),
        };
        for lb_endpoint in &locality.lb_endpoints {
            let Some(HostIdentifier::Endpoint(endpoint)) = &lb_endpoint.host_identifier else {
                return Err(Unsupported("endpoint without an address"));
            };
            let address = endpoint
                .address
                .as_ref()
                .ok_or(Unsupported("endpoint without an address"))?;
            let workload = lb_endpoint
                .metadata
                .as_ref()
                .and_then(|m| m.filter_metadata.get("istio"))
                .and_then(|s| s.fields.get("workload"))
                .and_then(|v| match &v.kind {
                    Some(envoy_types::pb::google::protobuf::value::Kind::StringValue(s)) => {
                        Some(s.clone())
                    }
                    _ => None,
                });
            endpoints.push(Endpoint {
                address: socket_address(address)?,
                weight: lb_endpoint
                    .load_balancing_weight
                    .as_ref()
                    .map_or(1, |w| w.value.max(1)),
                workload,
                placement,
            });
        }
    }
    Ok(endpoints)
}

impl Cluster {
    pub fn new(spec: ClusterSpec, identity: Arc<Identity>) -> Cluster {
        let connector = MeshConnector {
            tls: spec.tls.clone(),
            identity,
            connect_timeout: spec.connect_timeout,
            source_address: spec.source_address,
            keepalive: spec.keepalive,
        };
        let client = Client::builder(TokioExecutor::new())
            .http2_only(spec.http2)
            .pool_idle_timeout(spec.idle_timeout)
            .build(connector);
        let service =
            Service::from_cluster_name(&spec.name).map_or_else(Service::unknown, Shared::new);
        let cluster = Cluster {
            endpoints: ArcSwap::default(),
            service,
            client,
            retry_budget: crate::retry::RetryBudget::default(),
            breakers: CircuitBreakers::new(spec.thresholds),
            outlier: spec.outlier.clone().map(OutlierDetector::new),
            dns_refresh: OnceLock::new(),
            spec,
        };
        cluster.set_endpoints(&cluster.spec.static_endpoints);
        cluster
    }

    /// Shares a new cluster and, for a DNS cluster, starts resolving its
    /// names (needs a tokio runtime then).
    pub fn start(cluster: Cluster) -> Arc<Cluster> {
        let cluster = Arc::new(cluster);
        if let Some(dns) = &cluster.spec.dns {
            let task = crate::dns::spawn_refresh(Arc::downgrade(&cluster), dns.clone());
            // A fresh cluster has no task yet.
            let _ = cluster.dns_refresh.set(task);
        }
        cluster
    }

    /// Whether upstream connections are mesh mTLS (not plaintext, nor TLS
    /// originated to a server outside the mesh).
    pub fn is_mesh_tls(&self) -> bool {
        self.spec
            .tls
            .as_ref()
            .is_some_and(|tls| tls.origination.is_none())
    }

    pub fn set_endpoints(&self, endpoints: &[Endpoint]) {
        // The identity the cluster verifies stands for the peer's principal.
        let principal = self
            .spec
            .tls
            .as_ref()
            .and_then(|t| t.peers.first())
            .map(ToString::to_string);
        let live: Vec<LiveEndpoint> = endpoints
            .iter()
            .map(|endpoint| {
                let workload = endpoint
                    .workload
                    .as_deref()
                    .and_then(|w| Workload::from_istio_metadata(w, principal.clone()))
                    .unwrap_or_else(|| {
                        Workload::with_principal(
                            principal.clone().unwrap_or_else(|| UNKNOWN.into()),
                        )
                    });
                let authority = endpoint
                    .address
                    .to_string()
                    .parse()
                    .expect("a socket address is a valid authority");
                LiveEndpoint {
                    address: endpoint.address,
                    authority,
                    workload: Shared::new(workload),
                    weight: endpoint.weight,
                    active: Arc::default(),
                }
            })
            .collect();
        if let Some(outlier) = &self.outlier {
            let addresses: Vec<SocketAddr> = live.iter().map(|e| e.address).collect();
            outlier.retain(&addresses);
        }
        let placements: Vec<Placement> = endpoints.iter().map(|e| e.placement).collect();
        let balancing = &self.spec.balancing;
        let levels = Levels::build(
            &live,
            &placements,
            &balancing.algorithm,
            balancing.locality_weighted,
        );
        self.endpoints.store(Arc::new(EndpointSet {
            endpoints: live,
            levels,
        }));
    }

    /// The current endpoints (for the admin `/clusters` view).
    pub fn endpoints(&self) -> Vec<LiveEndpoint> {
        self.endpoints.load().endpoints.clone()
    }

    /// The endpoints outlier detection holds out now.
    pub fn ejected(&self) -> Vec<SocketAddr> {
        self.outlier
            .as_ref()
            .map(OutlierDetector::ejected)
            .unwrap_or_default()
    }

    /// An endpoint for a request without a hash key.
    pub fn pick(&self) -> Option<LiveEndpoint> {
        self.pick_for(None)
    }

    /// An endpoint chosen by priority, locality and then the cluster's
    /// load balancer, among those not ejected (all of a priority's when it
    /// is in panic); `hash` is the request's consistent-hash key, if its
    /// route has one.
    pub fn pick_for(&self, hash: Option<u64>) -> Option<LiveEndpoint> {
        let set = self.endpoints.load();
        if set.endpoints.is_empty() {
            return None;
        }
        let balancing = &self.spec.balancing;
        set.levels.pick(
            &self.ejected(),
            balancing.panic_threshold,
            &balancing.algorithm,
            hash,
        )
    }

    /// Tells outlier detection how an attempt to `endpoint` ended.
    pub fn record_outcome(&self, endpoint: SocketAddr, outcome: crate::retry::Outcome) {
        if let Some(outlier) = &self.outlier {
            let size = self.endpoints.load().endpoints.len();
            outlier.record(endpoint, outcome, size);
        }
    }
}
