//! What a proxy tells the control plane about itself, carried in the xDS
//! `Node` (id and metadata) the way Istio's pilot-agent does.

use std::collections::BTreeMap;
use std::net::IpAddr;

use envoy_types::pb::envoy::config::core::v3::node::UserAgentVersionType;
use envoy_types::pb::envoy::config::core::v3::{Locality, Node};
use envoy_types::pb::google::protobuf::{Struct, Value, value::Kind};

const NAMESPACE: &str = "NAMESPACE";
const SERVICE_ACCOUNT: &str = "SERVICE_ACCOUNT";
const WORKLOAD_NAME: &str = "WORKLOAD_NAME";
const POD_NAME: &str = "NAME";
const INSTANCE_IPS: &str = "INSTANCE_IPS";
const LABELS: &str = "LABELS";
const INTERCEPTION_MODE: &str = "INTERCEPTION_MODE";
const APP_PORTS: &str = "TRELLIS_APP_PORTS";
const OUTBOUND_PORT: &str = "TRELLIS_OUTBOUND_PORT";
/// Istio's choice of config generator for a node; `grpc` marks a
/// proxyless gRPC client (set in its xDS bootstrap).
const GENERATOR: &str = "GENERATOR";
const GRPC_GENERATOR: &str = "grpc";

/// The role of a proxy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProxyKind {
    Sidecar,
    Router,
    /// A gRPC client that speaks xDS itself (Istio's proxyless gRPC): its
    /// id says `sidecar` and its metadata `GENERATOR: grpc`. It is sent
    /// client-side API listeners for the names it asks for, not a
    /// sidecar's listeners.
    ProxylessGrpc,
}

/// How the workload's traffic reaches its sidecar.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Interception {
    /// iptables REDIRECT to 15001/15006 (a pod, or a network namespace).
    Redirect,
    /// No capture (local mode without root): the app calls an explicit HTTP
    /// proxy listener, and the sidecar owns the workload's service ports.
    None,
}

/// A proxy's identity and placement, as the translator needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeInfo {
    pub kind: ProxyKind,
    pub ip: IpAddr,
    pub pod_name: String,
    pub namespace: String,
    pub service_account: String,
    pub workload_name: String,
    pub labels: BTreeMap<String, String>,
    pub interception: Interception,
    /// Service (container) port -> the port the app really listens on. Only
    /// in `Interception::None`, where the sidecar owns the service ports.
    pub app_ports: BTreeMap<u16, u16>,
    /// Port of the outbound listener (15001 as in Istio).
    pub outbound_port: u16,
    /// Where the proxy runs, `region/zone/subzone` (Envoy's `Node.locality`);
    /// empty when unknown.
    pub locality: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NodeError {
    #[error("node id {0:?} is not TYPE~IP~POD.NAMESPACE~DOMAIN")]
    BadId(String),
    #[error("node metadata field {0} is missing or invalid")]
    BadMetadata(&'static str),
}

impl NodeInfo {
    /// Istio's node id: `sidecar~10.1.2.3~reviews-v1-abc.default~default.svc.cluster.local`.
    pub fn node_id(&self) -> String {
        let kind = match self.kind {
            ProxyKind::Sidecar | ProxyKind::ProxylessGrpc => "sidecar",
            ProxyKind::Router => "router",
        };
        format!(
            "{kind}~{}~{}.{}~{}.svc.cluster.local",
            self.ip, self.pod_name, self.namespace, self.namespace
        )
    }

    pub fn to_node(&self) -> Node {
        let mut fields = std::collections::HashMap::new();
        let mut put = |key: &str, kind: Kind| {
            fields.insert(key.to_string(), Value { kind: Some(kind) });
        };
        put(NAMESPACE, Kind::StringValue(self.namespace.clone()));
        put(
            SERVICE_ACCOUNT,
            Kind::StringValue(self.service_account.clone()),
        );
        put(WORKLOAD_NAME, Kind::StringValue(self.workload_name.clone()));
        put(POD_NAME, Kind::StringValue(self.pod_name.clone()));
        put(INSTANCE_IPS, Kind::StringValue(self.ip.to_string()));
        put(LABELS, Kind::StructValue(string_struct(&self.labels)));
        let mode = match self.interception {
            Interception::Redirect => "REDIRECT",
            Interception::None => "NONE",
        };
        put(INTERCEPTION_MODE, Kind::StringValue(mode.into()));
        let ports = self
            .app_ports
            .iter()
            .map(|(service, app)| (service.to_string(), app.to_string()))
            .collect();
        put(APP_PORTS, Kind::StructValue(string_struct(&ports)));
        put(
            OUTBOUND_PORT,
            Kind::StringValue(self.outbound_port.to_string()),
        );
        if self.kind == ProxyKind::ProxylessGrpc {
            put(GENERATOR, Kind::StringValue(GRPC_GENERATOR.into()));
        }
        let mut locality = self.locality.splitn(3, '/').map(str::to_string);
        let locality = (!self.locality.is_empty()).then(|| Locality {
            region: locality.next().unwrap_or_default(),
            zone: locality.next().unwrap_or_default(),
            sub_zone: locality.next().unwrap_or_default(),
        });
        Node {
            id: self.node_id(),
            locality,
            cluster: format!("{}.{}", self.workload_name, self.namespace),
            metadata: Some(Struct { fields }),
            user_agent_name: "trellis".into(),
            user_agent_version_type: Some(UserAgentVersionType::UserAgentVersion(
                env!("CARGO_PKG_VERSION").into(),
            )),
            ..Default::default()
        }
    }

    pub fn from_node(node: &Node) -> Result<NodeInfo, NodeError> {
        let kind = match node.id.split('~').next() {
            Some("sidecar") => ProxyKind::Sidecar,
            Some("router") => ProxyKind::Router,
            _ => return Err(NodeError::BadId(node.id.clone())),
        };
        let empty = Struct::default();
        let meta = node.metadata.as_ref().unwrap_or(&empty);
        let kind = match (kind, string_field(meta, GENERATOR).as_deref()) {
            (ProxyKind::Sidecar, Some(GRPC_GENERATOR)) => ProxyKind::ProxylessGrpc,
            (kind, _) => kind,
        };
        let ip = string_field(meta, INSTANCE_IPS)
            .and_then(|ips| ips.split(',').next()?.trim().parse().ok())
            .ok_or(NodeError::BadMetadata(INSTANCE_IPS))?;
        let interception = match string_field(meta, INTERCEPTION_MODE).as_deref() {
            Some("NONE") => Interception::None,
            Some("REDIRECT") | None => Interception::Redirect,
            Some(_) => return Err(NodeError::BadMetadata(INTERCEPTION_MODE)),
        };
        let app_ports = struct_field(meta, APP_PORTS)
            .into_iter()
            .map(|(k, v)| Some((k.parse().ok()?, v.parse().ok()?)))
            .collect::<Option<_>>()
            .ok_or(NodeError::BadMetadata(APP_PORTS))?;
        let outbound_port = match string_field(meta, OUTBOUND_PORT) {
            Some(port) => port
                .parse()
                .map_err(|_| NodeError::BadMetadata(OUTBOUND_PORT))?,
            None => 15001,
        };
        Ok(NodeInfo {
            kind,
            ip,
            pod_name: string_field(meta, POD_NAME).unwrap_or_default(),
            namespace: string_field(meta, NAMESPACE).ok_or(NodeError::BadMetadata(NAMESPACE))?,
            service_account: string_field(meta, SERVICE_ACCOUNT)
                .unwrap_or_else(|| "default".into()),
            workload_name: string_field(meta, WORKLOAD_NAME).unwrap_or_default(),
            labels: struct_field(meta, LABELS),
            interception,
            app_ports,
            outbound_port,
            locality: node.locality.as_ref().map_or_else(String::new, |l| {
                [l.region.as_str(), l.zone.as_str(), l.sub_zone.as_str()]
                    .join("/")
                    .trim_end_matches('/')
                    .to_string()
            }),
        })
    }
}

fn string_struct(map: &BTreeMap<String, String>) -> Struct {
    let fields = map
        .iter()
        .map(|(k, v)| {
            let value = Value {
                kind: Some(Kind::StringValue(v.clone())),
            };
            (k.clone(), value)
        })
        .collect();
    Struct { fields }
}

pub(crate) fn string_field(meta: &Struct, key: &str) -> Option<String> {
    match meta.fields.get(key)?.kind.as_ref()? {
        Kind::StringValue(s) => Some(s.clone()),
        _ => None,
    }
}

/// A struct of string values; other value kinds are skipped.
pub(crate) fn struct_field(meta: &Struct, key: &str) -> BTreeMap<String, String> {
    let Some(Value {
        kind: Some(Kind::StructValue(inner)),
    }) = meta.fields.get(key)
    else {
        return BTreeMap::new();
    };
    inner
        .fields
        .keys()
        .filter_map(|k| Some((k.clone(), string_field(inner, k)?)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reviews() -> NodeInfo {
        NodeInfo {
            kind: ProxyKind::Sidecar,
            ip: "127.42.0.7".parse().unwrap(),
            pod_name: "reviews-v1-0".into(),
            namespace: "default".into(),
            service_account: "bookinfo-reviews".into(),
            workload_name: "reviews-v1".into(),
            labels: [
                ("app".into(), "reviews".into()),
                ("version".into(), "v1".into()),
            ]
            .into(),
            interception: Interception::None,
            app_ports: [(9080, 34567)].into(),
            outbound_port: 15001,
            locality: "us-east/us-east-1a/rack7".into(),
        }
    }

    #[test]
    fn round_trips_through_node() {
        let info = reviews();
        let node = info.to_node();
        assert_eq!(
            node.id,
            "sidecar~127.42.0.7~reviews-v1-0.default~default.svc.cluster.local"
        );
        assert_eq!(NodeInfo::from_node(&node).unwrap(), info);
    }

    #[test]
    fn grpc_generator_marks_a_proxyless_client() {
        let info = NodeInfo {
            kind: ProxyKind::ProxylessGrpc,
            ..reviews()
        };
        let node = info.to_node();
        assert!(node.id.starts_with("sidecar~"), "{}", node.id);
        assert_eq!(NodeInfo::from_node(&node).unwrap(), info);

        // Another generator (Istio also knows `istio`) leaves a sidecar a sidecar.
        let mut node = reviews().to_node();
        let generator = Value {
            kind: Some(Kind::StringValue("istio".into())),
        };
        node.metadata
            .as_mut()
            .unwrap()
            .fields
            .insert(GENERATOR.into(), generator);
        assert_eq!(NodeInfo::from_node(&node).unwrap().kind, ProxyKind::Sidecar);
    }

    #[test]
    fn rejects_foreign_ids_and_missing_ip() {
        let mut node = reviews().to_node();
        node.id = "whatever".into();
        assert!(matches!(
            NodeInfo::from_node(&node),
            Err(NodeError::BadId(_))
        ));
        let mut node = reviews().to_node();
        node.metadata.as_mut().unwrap().fields.remove(INSTANCE_IPS);
        assert_eq!(
            NodeInfo::from_node(&node),
            Err(NodeError::BadMetadata(INSTANCE_IPS))
        );
    }
}
