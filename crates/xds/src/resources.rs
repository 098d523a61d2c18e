//! The xDS resources generated for one proxy, and their wire encoding.

use std::collections::BTreeMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;

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

/// Resources of one type, packed once and shared (`Arc`) by every proxy
/// that gets them; each resource keeps the version delta xDS reports.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ResourceLayer {
    version: String,
    entries: BTreeMap<String, Versioned>,
}

#[derive(Debug, PartialEq, Eq)]
struct Versioned {
    version: String,
    any: Any,
}

impl ResourceLayer {
    pub fn new(by_name: BTreeMap<String, Any>) -> Self {
        let version = content_version(&by_name);
        let entries = by_name
            .into_iter()
            .map(|(name, any)| {
                let version = content_version(&any);
                (name, Versioned { version, any })
            })
            .collect();
        ResourceLayer { version, entries }
    }

    pub fn pack<T>(items: &[T], name: impl Fn(&T) -> &String) -> Self
    where
        T: prost::Message + prost::Name + Clone,
    {
        ResourceLayer::new(
            items
                .iter()
                .map(|item| (name(item).clone(), pack_any(item.clone())))
                .collect(),
        )
    }

    /// A hash of the layer's content, stable across restarts.
    pub fn version(&self) -> &str {
        &self.version
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

fn content_version(content: &impl Hash) -> String {
    let mut hasher = DefaultHasher::new();
    content.hash(&mut hasher);
    format!("{:016x}", hasher.finish())
}

fn entry<'a>((name, v): (&'a String, &'a Versioned)) -> (&'a String, &'a str, &'a Any) {
    (name, v.version.as_str(), &v.any)
}

/// One proxy's resources of one type, by name: shared layers, the first
/// naming a resource wins. Iterates in name order.
#[derive(Clone, Debug, Default)]
pub struct ResourceMap {
    layers: Vec<Arc<ResourceLayer>>,
}

impl ResourceMap {
    /// `(name, version, resource)` in name order.
    pub fn iter_versioned(&self) -> Box<dyn Iterator<Item = (&String, &str, &Any)> + '_> {
        match self.layers.as_slice() {
            [] => Box::new(std::iter::empty()),
            [only] => Box::new(only.entries.iter().map(entry)),
            layers => {
                let mut all: Vec<_> = layers.iter().flat_map(|l| l.entries.iter()).collect();
                all.sort_by(|a, b| a.0.cmp(b.0)); // stable: the first layer stays first
                all.dedup_by(|later, earlier| later.0 == earlier.0);
                Box::new(all.into_iter().map(entry))
            }
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &Any)> + '_ {
        self.iter_versioned().map(|(name, _, any)| (name, any))
    }

    pub fn values(&self) -> impl Iterator<Item = &Any> + '_ {
        self.iter_versioned().map(|(_, _, any)| any)
    }

    pub fn get(&self, name: &str) -> Option<&Any> {
        self.layers
            .iter()
            .find_map(|layer| layer.entries.get(name))
            .map(|v| &v.any)
    }

    pub fn len(&self) -> usize {
        self.iter_versioned().count()
    }

    pub fn is_empty(&self) -> bool {
        self.layers.iter().all(|layer| layer.is_empty())
    }
}

impl PartialEq for ResourceMap {
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}

impl Eq for ResourceMap {}

/// One encoded resource type: resources by name, and a version derived from
/// their content (so a restarted control plane reports the same version for
/// the same config, and unchanged types are not pushed again).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TypedResources {
    pub version: String,
    pub by_name: ResourceMap,
}

impl TypedResources {
    /// A proxy's resources from shared layers (empty ones are dropped).
    pub fn from_layers(layers: impl IntoIterator<Item = Arc<ResourceLayer>>) -> Self {
        let layers: Vec<_> = layers.into_iter().filter(|l| !l.is_empty()).collect();
        let version = match layers.as_slice() {
            [] => content_version(&BTreeMap::<String, Any>::new()),
            [only] => only.version.clone(),
            layers => content_version(&layers.iter().map(|l| &l.version).collect::<Vec<_>>()),
        };
        TypedResources {
            version,
            by_name: ResourceMap { layers },
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

/// [`ProxyResources`] packed once, to be shared: one layer per type.
#[derive(Clone, Debug, Default)]
pub struct EncodedLayers {
    pub listeners: Arc<ResourceLayer>,
    pub routes: Arc<ResourceLayer>,
    pub clusters: Arc<ResourceLayer>,
    pub endpoints: Arc<ResourceLayer>,
}

impl EncodedLayers {
    pub fn layer(&self, type_url: &str) -> Option<&Arc<ResourceLayer>> {
        match type_url {
            type_url::LISTENER => Some(&self.listeners),
            type_url::ROUTE => Some(&self.routes),
            type_url::CLUSTER => Some(&self.clusters),
            type_url::ENDPOINT => Some(&self.endpoints),
            _ => None,
        }
    }

    /// A proxy's resources from these parts, the first naming a resource
    /// winning.
    pub fn compose(parts: &[&EncodedLayers]) -> EncodedResources {
        let by_type = type_url::PUSH_ORDER
            .into_iter()
            .map(|url| {
                let layers = parts.iter().filter_map(|p| p.layer(url).cloned());
                (url, TypedResources::from_layers(layers))
            })
            .collect();
        EncodedResources { by_type }
    }
}

impl ProxyResources {
    pub fn encode(&self) -> EncodedResources {
        EncodedLayers::compose(&[&self.encode_layers()])
    }

    pub fn encode_layers(&self) -> EncodedLayers {
        EncodedLayers {
            listeners: Arc::new(ResourceLayer::pack(&self.listeners, |l| &l.name)),
            routes: Arc::new(ResourceLayer::pack(&self.routes, |r| &r.name)),
            clusters: Arc::new(ResourceLayer::pack(&self.clusters, |c| &c.name)),
            endpoints: Arc::new(ResourceLayer::pack(&self.endpoints, |e| &e.cluster_name)),
        }
    }
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
    fn layers_compose_in_name_order_and_the_first_wins() {
        let cluster = |name: &str, seconds: i64| Cluster {
            name: name.into(),
            connect_timeout: Some(envoy_types::pb::google::protobuf::Duration {
                seconds,
                nanos: 0,
            }),
            ..Default::default()
        };
        let shared = ProxyResources {
            clusters: vec![cluster("b", 1), cluster("d", 1)],
            ..Default::default()
        };
        let own = ProxyResources {
            clusters: vec![cluster("a", 2), cluster("d", 2)],
            ..Default::default()
        };
        let composed = EncodedLayers::compose(&[&shared.encode_layers(), &own.encode_layers()]);
        let clusters = composed.get(type_url::CLUSTER).unwrap();
        let names: Vec<_> = clusters.by_name.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["a", "b", "d"]);
        let d: Cluster =
            prost::Message::decode(clusters.by_name.get("d").unwrap().value.as_slice()).unwrap();
        assert_eq!(d.connect_timeout.unwrap().seconds, 1);
        // Same content, same version; a layer's change changes it.
        let again = EncodedLayers::compose(&[&shared.encode_layers(), &own.encode_layers()]);
        assert_eq!(
            again.get(type_url::CLUSTER).unwrap().version,
            clusters.version
        );
        let changed = ProxyResources {
            clusters: vec![cluster("a", 3)],
            ..Default::default()
        };
        let other = EncodedLayers::compose(&[&shared.encode_layers(), &changed.encode_layers()]);
        assert_ne!(
            other.get(type_url::CLUSTER).unwrap().version,
            clusters.version
        );
        // A type no part has is present and empty.
        assert!(composed.get(type_url::ROUTE).unwrap().by_name.is_empty());
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
