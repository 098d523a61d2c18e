//! Istio's HTTP metadata exchange: a sidecar calling a mesh service sends
//! its workload metadata (`x-envoy-peer-metadata`, a base64 protobuf
//! `google.protobuf.Struct`, and `x-envoy-peer-metadata-id`, its node id),
//! so that the serving sidecar can name the calling workload in metrics.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use envoy_types::pb::google::protobuf::{Struct, Value, value::Kind};
use http::{HeaderMap, HeaderName, HeaderValue};
use prost::Message;
use trellis_xds::NodeInfo;

use std::sync::Mutex;

use crate::metric_labels::{DEFAULT_CLUSTER, Shared, UNKNOWN, Workload, canonical_names};

pub const METADATA: HeaderName = HeaderName::from_static("x-envoy-peer-metadata");
pub const METADATA_ID: HeaderName = HeaderName::from_static("x-envoy-peer-metadata-id");

/// Larger values are ignored rather than decoded: honest metadata is a few
/// hundred bytes.
const MAX_ENCODED_BYTES: usize = 8 * 1024;

/// The Istio metadata keys exchanged; the rest of the node metadata stays
/// private.
const EXCHANGED_KEYS: [&str; 5] = [
    "NAME",
    "NAMESPACE",
    "WORKLOAD_NAME",
    "SERVICE_ACCOUNT",
    "LABELS",
];

/// This proxy's own headers, encoded once at startup.
#[derive(Debug)]
pub struct PeerMetadata {
    id: HeaderValue,
    metadata: HeaderValue,
}

impl PeerMetadata {
    pub fn new(node: &NodeInfo) -> PeerMetadata {
        let mut fields = node.to_node().metadata.unwrap_or_default().fields;
        fields.retain(|key, _| EXCHANGED_KEYS.contains(&key.as_str()));
        let encoded = STANDARD.encode(Struct { fields }.encode_to_vec());
        PeerMetadata {
            id: HeaderValue::from_str(&node.node_id())
                .unwrap_or_else(|_| HeaderValue::from_static("unknown")),
            metadata: HeaderValue::from_str(&encoded).expect("base64 is a valid header value"),
        }
    }

    pub fn insert_into(&self, headers: &mut HeaderMap) {
        headers.insert(METADATA_ID, self.id.clone());
        headers.insert(METADATA, self.metadata.clone());
    }
}

/// The last peer decoded on a connection: a sidecar sends the same
/// metadata on every request, so it is decoded once per connection.
#[derive(Debug, Default)]
pub struct PeerCache(Mutex<Option<(HeaderValue, Shared<Workload>)>>);

impl PeerCache {
    /// Removes both headers, returning the caller's workload if the
    /// metadata decodes and the caller has a verified mTLS identity
    /// (`principal`); the same header as last time gives the same answer.
    pub fn take_peer(
        &self,
        headers: &mut HeaderMap,
        principal: Option<&str>,
    ) -> Option<Shared<Workload>> {
        headers.remove(METADATA_ID);
        let value = headers.remove(METADATA)?;
        let principal = principal?;
        let mut cached = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((previous, workload)) = cached.as_ref()
            && *previous == value
        {
            return Some(workload.clone());
        }
        let workload = Shared::new(decode(value.as_bytes(), principal.to_string())?);
        *cached = Some((value, workload.clone()));
        Some(workload)
    }
}

/// The workload a metadata header describes, or `None` for anything that
/// is oversized, not base64, not a `Struct`, or without a workload name.
pub fn decode(encoded: &[u8], principal: String) -> Option<Workload> {
    if encoded.len() > MAX_ENCODED_BYTES {
        return None;
    }
    let bytes = STANDARD.decode(encoded).ok()?;
    let fields = Struct::decode(bytes.as_slice()).ok()?.fields;
    let text = |value: Option<&Value>| match value.and_then(|v| v.kind.as_ref()) {
        Some(Kind::StringValue(text)) => Some(text.clone()),
        _ => None,
    };
    let labels = match fields.get("LABELS").and_then(|v| v.kind.as_ref()) {
        Some(Kind::StructValue(labels)) => Some(&labels.fields),
        _ => None,
    };
    let labelled = |key: &str| labels.and_then(|l| text(l.get(key)));
    let label = |key: &str| labelled(key).unwrap_or_else(|| UNKNOWN.into());
    let name = text(fields.get("WORKLOAD_NAME"))?;
    let (canonical_service, canonical_revision) = canonical_names(labelled, &name);
    Some(Workload {
        namespace: text(fields.get("NAMESPACE")).unwrap_or_else(|| UNKNOWN.into()),
        principal,
        app: label("app"),
        version: label("version"),
        canonical_service,
        canonical_revision,
        cluster: text(fields.get("CLUSTER_ID")).unwrap_or_else(|| DEFAULT_CLUSTER.into()),
        name,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use trellis_xds::node::{Interception, ProxyKind};

    use super::*;

    const PRINCIPAL: &str = "spiffe://cluster.local/ns/default/sa/bookinfo-productpage";

    fn productpage() -> NodeInfo {
        NodeInfo {
            kind: ProxyKind::Sidecar,
            ip: "127.0.0.9".parse().unwrap(),
            pod_name: "productpage-v1-0".into(),
            namespace: "default".into(),
            service_account: "bookinfo-productpage".into(),
            workload_name: "productpage-v1".into(),
            labels: BTreeMap::from([
                ("app".into(), "productpage".into()),
                ("version".into(), "v1".into()),
            ]),
            interception: Interception::None,
            app_ports: BTreeMap::from([(9080, 30000)]),
            outbound_port: 15001,
            locality: String::new(),
        }
    }

    #[test]
    fn round_trips_the_workload_and_strips_the_headers() {
        let mut headers = HeaderMap::new();
        PeerMetadata::new(&productpage()).insert_into(&mut headers);
        assert!(headers.contains_key(METADATA_ID));
        let workload = PeerCache::default()
            .take_peer(&mut headers, Some(PRINCIPAL))
            .unwrap();
        assert_eq!(workload.name, "productpage-v1");
        assert_eq!(workload.namespace, "default");
        assert_eq!(
            (workload.app.as_str(), workload.version.as_str()),
            ("productpage", "v1")
        );
        assert_eq!(workload.principal, PRINCIPAL);
        assert!(headers.is_empty());
    }

    #[test]
    fn keeps_private_node_metadata_private() {
        let mut headers = HeaderMap::new();
        PeerMetadata::new(&productpage()).insert_into(&mut headers);
        let bytes = STANDARD.decode(headers[&METADATA].as_bytes()).unwrap();
        let fields = Struct::decode(bytes.as_slice()).unwrap().fields;
        assert!(fields.contains_key("WORKLOAD_NAME"));
        assert!(!fields.contains_key("TRELLIS_APP_PORTS"));
        assert!(!fields.contains_key("INSTANCE_IPS"));
    }

    #[test]
    fn ignores_garbage_oversized_and_unauthenticated_metadata() {
        assert!(decode(b"not base64!", PRINCIPAL.into()).is_none());
        assert!(decode(STANDARD.encode([0xff, 0xff]).as_bytes(), PRINCIPAL.into()).is_none());
        let empty = STANDARD.encode(Struct::default().encode_to_vec());
        assert!(decode(empty.as_bytes(), PRINCIPAL.into()).is_none());
        let huge = "A".repeat(MAX_ENCODED_BYTES + 4);
        assert!(decode(huge.as_bytes(), PRINCIPAL.into()).is_none());

        let mut headers = HeaderMap::new();
        PeerMetadata::new(&productpage()).insert_into(&mut headers);
        assert!(PeerCache::default().take_peer(&mut headers, None).is_none());
        assert!(
            headers.is_empty(),
            "headers are stripped even when not trusted"
        );
    }

    #[test]
    fn the_cache_answers_repeated_headers_with_the_same_labels() {
        let cache = PeerCache::default();
        let own = PeerMetadata::new(&productpage());
        let mut first = HeaderMap::new();
        own.insert_into(&mut first);
        let mut second = first.clone();
        let a = cache.take_peer(&mut first, Some(PRINCIPAL)).unwrap();
        let b = cache.take_peer(&mut second, Some(PRINCIPAL)).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.name, "productpage-v1");
        assert!(first.is_empty() && second.is_empty());
        let mut garbage = HeaderMap::new();
        garbage.insert(METADATA, HeaderValue::from_static("%%%"));
        assert!(cache.take_peer(&mut garbage, Some(PRINCIPAL)).is_none());
    }
}
