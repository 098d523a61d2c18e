//! The xDS resources generated for one proxy, and their wire encoding.

use std::collections::BTreeMap;
use std::hash::{DefaultHasher, Hash, Hasher};

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use envoy_types::pb::google::protobuf::Any;
use envoy_types::util::pack_any;

use crate::type_url;

/// Everything one proxy needs, as typed Envoy resources.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ProxyResources {
    pub listeners: Vec<Listener>,
    pub routes: Vec<RouteConfiguration>,
    pub clusters: Vec<Cluster>,
    pub endpoints: Vec<ClusterLoadAssignment>,
}

/// One encoded resource type: resources by name, and a version derived from
/// their content (so a restarted control plane reports the same version for
/// the same config, and unchanged types are not pushed again).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TypedResources {
    pub version: String,
    pub by_name: BTreeMap<String, Any>,
}

impl TypedResources {
    fn new(by_name: BTreeMap<String, Any>) -> Self {
        let mut hasher = DefaultHasher::new();
        by_name.hash(&mut hasher);
        TypedResources {
            version: format!("{:016x}", hasher.finish()),
            by_name,
        }
    }

    /// The named resources (all of them for an empty name list), in name order.
    pub fn select(&self, names: &[String]) -> Vec<Any> {
        if names.is_empty() {
            return self.by_name.values().cloned().collect();
        }
        names
            .iter()
            .filter_map(|name| self.by_name.get(name).cloned())
            .collect()
    }
}

/// A proxy's resources packed as `Any`, keyed by type URL.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EncodedResources {
    pub by_type: BTreeMap<&'static str, TypedResources>,
}

impl EncodedResources {
    pub fn get(&self, type_url: &str) -> Option<&TypedResources> {
        self.by_type.get(type_url)
    }
}

impl ProxyResources {
    pub fn encode(&self) -> EncodedResources {
        let mut by_type = BTreeMap::new();
        by_type.insert(type_url::LISTENER, pack_all(&self.listeners, |l| &l.name));
        by_type.insert(type_url::ROUTE, pack_all(&self.routes, |r| &r.name));
        by_type.insert(type_url::CLUSTER, pack_all(&self.clusters, |c| &c.name));
        by_type.insert(
            type_url::ENDPOINT,
            pack_all(&self.endpoints, |e| &e.cluster_name),
        );
        EncodedResources { by_type }
    }
}

fn pack_all<T>(items: &[T], name: impl Fn(&T) -> &String) -> TypedResources
where
    T: prost::Message + prost::Name + Clone,
{
    let by_name = items
        .iter()
        .map(|item| (name(item).clone(), pack_any(item.clone())))
        .collect();
    TypedResources::new(by_name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_follows_content_only() {
        let mut resources = ProxyResources::default();
        resources.clusters.push(Cluster {
            name: "outbound|9080||reviews.default.svc.cluster.local".into(),
            ..Default::default()
        });
        let first = resources.encode();
        let again = resources.encode();
        assert_eq!(first, again);
        resources.clusters[0].name.push('x');
        let changed = resources.encode();
        assert_ne!(
            first.get(type_url::CLUSTER).unwrap().version,
            changed.get(type_url::CLUSTER).unwrap().version
        );
        assert_eq!(
            first.get(type_url::LISTENER).unwrap().version,
            changed.get(type_url::LISTENER).unwrap().version
        );
    }

    #[test]
    fn select_by_name_skips_unknown_names() {
        let mut resources = ProxyResources::default();
        for name in ["a", "b"] {
            resources.clusters.push(Cluster {
                name: name.into(),
                ..Default::default()
            });
        }
        let encoded = resources.encode();
        let clusters = encoded.get(type_url::CLUSTER).unwrap();
        assert_eq!(clusters.select(&[]).len(), 2);
        assert_eq!(clusters.select(&["b".into(), "zz".into()]).len(), 1);
    }
}
