//! Immutable, versioned views of the whole configuration, shared as
//! `Arc<Snapshot>` by everything that reads config.

use std::sync::Arc;

use trellis_api::{
    AnyResource, AuthorizationPolicy, DeploymentSpec, DestinationRule, NamespaceSpec,
    PeerAuthentication, RequestAuthentication, Resource, ResourceKey, ServiceAccountSpec,
    ServiceEntry, ServiceSpec, Sidecar, VirtualService, WorkloadEntry, slo::ServiceLevelObjective,
};

use crate::registry::Registry;

/// Every resource in force at one version, and the registry built from them.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// 1 for the first snapshot of a source, then +1 for each change.
    pub version: u64,
    /// Sorted by [`ResourceKey`] (kind, namespace, name): deterministic
    /// whatever the files' layout.
    pub resources: Vec<Arc<AnyResource>>,
    pub registry: Registry,
}

macro_rules! typed_accessor {
    ($(#[$doc:meta])* $name:ident, $variant:ident, $spec:ty) => {
        $(#[$doc])*
        pub fn $name(&self) -> impl Iterator<Item = &Resource<$spec>> + '_ {
            self.resources.iter().filter_map(|resource| match resource.as_ref() {
                AnyResource::$variant(typed) => Some(typed),
                _ => None,
            })
        }
    };
}

impl Snapshot {
    /// Builds a snapshot (and its registry) from the resources in force.
    pub fn new(version: u64, mut resources: Vec<Arc<AnyResource>>) -> Snapshot {
        resources.sort_by_cached_key(|resource| resource.key());
        let mut snapshot = Snapshot {
            version,
            resources,
            registry: Registry::default(),
        };
        snapshot.registry = Registry::new(snapshot.services(), snapshot.workload_entries())
            .with_service_entries(snapshot.service_entries());
        snapshot
    }

    /// The resource with this key, if present.
    pub fn get(&self, key: &ResourceKey) -> Option<&Arc<AnyResource>> {
        self.resources
            .binary_search_by(|resource| resource.key().cmp(key))
            .ok()
            .map(|index| &self.resources[index])
    }

    typed_accessor!(services, Service, ServiceSpec);
    typed_accessor!(service_accounts, ServiceAccount, ServiceAccountSpec);
    typed_accessor!(deployments, Deployment, DeploymentSpec);
    typed_accessor!(namespaces, Namespace, NamespaceSpec);
    typed_accessor!(virtual_services, VirtualService, VirtualService);
    typed_accessor!(destination_rules, DestinationRule, DestinationRule);
    typed_accessor!(workload_entries, WorkloadEntry, WorkloadEntry);
    typed_accessor!(sidecars, Sidecar, Sidecar);
    typed_accessor!(
        /// Sorted by namespace, then name (the order hosts are claimed in).
        service_entries,
        ServiceEntry,
        ServiceEntry
    );
    typed_accessor!(
        /// Sorted by namespace, then name.
        peer_authentications,
        PeerAuthentication,
        PeerAuthentication
    );
    typed_accessor!(
        /// Sorted by namespace, then name.
        request_authentications,
        RequestAuthentication,
        RequestAuthentication
    );
    typed_accessor!(
        /// Sorted by namespace, then name.
        authorization_policies,
        AuthorizationPolicy,
        AuthorizationPolicy
    );
    typed_accessor!(
        /// Sorted by namespace, then name.
        service_level_objectives,
        ServiceLevelObjective,
        ServiceLevelObjective
    );
}
