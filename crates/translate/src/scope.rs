//! What one proxy's outbound half can see of the mesh (Istio's
//! SidecarScope): `exportTo` on VirtualServices, DestinationRules,
//! ServiceEntries and Services, narrowed further by the egress hosts of the
//! Sidecar resource that applies to the proxy. Everything downstream reads
//! the scoped snapshot, so a service out of scope gets no cluster, no
//! route and no endpoints; the proxy's own inbound half reads the whole
//! snapshot.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashSet};

use trellis_api::host;
use trellis_api::mesh_config::DEFAULT_ROOT_NAMESPACE;
use trellis_api::{
    AnyResource, OutboundTrafficMode, Resource, ServiceEntry, Sidecar, VirtualService, exported_to,
};
use trellis_config::{MeshService, Snapshot};
use trellis_xds::NodeInfo;
use trellis_xds::node::ProxyKind;

use crate::{MeshOptions, OutboundTrafficPolicy};

/// The Sidecar resource that configures `node`, as Istio picks it: one in
/// the proxy's namespace whose `workloadSelector` matches its labels, else
/// the one in its namespace without a selector, else the root namespace's
/// one without a selector. Among several candidates the first by name
/// wins (Istio takes the oldest; names are what a snapshot orders by).
/// Gateways are configured by their Gateway resources, never by a Sidecar.
pub fn applicable_sidecar<'a>(
    snapshot: &'a Snapshot,
    node: &NodeInfo,
) -> Option<&'a Resource<Sidecar>> {
    if node.kind == ProxyKind::Router {
        return None;
    }
    let selecting = sidecars_in(snapshot, &node.namespace).find(|sidecar| {
        selector_of(sidecar).is_some_and(|labels| {
            labels
                .iter()
                .all(|(key, value)| node.labels.get(key) == Some(value))
        })
    });
    selecting
        .or_else(|| sidecars_in(snapshot, &node.namespace).find(|s| selector_of(s).is_none()))
        .or_else(|| {
            sidecars_in(snapshot, DEFAULT_ROOT_NAMESPACE).find(|s| selector_of(s).is_none())
        })
}

fn sidecars_in<'a: 'n, 'n>(
    snapshot: &'a Snapshot,
    namespace: &'n str,
) -> impl Iterator<Item = &'a Resource<Sidecar>> + 'n {
    snapshot
        .sidecars()
        .filter(move |sidecar| sidecar.namespace() == namespace)
}

/// A `workloadSelector` that selects something (an empty one is none).
fn selector_of(sidecar: &Resource<Sidecar>) -> Option<&BTreeMap<String, String>> {
    sidecar
        .spec
        .workload_selector
        .as_ref()
        .map(|selector| &selector.labels)
        .filter(|labels| !labels.is_empty())
}

/// The mesh options with the Sidecar's `outboundTrafficPolicy`, which
/// overrides the mesh config's for the workloads it applies to.
pub fn mesh_options<'a>(
    snapshot: &Snapshot,
    node: &NodeInfo,
    mesh: &'a MeshOptions,
) -> Cow<'a, MeshOptions> {
    let mode = applicable_sidecar(snapshot, node)
        .and_then(|sidecar| sidecar.spec.outbound_traffic_policy.as_ref())
        .map(|policy| match policy.mode {
            OutboundTrafficMode::AllowAny => OutboundTrafficPolicy::AllowAny,
            OutboundTrafficMode::RegistryOnly => OutboundTrafficPolicy::RegistryOnly,
        });
    match mode {
        Some(mode) if mode != mesh.outbound_traffic_policy => Cow::Owned(MeshOptions {
            outbound_traffic_policy: mode,
            ..mesh.clone()
        }),
        _ => Cow::Borrowed(mesh),
    }
}

/// The part of `snapshot` that `node`'s outbound half may use; the
/// snapshot itself when nothing is out of scope.
pub fn outbound_view<'a>(snapshot: &'a Snapshot, node: &NodeInfo) -> Cow<'a, Snapshot> {
    let namespace = node.namespace.as_str();
    let egress = applicable_sidecar(snapshot, node).and_then(|s| Egress::of(&s.spec, namespace));
    let admits = |config_namespace: &str, host: &str| {
        egress
            .as_ref()
            .is_none_or(|egress| egress.admits(config_namespace, host))
    };
    let keep_virtual_service = |vs: &Resource<VirtualService>| {
        exported_to(&vs.spec.export_to, vs.namespace(), namespace)
            // Delegates have no hosts: their root decides.
            && (vs.spec.hosts.is_empty()
                || vs
                    .spec
                    .hosts
                    .iter()
                    .any(|host| admits(vs.namespace(), &host::resolve(host, vs.namespace()))))
    };
    // Istio imports the services an imported VirtualService routes to.
    let routed_to: HashSet<&str> = match egress {
        None => HashSet::new(),
        Some(_) => snapshot
            .virtual_services()
            .filter(|vs| keep_virtual_service(vs))
            .flat_map(|vs| {
                destination_hosts(&vs.spec)
                    .filter_map(|host| snapshot.registry.service_by_host(host, vs.namespace()))
                    .map(|service| service.hostname.as_str())
            })
            .collect(),
    };
    let keep_resource = |resource: &AnyResource| match resource {
        AnyResource::VirtualService(vs) => keep_virtual_service(vs),
        AnyResource::DestinationRule(rule) => {
            exported_to(&rule.spec.export_to, rule.namespace(), namespace)
        }
        AnyResource::ServiceEntry(entry) => {
            exported_to(&entry.spec.export_to, entry.namespace(), namespace)
                && entry_hosts(entry).any(|host| {
                    admits(entry.namespace(), &host)
                        || routed_to.contains(host.to_ascii_lowercase().as_str())
                })
        }
        _ => true,
    };
    let keep_service = |service: &MeshService| {
        service.visible_from(namespace)
            && (admits(&service.namespace, &service.hostname)
                || routed_to.contains(service.hostname.as_str()))
    };
    let all_kept = snapshot.resources.iter().all(|r| keep_resource(r))
        && snapshot.registry.services().iter().all(keep_service);
    if all_kept {
        return Cow::Borrowed(snapshot);
    }
    let mut registry = snapshot.registry.clone();
    registry.retain_services(keep_service);
    Cow::Owned(Snapshot {
        version: snapshot.version,
        resources: snapshot
            .resources
            .iter()
            .filter(|r| keep_resource(r))
            .cloned()
            .collect(),
        registry,
    })
}

/// A Sidecar's egress hosts, `namespace/dnsName` each, over all its egress
/// listeners.
struct Egress {
    hosts: Vec<(NamespaceMatch, String)>,
}

enum NamespaceMatch {
    Any,
    Named(String),
    None,
}

impl Egress {
    /// `None` when the Sidecar has no egress (it then inherits the
    /// default: everything exported to the namespace).
    fn of(sidecar: &Sidecar, proxy_namespace: &str) -> Option<Egress> {
        let hosts: Vec<_> = sidecar
            .egress
            .iter()
            .flat_map(|listener| &listener.hosts)
            .map(|host| {
                let (namespace, name) = host.split_once('/').unwrap_or(("*", host));
                let namespace = match namespace.trim() {
                    "*" => NamespaceMatch::Any,
                    "~" => NamespaceMatch::None,
                    // In a root-namespace Sidecar too, `.` is the
                    // workload's own namespace.
                    "." => NamespaceMatch::Named(proxy_namespace.to_string()),
                    other => NamespaceMatch::Named(other.to_string()),
                };
                (
                    namespace,
                    name.trim().trim_end_matches('.').to_ascii_lowercase(),
                )
            })
            .collect();
        (!sidecar.egress.is_empty()).then_some(Egress { hosts })
    }

    /// Whether config in `namespace` for `host` (a full name, or a
    /// wildcard like `*.example.com`) is imported.
    fn admits(&self, namespace: &str, host: &str) -> bool {
        self.hosts.iter().any(|(namespaces, pattern)| {
            let namespace_ok = match namespaces {
                NamespaceMatch::Any => true,
                NamespaceMatch::Named(name) => name == namespace,
                NamespaceMatch::None => false,
            };
            namespace_ok && host::overlaps(pattern, host)
        })
    }
}

fn entry_hosts(entry: &Resource<ServiceEntry>) -> impl Iterator<Item = String> + '_ {
    entry
        .spec
        .hosts
        .iter()
        .map(|host| host::resolve(host, entry.namespace()))
}

/// Every host a VirtualService sends traffic to, mirrors included.
fn destination_hosts(vs: &VirtualService) -> impl Iterator<Item = &str> {
    let http = vs.http.iter().flat_map(|route| {
        let routes = route.route.iter().map(|d| &d.destination);
        let mirrors = route
            .mirror
            .iter()
            .chain(route.mirrors.iter().map(|m| &m.destination));
        routes.chain(mirrors)
    });
    let tls = vs
        .tls
        .iter()
        .flat_map(|route| route.route.iter().map(|d| &d.destination));
    let tcp = vs
        .tcp
        .iter()
        .flat_map(|route| route.route.iter().map(|d| &d.destination));
    http.chain(tls)
        .chain(tcp)
        .map(|destination| destination.host.as_str())
}
