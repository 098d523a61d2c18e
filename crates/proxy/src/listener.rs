//! Listeners compiled from Envoy `Listener`s: a filter chain per transport
//! (TLS or plaintext, chosen by peeking at the first byte, as Envoy's
//! tls_inspector does), each ending in an HTTP connection manager.

use std::net::SocketAddr;
use std::sync::Arc;

use envoy_types::pb::envoy::config::core::v3::TrafficDirection;
use envoy_types::pb::envoy::config::listener::v3 as xds;
use envoy_types::pb::envoy::config::listener::v3::filter::ConfigType;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, http_connection_manager::ForwardClientCertDetails,
    http_connection_manager::RouteSpecifier, http_filter,
};
use prost::{Message, Name};

use crate::access_log::AccessLogSpec;
use crate::rbac::RbacFilter;
use crate::route::RouteTable;
use crate::tls_context;
use crate::unsupported::{Unsupported, reject_if};
use crate::xds_address::socket_address;

const HCM: &str = "envoy.filters.network.http_connection_manager";
const TLS_INSPECTOR: &str = "envoy.filters.listener.tls_inspector";
const ROUTER_TYPE: &str = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router";
const FAULT_TYPE: &str = "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault";
const RBAC_TYPE: &str = "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC";

#[derive(Debug)]
pub struct ListenerSpec {
    pub name: String,
    pub address: SocketAddr,
    pub direction: Direction,
    pub chains: Vec<ChainSpec>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    Inbound,
    Outbound,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransportMatch {
    Any,
    Tls,
    Plaintext,
}

#[derive(Debug)]
pub struct ChainSpec {
    pub transport: TransportMatch,
    /// Terminate mesh mTLS with the workload certificate.
    pub terminate_tls: bool,
    pub hcm: HcmSpec,
}

#[derive(Debug)]
pub struct HcmSpec {
    pub stat_prefix: String,
    pub routes: RouteSource,
    /// SANITIZE_SET with the URI: replace `x-forwarded-client-cert` with the
    /// verified peer's identity (Istio's inbound setting).
    pub set_client_cert: bool,
    /// The fault filter is in the chain, so routes' fault configs apply.
    pub fault_filter: bool,
    /// RBAC filters, in order; a request must pass each.
    pub rbac: Arc<[RbacFilter]>,
    /// File access logs, each written once per request.
    pub access_logs: Vec<AccessLogSpec>,
}

#[derive(Debug)]
pub enum RouteSource {
    Rds(String),
    Inline(Arc<RouteTable>),
}

impl ListenerSpec {
    pub fn compile(listener: &xds::Listener) -> Result<ListenerSpec, Unsupported> {
        reject_if(
            listener.use_original_dst.is_some_and(|b| b.value),
            "listener.use_original_dst",
        )?;
        reject_if(
            listener.default_filter_chain.is_some(),
            "listener.default_filter_chain",
        )?;
        reject_if(
            listener.filter_chain_matcher.is_some(),
            "listener.filter_chain_matcher",
        )?;
        for filter in &listener.listener_filters {
            reject_if(
                filter.name != TLS_INSPECTOR,
                "listener filter other than tls_inspector",
            )?;
        }
        let address = socket_address(
            listener
                .address
                .as_ref()
                .ok_or(Unsupported("listener without address"))?,
        )?;
        let direction = match TrafficDirection::try_from(listener.traffic_direction) {
            Ok(TrafficDirection::Inbound) => Direction::Inbound,
            _ => Direction::Outbound,
        };
        let chains = listener
            .filter_chains
            .iter()
            .map(ChainSpec::compile)
            .collect::<Result<Vec<_>, _>>()?;
        reject_if(chains.is_empty(), "listener without filter chains")?;
        Ok(ListenerSpec {
            name: listener.name.clone(),
            address,
            direction,
            chains,
        })
    }

    /// Whether choosing a chain needs to know if the client speaks TLS.
    pub fn inspects_tls(&self) -> bool {
        self.chains
            .iter()
            .any(|c| c.transport != TransportMatch::Any)
    }

    pub fn chain_for(&self, tls: bool) -> Option<&ChainSpec> {
        let wanted = if tls {
            TransportMatch::Tls
        } else {
            TransportMatch::Plaintext
        };
        self.chains
            .iter()
            .find(|c| c.transport == wanted)
            .or_else(|| {
                self.chains
                    .iter()
                    .find(|c| c.transport == TransportMatch::Any)
            })
    }

    /// Names of the route configurations this listener needs over RDS.
    pub fn rds_names(&self) -> impl Iterator<Item = &str> {
        self.chains.iter().filter_map(|c| match &c.hcm.routes {
            RouteSource::Rds(name) => Some(name.as_str()),
            RouteSource::Inline(_) => None,
        })
    }
}

impl ChainSpec {
    fn compile(chain: &xds::FilterChain) -> Result<ChainSpec, Unsupported> {
        let transport = match &chain.filter_chain_match {
            None => TransportMatch::Any,
            Some(m) => {
                reject_if(
                    m.destination_port.is_some(),
                    "filter_chain_match.destination_port",
                )?;
                reject_if(
                    !m.prefix_ranges.is_empty(),
                    "filter_chain_match.prefix_ranges",
                )?;
                reject_if(
                    !m.server_names.is_empty(),
                    "filter_chain_match.server_names",
                )?;
                reject_if(
                    !m.source_prefix_ranges.is_empty(),
                    "filter_chain_match.source_prefix_ranges",
                )?;
                // ALPN values only refine TLS chains; the mesh accepts any of them.
                match m.transport_protocol.as_str() {
                    "" => TransportMatch::Any,
                    "tls" => TransportMatch::Tls,
                    "raw_buffer" => TransportMatch::Plaintext,
                    _ => return Err(Unsupported("filter_chain_match.transport_protocol")),
                }
            }
        };
        let terminate_tls = match &chain.transport_socket {
            Some(socket) => tls_context::downstream(socket).map(|()| true)?,
            None => false,
        };
        let [filter] = chain.filters.as_slice() else {
            return Err(Unsupported(
                "filter chain with other than one network filter",
            ));
        };
        reject_if(
            filter.name != HCM,
            "network filter other than http_connection_manager",
        )?;
        let Some(ConfigType::TypedConfig(any)) = &filter.config_type else {
            return Err(Unsupported("http_connection_manager without typed_config"));
        };
        reject_if(
            any.type_url != HttpConnectionManager::type_url(),
            "http_connection_manager config type",
        )?;
        let hcm = HttpConnectionManager::decode(any.value.as_slice())
            .map_err(|_| Unsupported("undecodable http_connection_manager"))?;
        Ok(ChainSpec {
            transport,
            terminate_tls,
            hcm: HcmSpec::compile(&hcm)?,
        })
    }
}

impl HcmSpec {
    fn compile(hcm: &HttpConnectionManager) -> Result<HcmSpec, Unsupported> {
        let mut fault_filter = false;
        let mut rbac = Vec::new();
        for filter in &hcm.http_filters {
            let Some(http_filter::ConfigType::TypedConfig(any)) = &filter.config_type else {
                return Err(Unsupported("http filter without typed_config"));
            };
            if any.type_url == FAULT_TYPE {
                // Routes configure faults; a filter-wide fault is not implemented.
                reject_if(
                    !any.value.is_empty(),
                    "fault filter with a filter-wide config",
                )?;
                fault_filter = true;
                continue;
            }
            if any.type_url == RBAC_TYPE {
                rbac.push(RbacFilter::compile(&any.value)?);
                continue;
            }
            reject_if(
                any.type_url != ROUTER_TYPE,
                "http filter other than fault, rbac or router",
            )?;
        }
        let access_logs = hcm
            .access_log
            .iter()
            .map(AccessLogSpec::compile)
            .collect::<Result<Vec<_>, _>>()?;
        reject_if(hcm.tracing.is_some(), "http_connection_manager.tracing")?;
        let routes = match &hcm.route_specifier {
            Some(RouteSpecifier::Rds(rds)) => RouteSource::Rds(rds.route_config_name.clone()),
            Some(RouteSpecifier::RouteConfig(config)) => {
                RouteSource::Inline(Arc::new(RouteTable::compile(config)?))
            }
            _ => {
                return Err(Unsupported(
                    "route specifier other than rds or route_config",
                ));
            }
        };
        let set_client_cert = hcm.forward_client_cert_details
            == ForwardClientCertDetails::SanitizeSet as i32
            && hcm
                .set_current_client_cert_details
                .as_ref()
                .is_some_and(|d| d.uri);
        Ok(HcmSpec {
            stat_prefix: hcm.stat_prefix.clone(),
            routes,
            set_client_cert,
            fault_filter,
            rbac: rbac.into(),
            access_logs,
        })
    }
}
