//! Turns API objects into snapshot resources. Config objects go through
//! `trellis_api`'s parser, so validation is the same as for files; pods
//! become workloads (WorkloadEntries), which is how the registry learns
//! endpoints; EndpointSlices say which pods are ready.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::PathBuf;

use kube::api::DynamicObject;
use kube::discovery::ApiResource;
use serde_json::{Value, json};
use trellis_api::{
    AnyResource, ConfigError, Document, ObjectMeta, Resource, SourceRef, WorkloadEntry,
    read_documents,
};
use trellis_config::validation::Rejection;

use crate::kinds::{Readiness, Role};

/// (namespace, name); namespace is empty for cluster-scoped kinds.
pub type ObjectId = (String, String);

/// What one object contributes.
#[derive(Debug)]
pub enum Converted {
    /// In force, with warnings worth logging (unknown fields, ...).
    Resource(Box<AnyResource>, Vec<String>),
    /// An EndpointSlice: the pods it lists as ready endpoints.
    ReadyPods(BTreeSet<ObjectId>),
    /// Nothing, and nothing to complain about: a pod that is not ready.
    Nothing,
    /// Nothing: a kind Trellis does not read, with the warning saying so.
    Unsupported(Vec<String>),
    /// Refused, for this reason; the last good version of the object
    /// stays in force.
    Invalid(Rejection, Vec<String>),
}

/// `kubernetes:Kind/namespace/name`, where the object's problems point.
pub fn origin(kind: &str, object: &DynamicObject) -> String {
    match object.metadata.namespace.as_deref() {
        Some(namespace) => format!("kubernetes:{kind}/{namespace}/{}", name(object)),
        None => format!("kubernetes:{kind}/{}", name(object)),
    }
}

pub fn name(object: &DynamicObject) -> &str {
    object.metadata.name.as_deref().unwrap_or_default()
}

pub fn convert(role: Role, resource: &ApiResource, object: &DynamicObject) -> Converted {
    match role {
        Role::Config => config_resource(resource, object),
        Role::Workloads(readiness) => match pod_workload(object, readiness) {
            Some(workload) => Converted::Resource(Box::new(workload), Vec::new()),
            None => Converted::Nothing,
        },
        Role::EndpointSlices => Converted::ReadyPods(ready_pods(object)),
    }
}

/// The pods an EndpointSlice lists as ready. As Istio does by default,
/// terminating endpoints get no traffic, even while still serving; an
/// unset `ready` means ready (the API's rule for an unknown state).
/// Endpoints that are not pods (slices of Services without a selector,
/// such as `kubernetes`) are not used: workloads come from pods.
fn ready_pods(slice: &DynamicObject) -> BTreeSet<ObjectId> {
    if slice.data.get("addressType").and_then(Value::as_str) == Some("FQDN") {
        return BTreeSet::new();
    }
    let slice_namespace = slice.metadata.namespace.clone().unwrap_or_default();
    let endpoints = slice.data.get("endpoints").and_then(Value::as_array);
    endpoints
        .into_iter()
        .flatten()
        .filter(|endpoint| {
            let conditions = &endpoint["conditions"];
            conditions["ready"] != false && conditions["terminating"] != true
        })
        .filter_map(|endpoint| {
            let target = &endpoint["targetRef"];
            if target["kind"] != "Pod" {
                return None;
            }
            let namespace = target["namespace"].as_str().unwrap_or(&slice_namespace);
            Some((namespace.to_string(), target["name"].as_str()?.to_string()))
        })
        .collect()
}

/// Parses the object as the document a user would have written: type,
/// name, namespace, labels, annotations and spec. Server-set fields
/// (status, managedFields, uid, ...) are not part of the config.
fn config_resource(resource: &ApiResource, object: &DynamicObject) -> Converted {
    let metadata = &object.metadata;
    let mut document = json!({
        "apiVersion": resource.api_version,
        "kind": resource.kind,
        "metadata": {
            "name": metadata.name,
            "labels": metadata.labels.clone().unwrap_or_default(),
            "annotations": metadata.annotations.clone().unwrap_or_default(),
        },
    });
    if let Some(namespace) = &metadata.namespace {
        document["metadata"]["namespace"] = namespace.clone().into();
    }
    if let Some(spec) = object.data.get("spec") {
        document["spec"] = spec.clone();
    }
    // Pretty JSON is YAML with one field per line: errors get useful lines.
    let text = serde_json::to_string_pretty(&document).unwrap_or_default();
    let file = PathBuf::from(origin(&resource.kind, object));
    // One object is one document: nothing to check across documents.
    match read_documents(&file, &text).into_iter().next() {
        Some(Document::Resource {
            resource,
            violations,
            warnings,
            ..
        }) => {
            if violations.is_empty() {
                Converted::Resource(Box::new(resource), messages(&warnings))
            } else {
                Converted::Invalid(Rejection::InvalidResource, messages(&violations))
            }
        }
        // The object did not fit its kind's schema.
        Some(Document::Unreadable(errors)) => {
            Converted::Invalid(Rejection::CrdConversionError, messages(&errors))
        }
        Some(Document::Unsupported(warning)) => Converted::Unsupported(messages(&[warning])),
        None => Converted::Unsupported(Vec::new()),
    }
}

fn messages(errors: &[ConfigError]) -> Vec<String> {
    errors.iter().map(ToString::to_string).collect()
}

/// A pod as a workload, when it may receive traffic: it has an IP, is not
/// terminating or finished, and, when readiness comes from the pod, its
/// Ready condition is true (the endpoints controller's rule for ready
/// addresses). With EndpointSlices, the snapshot keeps only the pods they
/// list as ready.
fn pod_workload(pod: &DynamicObject, readiness: Readiness) -> Option<AnyResource> {
    let status = pod.data.get("status")?;
    let ip: IpAddr = status.get("podIP")?.as_str()?.parse().ok()?;
    let phase = status.get("phase").and_then(Value::as_str);
    if pod.metadata.deletion_timestamp.is_some() || matches!(phase, Some("Succeeded" | "Failed")) {
        return None;
    }
    if readiness == Readiness::PodCondition && !is_ready(status) {
        return None;
    }
    let spec = pod.data.get("spec");
    // Without one the registry uses `default`, as Kubernetes does.
    let service_account = spec
        .and_then(|spec| spec.get("serviceAccountName"))
        .and_then(Value::as_str)
        .filter(|account| !account.is_empty());
    let labels: BTreeMap<String, String> = pod.metadata.labels.clone().unwrap_or_default();
    let entry = WorkloadEntry {
        address: ip.to_string(),
        ports: named_container_ports(spec),
        labels: labels.clone(),
        service_account: service_account.map(str::to_string),
        ..WorkloadEntry::default()
    };
    let meta = ObjectMeta {
        name: name(pod).to_string(),
        namespace: pod.metadata.namespace.clone(),
        labels,
        annotations: pod.metadata.annotations.clone().unwrap_or_default(),
    };
    Some(AnyResource::WorkloadEntry(Resource {
        api_version: "networking.istio.io/v1".into(),
        kind: "WorkloadEntry".into(),
        meta,
        spec: entry,
        source: SourceRef {
            file: PathBuf::from(origin("Pod", pod)),
            line: 1,
            column: 1,
        },
    }))
}

fn is_ready(status: &Value) -> bool {
    status
        .get("conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|condition| condition["type"] == "Ready" && condition["status"] == "True")
}

/// Container ports by name, so that a Service's named `targetPort` finds
/// the pod's port.
fn named_container_ports(spec: Option<&Value>) -> BTreeMap<String, u32> {
    let containers = spec
        .and_then(|spec| spec.get("containers"))
        .and_then(Value::as_array);
    let ports = containers
        .into_iter()
        .flatten()
        .filter_map(|container| container.get("ports").and_then(Value::as_array))
        .flatten();
    ports
        .filter_map(|port| {
            let name = port.get("name")?.as_str().filter(|name| !name.is_empty())?;
            let number = u32::try_from(port.get("containerPort")?.as_u64()?).ok()?;
            Some((name.to_string(), number))
        })
        .collect()
}

#[cfg(test)]
mod tests;
