//! Proto3 JSON for xDS resources, as Envoy prints them in `/config_dump`.

use std::sync::LazyLock;

use envoy_types::pb::google::protobuf::Any;
use prost_reflect::{DescriptorPool, DynamicMessage, SerializeOptions};

static POOL: LazyLock<DescriptorPool> = LazyLock::new(|| {
    DescriptorPool::decode(
        include_bytes!(concat!(env!("OUT_DIR"), "/envoy_descriptors.bin")).as_slice(),
    )
    .expect("the descriptor set built by build.rs decodes")
});

#[derive(Debug, thiserror::Error)]
pub enum JsonError {
    #[error("unknown type {0}")]
    UnknownType(String),
    #[error("cannot decode {type_url}: {source}")]
    Decode {
        type_url: String,
        source: prost::DecodeError,
    },
    #[error("cannot print {0}")]
    Serialize(String),
}

/// Prints a packed resource as JSON with its `@type`, like Envoy's dumps.
pub fn any_to_json(any: &Any) -> Result<serde_json::Value, JsonError> {
    let name = any.type_url.rsplit('/').next().unwrap_or_default();
    let descriptor = POOL
        .get_message_by_name(name)
        .ok_or_else(|| JsonError::UnknownType(any.type_url.clone()))?;
    let message = DynamicMessage::decode(descriptor, any.value.as_slice()).map_err(|source| {
        JsonError::Decode {
            type_url: any.type_url.clone(),
            source,
        }
    })?;
    let options = SerializeOptions::new().skip_default_fields(true);
    let mut serializer = serde_json::Serializer::new(Vec::new());
    message
        .serialize_with_options(&mut serializer, &options)
        .map_err(|e| JsonError::Serialize(e.to_string()))?;
    let mut value: serde_json::Value = serde_json::from_slice(&serializer.into_inner())
        .map_err(|e| JsonError::Serialize(e.to_string()))?;
    if let Some(object) = value.as_object_mut() {
        object.insert("@type".into(), any.type_url.clone().into());
    }
    Ok(value)
}

/// Any prost message of the Envoy API as JSON.
pub fn message_to_json<T: prost::Message + prost::Name + Clone>(
    message: &T,
) -> Result<serde_json::Value, JsonError> {
    any_to_json(&envoy_types::util::pack_any(message.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::envoy::config::cluster::v3::Cluster;
    use envoy_types::pb::envoy::config::core::v3::{TransportSocket, transport_socket::ConfigType};
    use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::UpstreamTlsContext;

    #[test]
    fn prints_nested_any_with_field_names() {
        let tls = envoy_types::util::pack_any(UpstreamTlsContext {
            sni: "outbound_.9080_.v1_.reviews.default.svc.cluster.local".into(),
            ..Default::default()
        });
        let cluster = Cluster {
            name: "outbound|9080|v1|reviews.default.svc.cluster.local".into(),
            transport_socket: Some(TransportSocket {
                name: "envoy.transport_sockets.tls".into(),
                config_type: Some(ConfigType::TypedConfig(tls)),
            }),
            ..Default::default()
        };
        let json = message_to_json(&cluster).unwrap();
        assert_eq!(
            json["@type"],
            "type.googleapis.com/envoy.config.cluster.v3.Cluster"
        );
        assert_eq!(
            json["name"],
            "outbound|9080|v1|reviews.default.svc.cluster.local"
        );
        assert_eq!(
            json["transportSocket"]["typedConfig"]["sni"],
            "outbound_.9080_.v1_.reviews.default.svc.cluster.local"
        );
    }

    #[test]
    fn prints_tracer_configs() {
        use envoy_types::pb::envoy::config::trace::v3::ZipkinConfig;
        use envoy_types::pb::envoy::config::trace::v3::{
            OpenTelemetryConfig, tracing::Http, tracing::http::ConfigType as TracerConfig,
        };
        for tracer in [
            envoy_types::util::pack_any(ZipkinConfig {
                collector_cluster: "outbound|9411||zipkin.istio-system.svc.cluster.local".into(),
                collector_endpoint: "/api/v2/spans".into(),
                ..Default::default()
            }),
            envoy_types::util::pack_any(OpenTelemetryConfig {
                service_name: "reviews.default".into(),
                ..Default::default()
            }),
        ] {
            let type_url = tracer.type_url.clone();
            let http = Http {
                name: "envoy.tracers".into(),
                config_type: Some(TracerConfig::TypedConfig(tracer)),
            };
            let json = message_to_json(&http).unwrap();
            assert_eq!(json["typedConfig"]["@type"], type_url.as_str(), "{json}");
        }
    }

    #[test]
    fn unknown_type_is_an_error() {
        let any = Any {
            type_url: "type.googleapis.com/not.a.Type".into(),
            value: vec![],
        };
        assert!(matches!(any_to_json(&any), Err(JsonError::UnknownType(_))));
    }
}
