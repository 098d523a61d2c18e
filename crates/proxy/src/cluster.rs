//! Upstream clusters compiled from Envoy `Cluster`s, their endpoints (from
//! EDS or inline), round-robin selection, and one connection pool each.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use envoy_types::pb::envoy::config::cluster::v3 as xds;
use envoy_types::pb::envoy::config::cluster::v3::cluster::{
    ClusterDiscoveryType, DiscoveryType, LbPolicy,
};
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
use crate::connector::{MeshConnector, UpstreamTls};
use crate::identity::{Identity, MESH_ALPN_H2, MESH_ALPN_HTTP11};
use crate::metric_labels::{Service, Shared, UNKNOWN, Workload};
use crate::tls_context;
use crate::unsupported::{Unsupported, reject_if};
use crate::xds_address::socket_address;

const HTTP_PROTOCOL_OPTIONS: &str = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions";
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

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
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    pub address: SocketAddr,
    /// Istio's endpoint metadata `istio.workload`: `NAME;NAMESPACE;SERVICE;REVISION;CLUSTER`.
    pub workload: Option<String>,
}

/// An endpoint as requests use it: where it is, and what metrics call it.
#[derive(Clone, Debug)]
pub struct LiveEndpoint {
    pub address: SocketAddr,
    /// `IP:PORT`, formatted once: the upstream request's URI authority.
    pub authority: http::uri::Authority,
    pub workload: Shared<Workload>,
}

pub struct Cluster {
    pub spec: ClusterSpec,
    /// The Service this cluster reaches, for metrics.
    pub service: Shared<Service>,
    endpoints: ArcSwap<Vec<LiveEndpoint>>,
    next: AtomicUsize,
    pub client: Client<MeshConnector, ProxyBody>,
    pub retry_budget: crate::retry::RetryBudget,
}

impl ClusterSpec {
    pub fn compile(cluster: &xds::Cluster) -> Result<ClusterSpec, Unsupported> {
        reject_if(
            cluster.circuit_breakers.is_some(),
            "cluster.circuit_breakers",
        )?;
        reject_if(
            cluster.outlier_detection.is_some(),
            "cluster.outlier_detection",
        )?;
        reject_if(!cluster.health_checks.is_empty(), "cluster.health_checks")?;
        reject_if(
            cluster.lb_subset_config.is_some(),
            "cluster.lb_subset_config",
        )?;
        reject_if(
            cluster.load_balancing_policy.is_some(),
            "cluster.load_balancing_policy",
        )?;
        reject_if(
            cluster.lb_policy != LbPolicy::RoundRobin as i32,
            "cluster.lb_policy other than ROUND_ROBIN",
        )?;
        let eds = match cluster.cluster_discovery_type {
            Some(ClusterDiscoveryType::Type(t)) if t == DiscoveryType::Eds as i32 => true,
            Some(ClusterDiscoveryType::Type(t)) if t == DiscoveryType::Static as i32 => false,
            None => false,
            _ => return Err(Unsupported("cluster type other than EDS or STATIC")),
        };
        let static_endpoints = match (&cluster.load_assignment, eds) {
            (Some(assignment), false) => endpoints_of(assignment)?,
            (None, false) => return Err(Unsupported("STATIC cluster without load_assignment")),
            (_, true) => Vec::new(),
        };
        let http2 = http2_configured(cluster)?;
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
        })
    }
}

fn http2_configured(cluster: &xds::Cluster) -> Result<bool, Unsupported> {
    let Some(options) = cluster
        .typed_extension_protocol_options
        .get(HTTP_PROTOCOL_OPTIONS)
    else {
        return Ok(false);
    };
    let options = HttpProtocolOptions::decode(options.value.as_slice())
        .map_err(|_| Unsupported("undecodable HttpProtocolOptions"))?;
    match options.upstream_protocol_options {
        Some(UpstreamProtocolOptions::ExplicitHttpConfig(explicit)) => match explicit
            .protocol_config
        {
            Some(ProtocolConfig::Http2ProtocolOptions(_)) => Ok(true),
            Some(ProtocolConfig::HttpProtocolOptions(_)) | None => Ok(false),
            Some(ProtocolConfig::Http3ProtocolOptions(_)) => Err(Unsupported("HTTP/3 upstreams")),
        },
        None => Ok(false),
        Some(_) => Err(Unsupported(
            "upstream protocol options other than explicit_http_config",
        )),
    }
}

/// Endpoints of an assignment, in order; priorities and locality weights are
/// not implemented yet, so anything but priority 0 is rejected.
pub fn endpoints_of(assignment: &ClusterLoadAssignment) -> Result<Vec<Endpoint>, Unsupported> {
    let mut endpoints = Vec::new();
    for locality in &assignment.endpoints {
        reject_if(locality.priority != 0, "endpoint priority")?;
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
                workload,
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
        };
        let client = Client::builder(TokioExecutor::new())
            .http2_only(spec.http2)
            .pool_idle_timeout(Duration::from_secs(60))
            .build(connector);
        let service =
            Service::from_cluster_name(&spec.name).map_or_else(Service::unknown, Shared::new);
        let cluster = Cluster {
            endpoints: ArcSwap::default(),
            service,
            spec,
            next: AtomicUsize::new(0),
            client,
            retry_budget: crate::retry::RetryBudget::default(),
        };
        cluster.set_endpoints(&cluster.spec.static_endpoints);
        cluster
    }

    pub fn set_endpoints(&self, endpoints: &[Endpoint]) {
        // The identity the cluster verifies stands for the peer's principal.
        let principal = self
            .spec
            .tls
            .as_ref()
            .and_then(|t| t.peers.first())
            .map(ToString::to_string);
        let live = endpoints
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
                }
            })
            .collect();
        self.endpoints.store(Arc::new(live));
    }

    /// The current endpoints (for the admin `/clusters` view).
    pub fn endpoints(&self) -> Arc<Vec<LiveEndpoint>> {
        self.endpoints.load_full()
    }

    /// Round robin over the current endpoints.
    pub fn pick(&self) -> Option<LiveEndpoint> {
        let endpoints = self.endpoints.load();
        if endpoints.is_empty() {
            return None;
        }
        let index = self.next.fetch_add(1, Ordering::Relaxed) % endpoints.len();
        Some(endpoints[index].clone())
    }
}
