//! `connectionPool` as Istio's `applyConnectionPool` writes it: one
//! circuit-breaker threshold set (Istio's defaults of 2^32-1 for what the
//! rule leaves unset, never Envoy's low defaults), the connect timeout,
//! HTTP common protocol options and TCP keepalive; and the upstream HTTP
//! version (HTTP/2 when `h2UpgradePolicy` upgrades the cluster).

use envoy_types::pb::envoy::config::cluster::v3::{
    CircuitBreakers, Cluster, UpstreamConnectionOptions, circuit_breakers::Thresholds,
};
use envoy_types::pb::envoy::config::core::v3::{
    Http1ProtocolOptions, Http2ProtocolOptions, HttpProtocolOptions as CommonHttpProtocolOptions,
    TcpKeepalive,
};
use envoy_types::pb::envoy::extensions::upstreams::http::v3::HttpProtocolOptions;
use envoy_types::pb::envoy::extensions::upstreams::http::v3::http_protocol_options::{
    ExplicitHttpConfig, UpstreamProtocolOptions, explicit_http_config::ProtocolConfig,
};
use envoy_types::util::pack_any;
use trellis_api::{ConnectionPoolSettings, TcpKeepalive as IstioKeepalive, parse_duration};

use crate::build::{duration, uint32};

pub const HTTP_PROTOCOL_OPTIONS: &str = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions";

/// Istio's thresholds for every outbound cluster: 2^32-1 of everything, so
/// that Envoy's low defaults (1024 connections, 3 retries) never apply.
pub fn default_thresholds() -> Thresholds {
    Thresholds {
        max_connections: Some(uint32(u32::MAX)),
        max_pending_requests: Some(uint32(u32::MAX)),
        max_requests: Some(uint32(u32::MAX)),
        max_retries: Some(uint32(u32::MAX)),
        track_remaining: true,
        ..Default::default()
    }
}

/// The circuit breakers of a cluster whose rule sets no connection pool.
pub fn default_circuit_breakers() -> CircuitBreakers {
    CircuitBreakers {
        thresholds: vec![default_thresholds()],
        ..Default::default()
    }
}

/// Writes `pool` (if any) into `cluster`, speaking HTTP/2 upstream if `http2`.
pub fn apply(cluster: &mut Cluster, pool: Option<&ConnectionPoolSettings>, http2: bool) {
    let common = match pool {
        Some(pool) => apply_pool(cluster, pool),
        None => CommonHttpProtocolOptions::default(),
    };
    if !http2 && common == CommonHttpProtocolOptions::default() {
        return;
    }
    let protocol_config = if http2 {
        ProtocolConfig::Http2ProtocolOptions(Http2ProtocolOptions::default())
    } else {
        ProtocolConfig::HttpProtocolOptions(Http1ProtocolOptions::default())
    };
    let options = HttpProtocolOptions {
        common_http_protocol_options: Some(common).filter(|c| *c != Default::default()),
        upstream_protocol_options: Some(UpstreamProtocolOptions::ExplicitHttpConfig(
            ExplicitHttpConfig {
                protocol_config: Some(protocol_config),
            },
        )),
        ..Default::default()
    };
    cluster
        .typed_extension_protocol_options
        .insert(HTTP_PROTOCOL_OPTIONS.into(), pack_any(options));
}

/// The circuit breakers, timeouts and keepalive; returns the HTTP common
/// protocol options the pool asks for.
fn apply_pool(cluster: &mut Cluster, pool: &ConnectionPoolSettings) -> CommonHttpProtocolOptions {
    let mut thresholds = default_thresholds();
    let mut common = CommonHttpProtocolOptions::default();
    if let Some(http) = &pool.http {
        // Zero means "unset" in Istio's API, as for every count below.
        if let Some(n) = positive(http.http2_max_requests) {
            thresholds.max_requests = Some(uint32(n));
        }
        if let Some(n) = positive(http.http1_max_pending_requests) {
            thresholds.max_pending_requests = Some(uint32(n));
        }
        if let Some(n) = positive(http.max_retries) {
            thresholds.max_retries = Some(uint32(n));
        }
        common.idle_timeout = parsed(http.idle_timeout.as_deref());
        common.max_requests_per_connection = positive(http.max_requests_per_connection).map(uint32);
    }
    if let Some(tcp) = &pool.tcp {
        if let Some(timeout) = parsed(tcp.connect_timeout.as_deref()) {
            cluster.connect_timeout = Some(timeout);
        }
        if let Some(n) = positive(tcp.max_connections) {
            thresholds.max_connections = Some(uint32(n));
        }
        common.max_connection_duration = parsed(tcp.max_connection_duration.as_deref());
        // The HTTP idle timeout wins over the TCP one.
        if common.idle_timeout.is_none() {
            common.idle_timeout = parsed(tcp.idle_timeout.as_deref());
        }
        if let Some(keepalive) = &tcp.tcp_keepalive {
            cluster.upstream_connection_options = Some(UpstreamConnectionOptions {
                tcp_keepalive: Some(tcp_keepalive(keepalive)),
                ..Default::default()
            });
        }
    }
    cluster.circuit_breakers = Some(CircuitBreakers {
        thresholds: vec![thresholds],
        ..Default::default()
    });
    common
}

fn positive(value: Option<i32>) -> Option<u32> {
    value.and_then(|v| u32::try_from(v).ok()).filter(|v| *v > 0)
}

fn parsed(value: Option<&str>) -> Option<envoy_types::pb::google::protobuf::Duration> {
    value
        .and_then(|text| parse_duration(text).ok())
        .map(duration)
}

/// SO_KEEPALIVE with the OS defaults, overridden by what the rule sets
/// (Envoy takes whole seconds).
fn tcp_keepalive(keepalive: &IstioKeepalive) -> TcpKeepalive {
    let seconds = |text: Option<&str>| {
        text.and_then(|t| parse_duration(t).ok())
            .map(|d| uint32(u32::try_from(d.as_secs()).unwrap_or(u32::MAX)))
    };
    TcpKeepalive {
        keepalive_probes: keepalive.probes.filter(|p| *p > 0).map(uint32),
        keepalive_time: seconds(keepalive.time.as_deref()),
        keepalive_interval: seconds(keepalive.interval.as_deref()),
    }
}
