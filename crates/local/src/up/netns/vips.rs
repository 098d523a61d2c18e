//! Service addresses under `--netns`, as Kubernetes gives them: a Service
//! keeps the `clusterIP` its manifest sets; one without gets a virtual IP
//! from the Service range, written into the copy of its manifest in the
//! config directory (as the API server records it), so the registry and
//! the sidecars' outbound listeners know it. Headless Services
//! (`clusterIP: None`) are named at their pods' addresses.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use trellis_api::AnyResource;

use crate::up::addresses::{AddressRange, AddressRangeError};
use crate::up::state::WorkloadState;

/// One Service's addresses, as pods' hosts files name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ServiceAddress {
    pub name: String,
    pub namespace: String,
    pub addresses: Vec<Ipv4Addr>,
    /// Allocated by `up` (the manifest has no `clusterIP`).
    pub assigned: bool,
}

/// Every Service's addresses; VIPs for those without a `clusterIP`, in
/// manifest order, skipping addresses other Services already claim.
pub(crate) fn assign<'a>(
    resources: impl Iterator<Item = &'a AnyResource>,
    range: &AddressRange,
    workloads: &[WorkloadState],
) -> Result<Vec<ServiceAddress>, AddressRangeError> {
    let services: Vec<_> = resources
        .filter_map(|resource| match resource {
            AnyResource::Service(service) => Some(service),
            _ => None,
        })
        .collect();
    let claimed: BTreeSet<Ipv4Addr> = services
        .iter()
        .filter_map(|s| s.spec.cluster_ip.as_deref()?.parse().ok())
        .collect();
    let mut allocator = range.allocator();
    let mut assigned = Vec::new();
    for service in services {
        if service.spec.type_.as_deref() == Some("ExternalName") {
            continue;
        }
        let (name, namespace) = (service.name(), service.namespace());
        let (addresses, fresh) = match service.spec.cluster_ip.as_deref().map(str::trim) {
            None | Some("") => {
                let mut vip = allocator.allocate()?;
                while claimed.contains(&vip) {
                    vip = allocator.allocate()?;
                }
                (vec![vip], true)
            }
            Some("None") => (pod_addresses(name, namespace, workloads), false),
            Some(given) => (given.parse().ok().into_iter().collect(), false),
        };
        assigned.push(ServiceAddress {
            name: name.to_owned(),
            namespace: namespace.to_owned(),
            addresses,
            assigned: fresh,
        });
    }
    Ok(assigned)
}

fn pod_addresses(name: &str, namespace: &str, workloads: &[WorkloadState]) -> Vec<Ipv4Addr> {
    workloads
        .iter()
        .filter(|w| w.namespace == namespace && w.services.iter().any(|s| s == name))
        .map(|w| w.address)
        .collect()
}

/// The VIPs `up` allocated, by (namespace, name): what to write into the
/// manifests' copies.
pub(crate) fn allocated(services: &[ServiceAddress]) -> BTreeMap<(String, String), Ipv4Addr> {
    services
        .iter()
        .filter(|s| s.assigned)
        .filter_map(|s| {
            let vip = *s.addresses.first()?;
            Some(((s.namespace.clone(), s.name.clone()), vip))
        })
        .collect()
}

/// Why a Service document could not be given its VIP.
#[derive(Debug, thiserror::Error)]
#[error("adding clusterIP {vip} to Service {name}: {reason}")]
pub(crate) struct RewriteError {
    name: String,
    vip: Ipv4Addr,
    reason: String,
}

/// The Service document `document` (one YAML document) with
/// `spec.clusterIP: VIP`, every other field kept (comments are not).
pub(crate) fn with_cluster_ip(
    name: &str,
    document: &str,
    vip: Ipv4Addr,
) -> Result<String, RewriteError> {
    let error = |reason: String| RewriteError {
        name: name.to_owned(),
        vip,
        reason,
    };
    let mut value: serde_json::Value =
        serde_saphyr::from_str(document).map_err(|e| error(e.to_string()))?;
    let object = value
        .as_object_mut()
        .ok_or_else(|| error("the document is not a mapping".to_owned()))?;
    let spec = object
        .entry("spec")
        .or_insert_with(|| serde_json::Value::Object(Default::default()));
    let spec = spec
        .as_object_mut()
        .ok_or_else(|| error("spec is not a mapping".to_owned()))?;
    spec.insert("clusterIP".to_owned(), vip.to_string().into());
    let yaml = serde_saphyr::to_string(&value).map_err(|e| error(e.to_string()))?;
    Ok(format!(
        "# clusterIP allocated by `trellis up --netns`, as the API server would.\n{yaml}"
    ))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use trellis_api::parse_yaml;

    use super::*;

    const SERVICES: &str = "apiVersion: v1
kind: Service
metadata: {name: reviews}
spec:
  selector: {app: reviews}
  ports: [{name: http, port: 9080}]
---
apiVersion: v1
kind: Service
metadata: {name: pinned}
spec: {clusterIP: 10.96.0.1, selector: {app: pinned}, ports: [{port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: db}
spec: {clusterIP: None, selector: {app: db}, ports: [{port: 5432}]}
";

    #[test]
    fn allocates_vips_around_claimed_ones() {
        let parsed = parse_yaml(Path::new("s.yaml"), SERVICES);
        assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
        let range: AddressRange = "10.96.0.0/16".parse().unwrap();
        let services = assign(parsed.resources.iter(), &range, &[]).unwrap();
        let reviews = &services[0];
        assert_eq!(reviews.addresses, [Ipv4Addr::new(10, 96, 0, 2)]);
        assert!(reviews.assigned);
        assert_eq!(services[1].addresses, [Ipv4Addr::new(10, 96, 0, 1)]);
        assert!(!services[1].assigned);
        assert!(services[2].addresses.is_empty());
        let allocated = allocated(&services);
        assert_eq!(allocated.len(), 1);
        assert_eq!(
            allocated[&("default".to_owned(), "reviews".to_owned())],
            Ipv4Addr::new(10, 96, 0, 2)
        );
    }

    #[test]
    fn writes_the_vip_into_the_service() {
        let document = SERVICES.split("---\n").next().unwrap();
        let yaml = with_cluster_ip("reviews", document, Ipv4Addr::new(10, 96, 0, 2)).unwrap();
        let parsed = parse_yaml(Path::new("s.yaml"), &yaml);
        assert!(parsed.errors.is_empty(), "{:?}\n{yaml}", parsed.errors);
        let [AnyResource::Service(service)] = parsed.resources.as_slice() else {
            panic!("expected one Service in\n{yaml}");
        };
        assert_eq!(service.spec.cluster_ip.as_deref(), Some("10.96.0.2"));
        assert_eq!(service.spec.selector["app"], "reviews");
        assert_eq!(service.spec.ports[0].name.as_deref(), Some("http"));
        assert!(with_cluster_ip("x", "- a\n- b\n", Ipv4Addr::LOCALHOST).is_err());
    }
}
