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
    /// Istio's canonical service and revision (`service.istio.io/canonical-*`
    /// labels, else `app` / `version`, else the workload name / `latest`).
    pub canonical_service: String,
    pub canonical_revision: String,
    /// The cluster the workload runs in (Istio's cluster ID).
    pub cluster: String,
}

/// Istio's cluster ID when none is configured.
pub const DEFAULT_CLUSTER: &str = "Kubernetes";
const CANONICAL_NAME: &str = "service.istio.io/canonical-name";
const CANONICAL_REVISION: &str = "service.istio.io/canonical-revision";

/// Istio's canonical service and revision of a workload with `labels`.
pub fn canonical_names(
    labels: impl Fn(&str) -> Option<String>,
    workload_name: &str,
) -> (String, String) {
    let service = labels(CANONICAL_NAME)
        .or_else(|| labels("app.kubernetes.io/name"))
        .or_else(|| labels("app"))
        .unwrap_or_else(|| workload_name.to_string());
    let revision = labels(CANONICAL_REVISION)
        .or_else(|| labels("app.kubernetes.io/version"))
        .or_else(|| labels("version"))
        .unwrap_or_else(|| "latest".to_string());
    (service, revision)
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
            canonical_service: unknown(),
            canonical_revision: unknown(),
            cluster: unknown(),
        }
    }

    /// From Istio's endpoint metadata
    /// `NAME;NAMESPACE;CANONICAL_SERVICE;CANONICAL_REVISION;CLUSTER`.
    pub fn from_istio_metadata(workload: &str, principal: Option<String>) -> Option<Workload> {
        let fields: Vec<&str> = workload.split(';').collect();
        let [name, namespace, service, revision, rest @ ..] = fields.as_slice() else {
            return None;
        };
        let cluster = rest
            .first()
            .filter(|c| !c.is_empty())
            .unwrap_or(&DEFAULT_CLUSTER);
        Some(Workload {
            name: name.to_string(),
            namespace: namespace.to_string(),
            principal: principal.unwrap_or_else(|| UNKNOWN.into()),
            app: service.to_string(),
            version: revision.to_string(),
            canonical_service: service.to_string(),
            canonical_revision: revision.to_string(),
            cluster: cluster.to_string(),
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
        let (canonical_service, canonical_revision) =
            canonical_names(|key| node.labels.get(key).cloned(), &node.workload_name);
        let me = Workload {
            name: node.workload_name.clone(),
            namespace: node.namespace.clone(),
            principal,
            app: label("app"),
            version: label("version"),
            canonical_service,
            canonical_revision,
            cluster: DEFAULT_CLUSTER.into(),
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
        assert_eq!(
            (
                workload.canonical_service.as_str(),
                workload.canonical_revision.as_str(),
                workload.cluster.as_str()
            ),
            ("reviews", "v1", "Kubernetes")
        );
        assert!(Workload::from_istio_metadata("garbage", None).is_none());
    }
}
