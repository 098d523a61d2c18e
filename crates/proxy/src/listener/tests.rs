//! Which network filter sequences a chain accepts.

use envoy_types::pb::envoy::config::listener::v3::{Filter, FilterChain, filter};
use envoy_types::pb::envoy::config::rbac::v3::{Rbac, rbac::Action};
use envoy_types::pb::envoy::extensions::filters::network::rbac::v3::Rbac as NetworkRbac;
use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::tcp_proxy::ClusterSpecifier;
use envoy_types::util::pack_any;

use super::*;

fn typed(name: &str, any: envoy_types::pb::google::protobuf::Any) -> Filter {
    Filter {
        name: name.into(),
        config_type: Some(filter::ConfigType::TypedConfig(any)),
    }
}

fn network_rbac() -> Filter {
    let config = NetworkRbac {
        rules: Some(Rbac {
            action: Action::Deny as i32,
            ..Default::default()
        }),
        stat_prefix: "tcp.".into(),
        ..Default::default()
    };
    typed("envoy.filters.network.rbac", pack_any(config))
}

fn tcp_proxy() -> Filter {
    let config = TcpProxy {
        stat_prefix: "inbound_9000".into(),
        cluster_specifier: Some(ClusterSpecifier::Cluster("inbound|9000||".into())),
        ..Default::default()
    };
    typed("envoy.filters.network.tcp_proxy", pack_any(config))
}

fn hcm() -> Filter {
    let config = HttpConnectionManager {
        route_specifier: Some(RouteSpecifier::Rds(Default::default())),
        ..Default::default()
    };
    typed(
        "envoy.filters.network.http_connection_manager",
        pack_any(config),
    )
}

fn compile(filters: Vec<Filter>) -> Result<ChainSpec, Unsupported> {
    ChainSpec::compile(&FilterChain {
        filters,
        ..Default::default()
    })
}

#[test]
fn network_rbac_filters_may_only_precede_a_tcp_proxy() {
    let chain = compile(vec![network_rbac(), network_rbac(), tcp_proxy()]).unwrap();
    let NetworkFilter::Tcp(tcp) = &chain.network else {
        panic!("not a tcp_proxy chain");
    };
    assert_eq!(tcp.rbac.len(), 2);
    assert!(compile(vec![tcp_proxy()]).is_ok());
    for refused in [
        vec![],
        vec![network_rbac()],
        vec![network_rbac(), hcm()],
        vec![tcp_proxy(), tcp_proxy()],
        vec![hcm(), tcp_proxy()],
    ] {
        assert!(compile(refused.clone()).is_err(), "{refused:?}");
    }
}

#[test]
fn connection_managers_carry_their_path_normalization() {
    use crate::path_normalization::{EscapedSlashes, PathNormalization};
    use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_connection_manager::PathWithEscapedSlashesAction;
    let manager = |config: HttpConnectionManager| {
        let chain = compile(vec![typed(
            "envoy.filters.network.http_connection_manager",
            pack_any(HttpConnectionManager {
                route_specifier: Some(RouteSpecifier::Rds(Default::default())),
                ..config
            }),
        )]);
        chain.map(|chain| match chain.network {
            NetworkFilter::Http(hcm) => hcm.path_normalization,
            NetworkFilter::Tcp(_) => panic!("not an HTTP chain"),
        })
    };
    assert_eq!(
        manager(Default::default()),
        Ok(PathNormalization::default())
    );
    let strict = HttpConnectionManager {
        normalize_path: Some(envoy_types::pb::google::protobuf::BoolValue { value: true }),
        merge_slashes: true,
        path_with_escaped_slashes_action: PathWithEscapedSlashesAction::UnescapeAndForward as i32,
        ..Default::default()
    };
    assert_eq!(
        manager(strict),
        Ok(PathNormalization {
            rfc3986: true,
            merge_slashes: true,
            escaped_slashes: EscapedSlashes::UnescapeAndForward,
        })
    );
    let newer_options = HttpConnectionManager {
        path_normalization_options: Some(Default::default()),
        ..Default::default()
    };
    assert!(manager(newer_options).is_err());
}
