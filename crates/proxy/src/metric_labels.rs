//! Label values of Istio's request metrics, computed once per proxy,
//! cluster, endpoint or connection and shared, so that counting a request
//! neither allocates nor hashes strings.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;

pub const UNKNOWN: &str = "unknown";

/// One side of a request: the workload that sent it, or that served it.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Workload {
    pub name: String,
    pub namespace: String,
    pub principal: String,
    pub app: String,
    pub version: String,
}

/// The Service a request was addressed to.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Service {
    pub host: String,
    pub name: String,
    pub namespace: String,
}

/// An immutable label group, hashed once when built: metric lookups hash
/// the fingerprint and compare by pointer first.
#[derive(Debug)]
pub struct Shared<T> {
    value: Arc<T>,
    fingerprint: u64,
}

/// Cloning shares the value (a derive would demand `T: Clone`).
impl<T> Clone for Shared<T> {
    fn clone(&self) -> Self {
        Shared {
            value: self.value.clone(),
            fingerprint: self.fingerprint,
        }
    }
}

impl<T: Hash> Shared<T> {
    pub fn new(value: T) -> Self {
        let mut hasher = DefaultHasher::new();
        value.hash(&mut hasher);
        Shared {
            fingerprint: hasher.finish(),
            value: Arc::new(value),
        }
    }
}

impl<T> std::ops::Deref for Shared<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T: PartialEq> PartialEq for Shared<T> {
    fn eq(&self, other: &Self) -> bool {
        self.fingerprint == other.fingerprint
            && (Arc::ptr_eq(&self.value, &other.value) || self.value == other.value)
    }
}

impl<T: Eq> Eq for Shared<T> {}

impl<T> Hash for Shared<T> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.fingerprint);
    }
}

impl Workload {
    pub fn unknown() -> Shared<Workload> {
        Shared::new(Workload::with_principal(UNKNOWN.into()))
    }

    /// A caller known only by its mTLS identity.
    pub fn with_principal(principal: String) -> Workload {
        let unknown = || UNKNOWN.to_string();
        Workload {
            name: unknown(),
            namespace: unknown(),
            principal,
            app: unknown(),
            version: unknown(),
        }
    }

    /// From Istio's endpoint metadata `NAME;NAMESPACE;APP;VERSION;CLUSTER`.
    pub fn from_istio_metadata(workload: &str, principal: Option<String>) -> Option<Workload> {
        let fields: Vec<&str> = workload.split(';').collect();
        let [name, namespace, app, version, ..] = fields.as_slice() else {
            return None;
        };
        Some(Workload {
            name: name.to_string(),
            namespace: namespace.to_string(),
            principal: principal.unwrap_or_else(|| UNKNOWN.into()),
            app: app.to_string(),
            version: version.to_string(),
        })
    }
}

impl Service {
    pub fn unknown() -> Shared<Service> {
        Shared::new(Service {
            host: UNKNOWN.into(),
            name: UNKNOWN.into(),
            namespace: UNKNOWN.into(),
        })
    }

    /// From Istio's cluster name `DIRECTION|PORT|SUBSET|HOST`. A host that
    /// is no Kubernetes Service (a ServiceEntry's) is its own name, as in
    /// Istio; its namespace is not in the cluster name.
    pub fn from_cluster_name(cluster: &str) -> Option<Service> {
        let host = cluster.split('|').nth(3).filter(|h| !h.is_empty())?;
        let mut parts = host.split('.');
        let (name, namespace) = match (parts.next(), parts.next(), parts.next()) {
            (Some(name), Some(namespace), Some("svc")) => (name, namespace),
            _ => (host, UNKNOWN),
        };
        Some(Service {
            host: host.to_string(),
            name: name.to_string(),
            namespace: namespace.to_string(),
        })
    }
}

/// The label groups a proxy uses on every request, built once.
#[derive(Debug)]
pub struct ProxyLabels {
    pub me: Shared<Workload>,
    pub unknown_workload: Shared<Workload>,
    pub unknown_service: Shared<Service>,
}

impl ProxyLabels {
    pub fn new(node: &trellis_xds::NodeInfo, principal: String) -> Self {
        let label = |key: &str| {
            node.labels
                .get(key)
                .cloned()
                .unwrap_or_else(|| UNKNOWN.into())
        };
        let me = Workload {
            name: node.workload_name.clone(),
            namespace: node.namespace.clone(),
            principal,
            app: label("app"),
            version: label("version"),
        };
        ProxyLabels {
            me: Shared::new(me),
            unknown_workload: Workload::unknown(),
            unknown_service: Service::unknown(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_content_is_equal_whatever_the_allocation() {
        let a = Shared::new(Workload::with_principal(
            "spiffe://cluster.local/ns/a/sa/b".into(),
        ));
        let b = Shared::new(Workload::with_principal(
            "spiffe://cluster.local/ns/a/sa/b".into(),
        ));
        let c = Shared::new(Workload::with_principal(
            "spiffe://cluster.local/ns/a/sa/c".into(),
        ));
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn parses_istio_names() {
        let service =
            Service::from_cluster_name("outbound|9080|v1|reviews.default.svc.cluster.local")
                .unwrap();
        assert_eq!(
            (service.name.as_str(), service.namespace.as_str()),
            ("reviews", "default")
        );
        assert!(Service::from_cluster_name("inbound|9080||").is_none());
        let external = Service::from_cluster_name("outbound|443||api.example.com").unwrap();
        assert_eq!(
            (external.name.as_str(), external.namespace.as_str()),
            ("api.example.com", UNKNOWN)
        );
        let workload =
            Workload::from_istio_metadata("reviews-v1;default;reviews;v1;Kubernetes", None)
                .unwrap();
        assert_eq!(
            (workload.name.as_str(), workload.version.as_str()),
            ("reviews-v1", "v1")
        );
        assert!(Workload::from_istio_metadata("garbage", None).is_none());
    }
}
