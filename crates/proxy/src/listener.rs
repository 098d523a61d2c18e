//! Listeners compiled from Envoy `Listener`s: filter chains chosen by
//! destination and by what peeking at the first bytes shows (TLS or not,
//! SNI, ALPN: see filter_chain_match.rs), each ending in an HTTP connection
//! manager or a tcp_proxy (which network RBAC filters may precede).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::TrafficDirection;
use envoy_types::pb::envoy::config::listener::v3 as xds;
use envoy_types::pb::envoy::config::listener::v3::filter::ConfigType;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, http_connection_manager::ForwardClientCertDetails,
    http_connection_manager::RouteSpecifier, http_filter,
};
use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::TcpProxy;
use prost::{Message, Name};

use crate::access_log::AccessLogSpec;
use crate::authorize::AuthzFilter;
use crate::ext_authz::ExtAuthzFilter;
use crate::filter_chain_match::{ChainMatch, ConnectionFacts, select};
use crate::jwt::JwtFilter;
use crate::path_normalization::PathNormalization;
use crate::rbac::RbacFilter;
use crate::route::RouteTable;
use crate::stats_filter::{HTTP_METRICS, StatsSpec, TCP_METRICS};
use crate::tcp_proxy::TcpProxySpec;
use crate::tls_context;
use crate::trace::TracingSpec;
use crate::unsupported::{Unsupported, reject_if};
use crate::xds_address::socket_address;
use trellis_xds::stats_config::PluginConfig;

const TLS_INSPECTOR: &str = "envoy.filters.listener.tls_inspector";
const ORIGINAL_DST: &str = "envoy.filters.listener.original_dst";
const HTTP_INSPECTOR: &str = "envoy.filters.listener.http_inspector";
/// Envoy's default `listener_filters_timeout`.
const DEFAULT_FILTERS_TIMEOUT: Duration = Duration::from_secs(15);
const ROUTER_TYPE: &str = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router";
const FAULT_TYPE: &str = "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault";
const CORS_TYPE: &str = "type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors";
const RBAC_TYPE: &str = "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC";
const NETWORK_RBAC_TYPE: &str = "type.googleapis.com/envoy.extensions.filters.network.rbac.v3.RBAC";

#[derive(Debug)]
pub struct ListenerSpec {
    pub name: String,
    pub address: SocketAddr,
    pub direction: Direction,
    pub chains: Vec<ChainSpec>,
    /// Redirected connections are handed to the listener of their original
    /// destination (Envoy's `use_original_dst`).
    pub use_original_dst: bool,
    /// The original_dst listener filter: chains see the original destination.
    pub original_dst_filter: bool,
    /// `false`: only reached by hand-off from a `use_original_dst` listener.
    pub bind_to_port: bool,
    /// The http_inspector listener filter: plaintext HTTP is told apart
    /// (application protocol `http/1.0`, `http/1.1` or `h2c`).
    pub http_inspector: bool,
    /// How long listener filters wait for the first bytes (`None`: forever).
    pub filters_timeout: Option<Duration>,
    /// On that timeout, serve the connection rather than close it.
    pub continue_on_filters_timeout: bool,
    /// Of the resource this was compiled from: a new one replaces the
    /// config of open connections too (see `Listeners::replaced`).
    pub digest: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    Inbound,
    Outbound,
}

#[derive(Debug)]
pub struct ChainSpec {
    pub matcher: ChainMatch,
    /// Terminate TLS: mesh mTLS with the workload certificate, unless
    /// `credential` names a user certificate (a gateway's).
    pub terminate_tls: bool,
    pub credential: Option<crate::gateway_tls::ServerCredential>,
    pub network: NetworkFilter,
}

/// The one network filter a chain ends in.
#[derive(Debug)]
pub enum NetworkFilter {
    Http(HcmSpec),
    Tcp(TcpProxySpec),
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
    /// The CORS filter is in the chain, so routes' CORS policies apply.
    pub cors_filter: bool,
    /// The JWT filter (RequestAuthentication), run before RBAC.
    pub jwt: Option<Arc<JwtFilter>>,
    /// RBAC and external authorization filters, in order; a request must
    /// pass each.
    pub authz: Arc<[AuthzFilter]>,
    /// File access logs, each written once per request.
    pub access_logs: Vec<AccessLogSpec>,
    /// Spans for this connection manager's requests, if it traces.
    pub tracing: Option<Arc<TracingSpec>>,
    /// How request paths are rewritten before anything reads them.
    pub path_normalization: PathNormalization,
    /// The stats filter; `None`: no Istio metrics for these requests.
    pub stats: Option<Arc<StatsSpec>>,
}

#[derive(Debug)]
pub enum RouteSource {
    Rds(String),
    Inline(Arc<RouteTable>),
}

impl ListenerSpec {
    pub fn compile(listener: &xds::Listener) -> Result<ListenerSpec, Unsupported> {
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
                ![TLS_INSPECTOR, ORIGINAL_DST, HTTP_INSPECTOR].contains(&filter.name.as_str()),
                "listener filter other than tls_inspector, http_inspector or original_dst",
            )?;
        }
        let filters_timeout = match &listener.listener_filters_timeout {
            None => Some(DEFAULT_FILTERS_TIMEOUT),
            Some(d) => Some(Duration::new(
                d.seconds.max(0) as u64,
                d.nanos.clamp(0, 999_999_999) as u32,
            ))
            .filter(|d| !d.is_zero()),
        };
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
            use_original_dst: listener.use_original_dst.is_some_and(|b| b.value),
            original_dst_filter: listener
                .listener_filters
                .iter()
                .any(|f| f.name == ORIGINAL_DST),
            bind_to_port: listener.bind_to_port.is_none_or(|b| b.value),
            http_inspector: listener
                .listener_filters
                .iter()
                .any(|f| f.name == HTTP_INSPECTOR),
            filters_timeout,
            continue_on_filters_timeout: listener.continue_on_listener_filters_timeout,
            digest: 0,
        })
    }

    /// Whether choosing a chain needs to know if the client speaks TLS.
    pub fn inspects_tls(&self) -> bool {
        self.chains.iter().any(|c| c.matcher.needs_transport())
    }

    /// Whether choosing a chain needs the ClientHello's SNI and ALPN.
    pub fn inspects_client_hello(&self) -> bool {
        self.chains.iter().any(|c| c.matcher.needs_client_hello())
    }

    pub fn select_chain(&self, facts: &ConnectionFacts<'_>) -> Option<&ChainSpec> {
        let index = select(self.chains.iter().map(|c| &c.matcher), facts)?;
        self.chains.get(index)
    }

    /// Names of the route configurations this listener needs over RDS.
    pub fn rds_names(&self) -> impl Iterator<Item = &str> {
        self.chains.iter().filter_map(|c| match &c.network {
            NetworkFilter::Http(HcmSpec {
                routes: RouteSource::Rds(name),
                ..
            }) => Some(name.as_str()),
            _ => None,
        })
    }
}

impl ChainSpec {
    fn compile(chain: &xds::FilterChain) -> Result<ChainSpec, Unsupported> {
        let matcher = ChainMatch::compile(chain.filter_chain_match.as_ref())?;
        let credential = match &chain.transport_socket {
            Some(socket) => crate::gateway_tls::server_credential(socket)?,
            None => None,
        };
        let terminate_tls = match &chain.transport_socket {
            Some(_) if credential.is_some() => true,
            Some(socket) => tls_context::downstream(socket).map(|()| true)?,
            None => false,
        };
        let Some((terminal, leading)) = chain.filters.split_last() else {
            return Err(Unsupported("filter chain without network filters"));
        };
        let typed = |filter: &xds::Filter| match &filter.config_type {
            Some(ConfigType::TypedConfig(any)) => Ok(any.clone()),
            _ => Err(Unsupported("network filter without typed_config")),
        };
        let any = typed(terminal)?;
        // Network RBAC filters and the stats filter may precede a
        // tcp_proxy, and nothing else.
        let mut network_rbac = Vec::new();
        let mut stats = None;
        let mut seen_stats = false;
        for filter in leading {
            let any = typed(filter)?;
            if any.type_url == PluginConfig::type_url() {
                reject_if(seen_stats, "istio.stats twice")?;
                seen_stats = true;
                let spec = StatsSpec::compile(&any.value)?;
                stats = (!spec.drops_all(&TCP_METRICS)).then(|| Arc::new(spec));
                continue;
            }
            reject_if(
                any.type_url != NETWORK_RBAC_TYPE,
                "network filter before the last other than rbac or istio.stats",
            )?;
            network_rbac.push(RbacFilter::compile_network(&any.value)?);
        }
        let network = if any.type_url == HttpConnectionManager::type_url() {
            reject_if(
                !network_rbac.is_empty() || seen_stats,
                "network rbac or istio.stats before http_connection_manager",
            )?;
            let hcm = HttpConnectionManager::decode(any.value.as_slice())
                .map_err(|_| Unsupported("undecodable http_connection_manager"))?;
            NetworkFilter::Http(HcmSpec::compile(&hcm)?)
        } else if any.type_url == TcpProxy::type_url() {
            NetworkFilter::Tcp(TcpProxySpec {
                rbac: network_rbac,
                stats,
                ..TcpProxySpec::compile(&any.value)?
            })
        } else {
            return Err(Unsupported(
                "network filter other than http_connection_manager or tcp_proxy",
            ));
        };
        Ok(ChainSpec {
            matcher,
            terminate_tls,
            credential,
            network,
        })
    }
}

impl HcmSpec {
    /// What of each request the stats filter's and the log filters'
    /// expressions read.
    pub fn attribute_roots(&self) -> crate::attributes::Roots {
        let stats = self.stats.as_ref().map(|s| s.roots).unwrap_or_default();
        self.access_logs
            .iter()
            .filter_map(|log| log.filter.as_ref())
            .fold(stats, |roots, filter| roots.union(filter.roots()))
    }

    fn compile(hcm: &HttpConnectionManager) -> Result<HcmSpec, Unsupported> {
        let mut fault_filter = false;
        let mut cors_filter = false;
        let mut authz = Vec::new();
        let mut jwt = None;
        let mut stats = None;
        let mut seen_stats = false;
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
            if any.type_url == CORS_TYPE {
                // Routes configure CORS; the filter-wide config has no fields.
                reject_if(
                    !any.value.is_empty(),
                    "cors filter with a filter-wide config",
                )?;
                cors_filter = true;
                continue;
            }
            if any.type_url == RBAC_TYPE {
                authz.push(AuthzFilter::Rbac(RbacFilter::compile(&any.value)?));
                continue;
            }
            if any.type_url == crate::ext_authz::FILTER_TYPE {
                authz.push(AuthzFilter::External(Box::new(ExtAuthzFilter::compile(
                    &any.value,
                )?)));
                continue;
            }
            if any.type_url == PluginConfig::type_url() {
                reject_if(seen_stats, "istio.stats twice")?;
                seen_stats = true;
                let spec = StatsSpec::compile(&any.value)?;
                // Every metric disabled: as cheap as no filter at all.
                stats = (!spec.drops_all(&HTTP_METRICS)).then(|| Arc::new(spec));
                continue;
            }
            if any.type_url == crate::jwt::FILTER_TYPE {
                // RBAC reads what the JWT filter verified.
                reject_if(
                    jwt.is_some() || !authz.is_empty(),
                    "jwt_authn after rbac or twice",
                )?;
                jwt = Some(Arc::new(JwtFilter::compile(&any.value)?));
                continue;
            }
            reject_if(
                any.type_url != ROUTER_TYPE,
                "http filter other than cors, fault, jwt_authn, rbac, ext_authz, istio.stats or router",
            )?;
        }
        let access_logs = hcm
            .access_log
            .iter()
            .map(AccessLogSpec::compile)
            .collect::<Result<Vec<_>, _>>()?;
        let tracing = match &hcm.tracing {
            Some(tracing) => Some(Arc::new(TracingSpec::compile(tracing)?)),
            None => None,
        };
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
            cors_filter,
            jwt,
            authz: authz.into(),
            access_logs,
            tracing,
            path_normalization: PathNormalization::compile(hcm)?,
            stats,
        })
    }
}

#[cfg(test)]
mod tests;
