//! Client-side API listeners, named `HOST:PORT` as a gRPC client asks for
//! them (the FQDN, `NAME.NAMESPACE.svc`, `NAME.NAMESPACE`, and `NAME`
//! alone in the client's own namespace, as Kubernetes DNS would resolve
//! them; a ServiceEntry host only as written), each an HTTP connection manager that takes its routes over ADS
//! (RDS, named like the port's cluster, as Istio does) and runs the HTTP
//! filters gRPC implements: fault, then router (last, as gRPC requires).

use envoy_types::pb::envoy::config::listener::v3::{ApiListener, Listener};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, Rds, http_connection_manager::RouteSpecifier,
};
use envoy_types::util::pack_any;
use trellis_config::{MeshService, MeshServicePort};

use crate::build::router_filter;
use crate::clusters::{OutboundCluster, ads_config_source};
use crate::fault::fault_filter;
use crate::names::outbound_cluster_name;

/// A service port a gRPC client can call: it has a whole-service cluster.
pub struct ServicePort<'a> {
    pub service: &'a MeshService,
    pub port: &'a MeshServicePort,
}

impl ServicePort<'_> {
    /// The name a client asks for with the FQDN: its target without `xds:///`.
    pub fn listener_name(&self) -> String {
        format!("{}:{}", self.service.hostname, self.port.port)
    }

    /// Every name a client in `namespace` may ask for.
    pub fn listener_names(&self, namespace: &str) -> Vec<String> {
        let service = self.service;
        let mut hosts = vec![service.hostname.clone()];
        if service.entry.is_none() {
            hosts.push(format!("{}.{}.svc", service.name, service.namespace));
            hosts.push(format!("{}.{}", service.name, service.namespace));
            if service.namespace == namespace {
                hosts.push(service.name.clone());
            }
        }
        let port = self.port.port;
        hosts
            .into_iter()
            .map(|host| format!("{host}:{port}"))
            .collect()
    }

    /// Istio's: the name of the port's whole-service cluster.
    pub fn route_config_name(&self) -> String {
        outbound_cluster_name(self.port.port, "", &self.service.hostname)
    }
}

/// The service ports of `clusters` (their whole-service clusters, not
/// the subsets), in cluster order.
pub fn routable_ports(clusters: &[OutboundCluster]) -> Vec<ServicePort<'_>> {
    clusters
        .iter()
        .filter(|c| c.cluster.name == outbound_cluster_name(c.port.port, "", &c.service.hostname))
        .map(|c| ServicePort {
            service: &c.service,
            port: &c.port,
        })
        .collect()
}

/// The listener `name` for `target`.
pub fn api_listener(target: &ServicePort<'_>, name: String) -> Listener {
    let manager = HttpConnectionManager {
        stat_prefix: target.listener_name(),
        route_specifier: Some(RouteSpecifier::Rds(Rds {
            config_source: Some(ads_config_source()),
            route_config_name: target.route_config_name(),
        })),
        http_filters: vec![fault_filter(), router_filter()],
        ..Default::default()
    };
    Listener {
        name,
        api_listener: Some(ApiListener {
            api_listener: Some(pack_any(manager)),
        }),
        ..Default::default()
    }
}
