//! What is in force per watched kind, kept across watch restarts: an
//! invalid object leaves its last good version in force, and a relist
//! (after 410 Gone or a reconnect) replaces the kind's contents at once
//! when complete, so nothing is lost or duplicated in between. Config
//! objects are counted in the validation metrics once per
//! `resourceVersion`: a relist delivers unchanged objects again.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use kube::api::DynamicObject;
use kube::discovery::ApiResource;
use kube::runtime::watcher::Event;
use trellis_api::AnyResource;
use trellis_config::ValidationMetrics;
use trellis_config::validation::ResourceType;

use crate::convert::{self, Converted, ObjectId};
use crate::kinds::{Role, ServedKind};

/// What one object keeps in force.
#[derive(Debug, Clone, PartialEq)]
pub enum Entry {
    Resource(Arc<AnyResource>),
    /// An EndpointSlice's ready pods.
    ReadyPods(BTreeSet<ObjectId>),
}

type Objects = BTreeMap<ObjectId, Entry>;

#[derive(Debug)]
pub struct KindStore {
    resource: ApiResource,
    role: Role,
    in_force: Objects,
    /// Objects of a relist in progress.
    relisting: Option<Objects>,
    /// Whether a complete list has been seen.
    synced: bool,
    validation: ValidationMetrics,
    /// The `resourceVersion` of each object as last counted.
    counted: BTreeMap<ObjectId, String>,
    /// The objects a relist in progress delivered.
    relisted: BTreeSet<ObjectId>,
}

impl KindStore {
    pub fn new(kind: ServedKind, validation: ValidationMetrics) -> KindStore {
        KindStore {
            resource: kind.resource,
            role: kind.role,
            in_force: Objects::new(),
            relisting: None,
            synced: false,
            validation,
            counted: BTreeMap::new(),
            relisted: BTreeSet::new(),
        }
    }

    pub fn is_synced(&self) -> bool {
        self.synced
    }

    pub fn resources(&self) -> impl Iterator<Item = &Arc<AnyResource>> {
        self.entries().map(|(_, resource)| resource)
    }

    /// The resources in force with the (namespace, name) of their object.
    pub fn entries(&self) -> impl Iterator<Item = (&ObjectId, &Arc<AnyResource>)> {
        self.in_force.iter().filter_map(|(id, entry)| match entry {
            Entry::Resource(resource) => Some((id, resource)),
            Entry::ReadyPods(_) => None,
        })
    }

    /// The pods this kind's objects (EndpointSlices) list as ready.
    pub fn ready_pods(&self) -> impl Iterator<Item = &ObjectId> {
        self.in_force
            .values()
            .filter_map(|entry| match entry {
                Entry::ReadyPods(pods) => Some(pods),
                Entry::Resource(_) => None,
            })
            .flatten()
    }

    pub fn role(&self) -> Role {
        self.role
    }

    /// Whether this store holds the objects of `kind` as watched now.
    pub fn is_for(&self, kind: &ServedKind) -> bool {
        self.resource == kind.resource && self.role == kind.role
    }

    /// Applies one watcher event; returns whether what is in force changed.
    pub fn handle(&mut self, event: Event<DynamicObject>) -> bool {
        match event {
            Event::Init => {
                self.relisting = Some(Objects::new());
                self.relisted.clear();
                false
            }
            Event::InitApply(object) => {
                let id = object_id(&object);
                self.relisted.insert(id.clone());
                let converted = self.convert(&object);
                let previous = self.in_force.get(&id).cloned();
                if let Some(relisting) = &mut self.relisting
                    && let Some(resource) = keep(converted, previous)
                {
                    relisting.insert(id, resource);
                }
                false
            }
            Event::InitDone => {
                self.synced = true;
                // Objects deleted while the watch was down are forgotten.
                let listed = std::mem::take(&mut self.relisted);
                self.counted.retain(|id, _| listed.contains(id));
                let relisted = self.relisting.take().unwrap_or_default();
                let changed = relisted != self.in_force;
                self.in_force = relisted;
                changed
            }
            Event::Apply(object) => {
                let id = object_id(&object);
                let previous = self.in_force.get(&id).cloned();
                let current = keep(self.convert(&object), previous.clone());
                match current {
                    Some(resource) => self.in_force.insert(id, resource),
                    None => self.in_force.remove(&id),
                };
                self.in_force.get(&object_id(&object)) != previous.as_ref()
            }
            Event::Delete(object) => {
                let id = object_id(&object);
                self.counted.remove(&id);
                self.in_force.remove(&id).is_some()
            }
        }
    }

    fn convert(&mut self, object: &DynamicObject) -> Converted {
        let converted = convert::convert(self.role, &self.resource, object);
        self.count(object, &converted);
        let origin = convert::origin(&self.resource.kind, object);
        match &converted {
            Converted::Resource(_, warnings) | Converted::Unsupported(warnings) => {
                for warning in warnings {
                    tracing::warn!(object = %origin, "{warning}");
                }
            }
            Converted::Invalid(_, errors) => {
                for error in errors {
                    tracing::error!(object = %origin, "refused, last good version kept: {error}");
                }
            }
            Converted::ReadyPods(_) | Converted::Nothing => {}
        }
        converted
    }

    /// Counts a config object's validation, unless this version of it was
    /// counted already. (Objects without a `resourceVersion`, which a real
    /// API server always sets, count every time.)
    fn count(&mut self, object: &DynamicObject, converted: &Converted) {
        let resource = || ResourceType {
            group: self.resource.group.clone(),
            version: self.resource.version.clone(),
            resource: self.resource.plural.clone(),
        };
        let id = object_id(object);
        let version = object.metadata.resource_version.as_ref();
        if version.is_some() && self.counted.get(&id) == version {
            return;
        }
        match converted {
            Converted::Resource(..) if self.role == Role::Config => {
                self.validation.passed(resource());
            }
            Converted::Invalid(reason, _) => self.validation.failed(resource(), *reason),
            _ => return,
        }
        if let Some(version) = version {
            self.counted.insert(id, version.clone());
        }
    }
}

/// What stays in force for an object: the new version when valid, the
/// previous one when the new version is invalid, nothing when the object
/// contributes nothing (a pod that is not ready).
fn keep(converted: Converted, previous: Option<Entry>) -> Option<Entry> {
    match converted {
        Converted::Resource(resource, _) => match previous {
            // Unchanged content keeps its Arc: cheap snapshot comparisons.
            Some(Entry::Resource(previous)) if *previous == *resource => {
                Some(Entry::Resource(previous))
            }
            _ => Some(Entry::Resource(Arc::new(*resource))),
        },
        Converted::ReadyPods(pods) => Some(Entry::ReadyPods(pods)),
        Converted::Nothing | Converted::Unsupported(_) => None,
        Converted::Invalid(..) => previous,
    }
}

fn object_id(object: &DynamicObject) -> ObjectId {
    let namespace = object.metadata.namespace.clone().unwrap_or_default();
    (namespace, convert::name(object).to_string())
}

#[cfg(test)]
mod tests;
