//! Light views of the xDS messages a simulated proxy receives: only the
//! fields it needs to follow subscriptions and ACK (prost skips the rest
//! without allocating), so one process can play thousands of proxies.

use bytes::Bytes;

pub const HCM_TYPE: &str = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";
/// Envoy's `Cluster.DiscoveryType.EDS`.
const EDS_DISCOVERY: i32 = 3;

#[derive(Clone, PartialEq, prost::Message)]
pub struct LightAny {
    #[prost(string, tag = "1")]
    pub type_url: String,
    #[prost(bytes = "bytes", tag = "2")]
    pub value: Bytes,
}

/// `envoy.service.discovery.v3.DiscoveryResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SotwResponse {
    #[prost(string, tag = "1")]
    pub version_info: String,
    #[prost(message, repeated, tag = "2")]
    pub resources: Vec<LightAny>,
    #[prost(string, tag = "4")]
    pub type_url: String,
    #[prost(string, tag = "5")]
    pub nonce: String,
}

/// `envoy.service.discovery.v3.Resource`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct DeltaResource {
    #[prost(string, tag = "1")]
    pub version: String,
    #[prost(message, optional, tag = "2")]
    pub resource: Option<LightAny>,
    #[prost(string, tag = "3")]
    pub name: String,
}

/// `envoy.service.discovery.v3.DeltaDiscoveryResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct DeltaResponse {
    #[prost(string, tag = "1")]
    pub system_version_info: String,
    #[prost(message, repeated, tag = "2")]
    pub resources: Vec<DeltaResource>,
    #[prost(string, tag = "4")]
    pub type_url: String,
    #[prost(string, tag = "5")]
    pub nonce: String,
    #[prost(string, repeated, tag = "6")]
    pub removed_resources: Vec<String>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct LightCluster {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(int32, optional, tag = "2")]
    discovery_type: Option<i32>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct LightListener {
    #[prost(message, repeated, tag = "3")]
    filter_chains: Vec<LightFilterChain>,
    #[prost(message, optional, tag = "25")]
    default_filter_chain: Option<LightFilterChain>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct LightFilterChain {
    #[prost(message, repeated, tag = "3")]
    filters: Vec<LightFilter>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct LightFilter {
    #[prost(message, optional, tag = "4")]
    typed_config: Option<LightAny>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct LightHcm {
    #[prost(message, optional, tag = "3")]
    rds: Option<LightRds>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct LightRds {
    #[prost(string, tag = "2")]
    route_config_name: String,
}

/// The cluster's name when it takes its endpoints from EDS (what a
/// sidecar then subscribes to); undecodable bytes count as no cluster.
pub fn eds_cluster_name(resource: &LightAny) -> Option<String> {
    let cluster: LightCluster = prost::Message::decode(resource.value.clone()).ok()?;
    (cluster.discovery_type == Some(EDS_DISCOVERY)).then_some(cluster.name)
}

/// The RDS route configurations a listener's connection managers name.
pub fn route_names(resource: &LightAny) -> Vec<String> {
    let Ok(listener) = <LightListener as prost::Message>::decode(resource.value.clone()) else {
        return Vec::new();
    };
    listener
        .filter_chains
        .iter()
        .chain(listener.default_filter_chain.iter())
        .flat_map(|chain| &chain.filters)
        .filter_map(|filter| filter.typed_config.as_ref())
        .filter(|config| config.type_url == HCM_TYPE)
        .filter_map(|config| <LightHcm as prost::Message>::decode(config.value.clone()).ok())
        .filter_map(|hcm| hcm.rds.map(|rds| rds.route_config_name))
        .collect()
}

/// Bytes a response carried in resources (what a push costs on the wire,
/// less framing).
pub fn resource_bytes<'a>(resources: impl Iterator<Item = &'a LightAny>) -> u64 {
    resources
        .map(|r| (r.value.len() + r.type_url.len()) as u64)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::envoy::config::cluster::v3::Cluster;
    use envoy_types::pb::envoy::config::cluster::v3::cluster::{
        ClusterDiscoveryType, DiscoveryType,
    };
    use envoy_types::pb::envoy::config::listener::v3::{Filter, FilterChain, Listener, filter};
    use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
        HttpConnectionManager, Rds, http_connection_manager::RouteSpecifier,
    };
    use envoy_types::util::pack_any;

    fn light(any: envoy_types::pb::google::protobuf::Any) -> LightAny {
        LightAny {
            type_url: any.type_url,
            value: any.value.into(),
        }
    }

    #[test]
    fn reads_eds_cluster_names_only() {
        let cluster = |name: &str, kind: DiscoveryType| Cluster {
            name: name.into(),
            cluster_discovery_type: Some(ClusterDiscoveryType::Type(kind as i32)),
            ..Default::default()
        };
        let eds = light(pack_any(cluster("outbound|80||a", DiscoveryType::Eds)));
        let original = light(pack_any(cluster("Passthrough", DiscoveryType::OriginalDst)));
        assert_eq!(eds_cluster_name(&eds).as_deref(), Some("outbound|80||a"));
        assert_eq!(eds_cluster_name(&original), None);
        let garbage = LightAny {
            type_url: String::new(),
            value: Bytes::from_static(&[0xff, 0xff]),
        };
        assert_eq!(eds_cluster_name(&garbage), None);
    }

    #[test]
    fn reads_route_names_of_connection_managers() {
        let hcm = HttpConnectionManager {
            route_specifier: Some(RouteSpecifier::Rds(Rds {
                route_config_name: "8080".into(),
                ..Default::default()
            })),
            ..Default::default()
        };
        let listener = Listener {
            name: "0.0.0.0_8080".into(),
            filter_chains: vec![FilterChain {
                filters: vec![Filter {
                    name: "envoy.filters.network.http_connection_manager".into(),
                    config_type: Some(filter::ConfigType::TypedConfig(pack_any(hcm))),
                }],
                ..Default::default()
            }],
            ..Default::default()
        };
        assert_eq!(route_names(&light(pack_any(listener))), vec!["8080"]);
    }
}
