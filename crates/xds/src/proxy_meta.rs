//! What the control plane reports about a connected proxy beyond what
//! translation needs: its cluster, its version and the control-plane
//! revision it belongs to, read from its xDS `Node` as istiod reads them.

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::config::core::v3::node::UserAgentVersionType;
use envoy_types::pb::google::protobuf::Struct;

use crate::node::{NodeInfo, string_field, struct_field};

const CLUSTER_ID: &str = "CLUSTER_ID";
/// Set by Istio's pilot-agent (and its gRPC bootstrap) to its release.
const ISTIO_VERSION: &str = "ISTIO_VERSION";
const ANNOTATIONS: &str = "ANNOTATIONS";
/// The pod label (current Istio injection) or annotation (older Istio,
/// and Trellis's injector) naming the revision that injected the proxy.
const REVISION_KEY: &str = "istio.io/rev";
/// Istio's name for an installation without `--revision`.
const DEFAULT_REVISION: &str = "default";
/// Istio's cluster ID when a proxy names none.
const DEFAULT_CLUSTER: &str = "Kubernetes";

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ProxyMeta {
    pub cluster_id: String,
    pub version: String,
    pub revision: String,
}

impl ProxyMeta {
    pub(crate) fn of(node: &Node, info: &NodeInfo) -> ProxyMeta {
        let empty = Struct::default();
        let metadata = node.metadata.as_ref().unwrap_or(&empty);
        ProxyMeta {
            cluster_id: string_field(metadata, CLUSTER_ID)
                .filter(|id| !id.is_empty())
                .unwrap_or_else(|| DEFAULT_CLUSTER.into()),
            version: version(node, metadata),
            revision: info
                .labels
                .get(REVISION_KEY)
                .cloned()
                .or_else(|| struct_field(metadata, ANNOTATIONS).remove(REVISION_KEY))
                .filter(|revision| !revision.is_empty())
                .unwrap_or_else(|| DEFAULT_REVISION.into()),
        }
    }
}

/// Istio's proxy version (`ISTIO_VERSION`) when the agent is Istio's;
/// otherwise the xDS user agent, `NAME VERSION` (`trellis 0.1.0`, `envoy
/// 1.31.0`), so that proxies of different makes never share a version.
fn version(node: &Node, metadata: &Struct) -> String {
    if let Some(version) = string_field(metadata, ISTIO_VERSION).filter(|v| !v.is_empty()) {
        return version;
    }
    let agent_version = match &node.user_agent_version_type {
        Some(UserAgentVersionType::UserAgentVersion(version)) => version.clone(),
        Some(UserAgentVersionType::UserAgentBuildVersion(build)) => build
            .version
            .as_ref()
            .map(|v| format!("{}.{}.{}", v.major_number, v.minor_number, v.patch))
            .unwrap_or_default(),
        None => String::new(),
    };
    match (node.user_agent_name.as_str(), agent_version.as_str()) {
        ("", "") => "unknown".into(),
        (name, "") => name.into(),
        ("", version) => version.into(),
        (name, version) => format!("{name} {version}"),
    }
}

#[cfg(test)]
mod tests {
    use envoy_types::pb::envoy::config::core::v3::BuildVersion;
    use envoy_types::pb::envoy::r#type::v3::SemanticVersion;
    use envoy_types::pb::google::protobuf::{Value, value::Kind};

    use super::*;
    use crate::node::{Interception, ProxyKind};

    fn info(labels: &[(&str, &str)]) -> NodeInfo {
        NodeInfo {
            kind: ProxyKind::Sidecar,
            ip: "127.0.0.1".parse().unwrap(),
            pod_name: "reviews-v1-0".into(),
            namespace: "default".into(),
            service_account: "reviews".into(),
            workload_name: "reviews-v1".into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            interception: Interception::Redirect,
            app_ports: Default::default(),
            outbound_port: 15001,
            locality: String::new(),
        }
    }

    fn text(value: &str) -> Value {
        Value {
            kind: Some(Kind::StringValue(value.into())),
        }
    }

    fn with_metadata(mut node: Node, key: &str, value: Value) -> Node {
        node.metadata
            .get_or_insert_with(Struct::default)
            .fields
            .insert(key.into(), value);
        node
    }

    #[test]
    fn a_trellis_proxy_reports_its_user_agent_and_the_default_revision() {
        let info = info(&[]);
        let meta = ProxyMeta::of(&info.to_node(), &info);
        let expected = format!("trellis {}", env!("CARGO_PKG_VERSION"));
        assert_eq!(meta.version, expected);
        assert_eq!(meta.revision, DEFAULT_REVISION);
        assert_eq!(meta.cluster_id, DEFAULT_CLUSTER);
    }

    #[test]
    fn istio_agents_report_istio_version_and_the_revision_label() {
        let info = info(&[(REVISION_KEY, "canary")]);
        let node = with_metadata(info.to_node(), ISTIO_VERSION, text("1.24.2"));
        let node = with_metadata(node, CLUSTER_ID, text("east"));
        let meta = ProxyMeta::of(&node, &info);
        assert_eq!(
            meta,
            ProxyMeta {
                cluster_id: "east".into(),
                version: "1.24.2".into(),
                revision: "canary".into(),
            }
        );
    }

    #[test]
    fn the_revision_annotation_counts_when_no_label_says() {
        let info = info(&[]);
        let annotations = Struct {
            fields: [(REVISION_KEY.to_string(), text("stable"))].into(),
        };
        let annotations = Value {
            kind: Some(Kind::StructValue(annotations)),
        };
        let node = with_metadata(info.to_node(), ANNOTATIONS, annotations);
        assert_eq!(ProxyMeta::of(&node, &info).revision, "stable");
    }

    #[test]
    fn envoys_build_version_and_anonymous_agents() {
        let info = info(&[]);
        let mut node = info.to_node();
        node.user_agent_name = "envoy".into();
        node.user_agent_version_type =
            Some(UserAgentVersionType::UserAgentBuildVersion(BuildVersion {
                version: Some(SemanticVersion {
                    major_number: 1,
                    minor_number: 31,
                    patch: 2,
                }),
                metadata: None,
            }));
        assert_eq!(ProxyMeta::of(&node, &info).version, "envoy 1.31.2");
        node.user_agent_name.clear();
        node.user_agent_version_type = None;
        assert_eq!(ProxyMeta::of(&node, &info).version, "unknown");
    }
}
