//! An index over the resources being analyzed: the services (Kubernetes
//! Services and ServiceEntry hosts) every host name can refer to, the
//! workloads (pods) labels select, and the Istio resources by kind.

use std::collections::BTreeMap;

use trellis_api::istio::AuthorizationPolicy;
use trellis_api::{
    AnyResource, DestinationRule, Gateway, MeshConfig, PathNormalizationMode, Resource,
    ServiceEntry, ServiceSpec, VirtualService,
};

use crate::credentials::LocalCredentials;
use crate::host;

/// Where Istio's own resources live (its root namespace).
pub const ROOT_NAMESPACE: &str = "istio-system";

/// The ConfigMap istiod reads its mesh config from.
const MESH_CONFIG_MAP: &str = "istio";

/// Kubernetes exports a Service with this annotation (comma-separated).
const EXPORT_TO_ANNOTATION: &str = "networking.istio.io/exportTo";

/// One host of the service registry.
#[derive(Debug)]
pub struct ServiceHost<'a> {
    /// Fully qualified, or a wildcard from a ServiceEntry.
    pub name: String,
    pub namespace: &'a str,
    pub export_to: Vec<String>,
    pub ports: Vec<u32>,
    /// Set when the host is a Kubernetes Service (which selects pods).
    pub service: Option<&'a Resource<ServiceSpec>>,
}

/// A pod, as written or as a Deployment's template would create it.
#[derive(Debug, Clone, Copy)]
pub struct Workload<'a> {
    pub namespace: &'a str,
    pub labels: &'a BTreeMap<String, String>,
}

#[derive(Debug, Default)]
pub struct Model<'a> {
    pub virtual_services: Vec<&'a Resource<VirtualService>>,
    pub destination_rules: Vec<&'a Resource<DestinationRule>>,
    pub gateways: Vec<&'a Resource<Gateway>>,
    pub services: Vec<&'a Resource<ServiceSpec>>,
    pub service_entries: Vec<&'a Resource<ServiceEntry>>,
    pub authorization_policies: Vec<&'a Resource<AuthorizationPolicy>>,
    pub workloads: Vec<Workload<'a>>,
    pub hosts: Vec<ServiceHost<'a>>,
    /// Local mode's gateway credentials, when a directory was analyzed.
    pub credentials: Option<&'a LocalCredentials>,
    /// From the `istio` ConfigMap of the root namespace (or a mesh config
    /// file given to `analyze`), else Istio's default.
    pub path_normalization: PathNormalizationMode,
}

impl<'a> Model<'a> {
    /// Indexes `resources`. When they hold no Pods, each Deployment's pod
    /// template stands for the pods it creates (what local mode runs).
    pub fn new(resources: impl IntoIterator<Item = &'a AnyResource>) -> Model<'a> {
        let mut model = Model::default();
        let mut pods = Vec::new();
        let mut templates = Vec::new();
        for resource in resources {
            match resource {
                AnyResource::VirtualService(vs) => model.virtual_services.push(vs),
                AnyResource::DestinationRule(dr) => model.destination_rules.push(dr),
                AnyResource::Gateway(gateway) => model.gateways.push(gateway),
                AnyResource::Service(service) => model.services.push(service),
                AnyResource::ServiceEntry(entry) => model.service_entries.push(entry),
                AnyResource::AuthorizationPolicy(policy) => {
                    model.authorization_policies.push(policy);
                }
                AnyResource::ConfigMap(map)
                    if map.name() == MESH_CONFIG_MAP && map.namespace() == ROOT_NAMESPACE =>
                {
                    // An invalid mesh config is reported where it is loaded.
                    if let Ok(outcome) = MeshConfig::from_config_map(map) {
                        model.path_normalization = outcome.config.path_normalization();
                    }
                }
                AnyResource::Pod(pod) => pods.push(Workload {
                    namespace: pod.namespace(),
                    labels: &pod.meta.labels,
                }),
                AnyResource::Deployment(deployment) => templates.push(Workload {
                    namespace: deployment.namespace(),
                    labels: &deployment.spec.template.metadata.labels,
                }),
                _ => {}
            }
        }
        model.workloads = if pods.is_empty() { templates } else { pods };
        model.hosts = registry(&model.services, &model.service_entries);
        model
    }

    /// The registry hosts `host` (fully qualified) can refer to from `namespace`.
    pub fn hosts_for<'m>(
        &'m self,
        host: &'m str,
        namespace: &'m str,
    ) -> impl Iterator<Item = &'m ServiceHost<'a>> + 'm {
        self.hosts.iter().filter(move |candidate| {
            host::overlaps(&candidate.name, host)
                && host::visible(&candidate.export_to, candidate.namespace, namespace)
        })
    }

    /// The DestinationRules whose host overlaps `host` (fully qualified) and
    /// that are visible from `namespace`.
    pub fn destination_rules_for<'m>(
        &'m self,
        host: &'m str,
        namespace: &'m str,
    ) -> impl Iterator<Item = &'a Resource<DestinationRule>> + 'm {
        self.destination_rules.iter().copied().filter(move |dr| {
            host::overlaps(&host::resolve(&dr.spec.host, dr.namespace()), host)
                && host::visible(&dr.spec.export_to, dr.namespace(), namespace)
        })
    }

    /// The Gateway a VirtualService names as `reference` (`name`,
    /// `namespace/name` or the old `name.namespace...` form).
    pub fn gateway(&self, reference: &str, namespace: &str) -> Option<&'a Resource<Gateway>> {
        let (gateway_namespace, name) = gateway_key(reference, namespace);
        self.gateways
            .iter()
            .copied()
            .find(|gateway| gateway.name() == name && gateway.namespace() == gateway_namespace)
    }

    /// Workloads of `namespace` whose labels include every pair of `selector`.
    pub fn workloads_selected<'m>(
        &'m self,
        namespace: &'m str,
        selector: &'m BTreeMap<String, String>,
    ) -> impl Iterator<Item = &'m Workload<'a>> + 'm {
        self.workloads.iter().filter(move |workload| {
            workload.namespace == namespace
                && selector
                    .iter()
                    .all(|(k, v)| workload.labels.get(k) == Some(v))
        })
    }
}

/// The namespace and name a gateway reference denotes.
pub fn gateway_key<'r>(reference: &'r str, namespace: &'r str) -> (&'r str, &'r str) {
    if let Some((gateway_namespace, name)) = reference.split_once('/') {
        return (gateway_namespace, name);
    }
    match reference.split_once('.') {
        Some((name, rest)) => (rest.split('.').next().unwrap_or(namespace), name),
        None => (namespace, reference),
    }
}

fn registry<'a>(
    services: &[&'a Resource<ServiceSpec>],
    entries: &[&'a Resource<ServiceEntry>],
) -> Vec<ServiceHost<'a>> {
    let mut hosts = Vec::new();
    for &service in services {
        let export_to = service
            .meta
            .annotations
            .get(EXPORT_TO_ANNOTATION)
            .map(|value| value.split(',').map(|e| e.trim().to_string()).collect())
            .unwrap_or_default();
        hosts.push(ServiceHost {
            name: host::service_fqdn(service.name(), service.namespace()),
            namespace: service.namespace(),
            export_to,
            ports: service
                .spec
                .ports
                .iter()
                .map(|p| u32::from(p.port))
                .collect(),
            service: Some(service),
        });
    }
    for &entry in entries {
        for name in &entry.spec.hosts {
            hosts.push(ServiceHost {
                name: host::resolve(name, entry.namespace()),
                namespace: entry.namespace(),
                export_to: entry.spec.export_to.clone(),
                ports: entry.spec.ports.iter().map(|p| p.number).collect(),
                service: None,
            });
        }
    }
    hosts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateway_references_name_namespace_and_gateway() {
        assert_eq!(
            gateway_key("bookinfo-gateway", "default"),
            ("default", "bookinfo-gateway")
        );
        assert_eq!(
            gateway_key("istio-system/ingress", "default"),
            ("istio-system", "ingress")
        );
        assert_eq!(
            gateway_key("ingress.istio-system.svc.cluster.local", "default"),
            ("istio-system", "ingress")
        );
    }
}
