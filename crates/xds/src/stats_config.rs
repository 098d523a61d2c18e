//! Istio's stats filter configuration (`stats.PluginConfig`): which of the
//! standard metrics a connection manager or TCP proxy reports, and with
//! which labels. The control plane writes it from Telemetry resources'
//! `metrics` overrides; the proxy's stats filter reads it. The messages
//! match Istio's field numbers (proto/stats/plugin_config.proto).

use std::collections::HashMap;

use prost::Name;

/// The filter's name, on HTTP connection managers and TCP filter chains.
pub const STATS_FILTER_NAME: &str = "istio.stats";

/// One override: for metric `name` (every metric when empty), labels
/// added or replaced (`dimensions`, label to CEL expression), labels
/// removed, or the metric not reported at all (`drop`).
#[derive(Clone, PartialEq, prost::Message)]
pub struct MetricConfig {
    #[prost(map = "string, string", tag = "1")]
    pub dimensions: HashMap<String, String>,
    #[prost(string, tag = "2")]
    pub name: String,
    #[prost(string, repeated, tag = "3")]
    pub tags_to_remove: Vec<String>,
    /// Not implemented by Istio either; kept so that it round-trips.
    #[prost(string, tag = "4")]
    pub r#match: String,
    #[prost(bool, tag = "5")]
    pub drop: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct PluginConfig {
    #[prost(bool, tag = "6")]
    pub disable_host_header_fallback: bool,
    #[prost(message, optional, tag = "7")]
    pub tcp_reporting_duration: Option<envoy_types::pb::google::protobuf::Duration>,
    #[prost(message, repeated, tag = "8")]
    pub metrics: Vec<MetricConfig>,
}

impl Name for PluginConfig {
    const NAME: &'static str = "PluginConfig";
    const PACKAGE: &'static str = "stats";

    fn full_name() -> String {
        "stats.PluginConfig".into()
    }

    fn type_url() -> String {
        "type.googleapis.com/stats.PluginConfig".into()
    }
}

/// The metric names `MetricConfig.name` takes, as Istio spells them, by
/// the Telemetry API's `metric` selector value.
pub const METRIC_NAMES: [(&str, &str); 10] = [
    ("REQUEST_COUNT", "requests_total"),
    ("REQUEST_DURATION", "request_duration_milliseconds"),
    ("REQUEST_SIZE", "request_bytes"),
    ("RESPONSE_SIZE", "response_bytes"),
    ("TCP_OPENED_CONNECTIONS", "tcp_connections_opened_total"),
    ("TCP_CLOSED_CONNECTIONS", "tcp_connections_closed_total"),
    ("TCP_SENT_BYTES", "tcp_sent_bytes_total"),
    ("TCP_RECEIVED_BYTES", "tcp_received_bytes_total"),
    ("GRPC_REQUEST_MESSAGES", "request_messages_total"),
    ("GRPC_RESPONSE_MESSAGES", "response_messages_total"),
];

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn prints_as_json_through_the_descriptor_pool() {
        let config = PluginConfig {
            metrics: vec![MetricConfig {
                name: "requests_total".into(),
                dimensions: [("request_host".to_string(), "request.host".to_string())].into(),
                tags_to_remove: vec!["request_protocol".into()],
                ..Default::default()
            }],
            ..Default::default()
        };
        let any = envoy_types::pb::google::protobuf::Any {
            type_url: PluginConfig::type_url(),
            value: config.encode_to_vec(),
        };
        let json = crate::json::any_to_json(&any).expect("the pool knows stats.PluginConfig");
        let text = json.to_string();
        assert!(text.contains("\"request_host\":\"request.host\""), "{text}");
        assert!(
            text.contains("\"tagsToRemove\":[\"request_protocol\"]"),
            "{text}"
        );
    }
}
