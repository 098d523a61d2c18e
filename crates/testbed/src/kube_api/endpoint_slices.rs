//! What the EndpointSlice controller would do: one slice per Service with a
//! selector, listing the matching pods that have an IP with their
//! ready/serving/terminating conditions and a Pod targetRef. The fake runs
//! it after its helpers change pods or Services.

use std::collections::BTreeMap;

use serde_json::{Value, json};

const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
const MANAGED_BY_LABEL: &str = "endpointslice.kubernetes.io/managed-by";
const CONTROLLER: &str = "endpointslice-controller.k8s.io";

/// The slices a namespace's Services and pods call for, by name.
pub fn desired(services: &[Value], pods: &[Value]) -> BTreeMap<String, Value> {
    services
        .iter()
        .filter_map(|service| {
            let selector = service["spec"]["selector"].as_object()?;
            let name = service["metadata"]["name"].as_str()?;
            let selected: Vec<&Value> = pods
                .iter()
                .filter(|pod| {
                    selector
                        .iter()
                        .all(|(key, value)| pod["metadata"]["labels"][key] == *value)
                })
                .filter(|pod| pod["status"]["podIP"].is_string())
                .collect();
            let slice = slice(service, name, &selected);
            Some((slice_name(name), slice))
        })
        .collect()
}

/// Whether the controller owns this slice (and may delete it).
pub fn is_managed(slice: &Value) -> bool {
    slice["metadata"]["labels"][MANAGED_BY_LABEL] == CONTROLLER
}

/// Whether two versions of a slice say the same thing.
pub fn same_content(a: &Value, b: &Value) -> bool {
    a["endpoints"] == b["endpoints"] && a["ports"] == b["ports"]
}

fn slice_name(service: &str) -> String {
    format!("{service}-slice")
}

fn slice(service: &Value, name: &str, pods: &[&Value]) -> Value {
    let endpoints: Vec<Value> = pods.iter().map(|pod| endpoint(pod)).collect();
    let ports: Vec<Value> = service["spec"]["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|port| {
            json!({
                "name": port["name"].as_str().unwrap_or_default(),
                "port": target_port(port, pods.first().copied()),
                "protocol": port["protocol"].as_str().unwrap_or("TCP"),
            })
        })
        .collect();
    json!({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": slice_name(name),
            "namespace": service["metadata"]["namespace"],
            "labels": {SERVICE_NAME_LABEL: name, MANAGED_BY_LABEL: CONTROLLER},
        },
        "addressType": "IPv4",
        "endpoints": endpoints,
        "ports": ports,
    })
}

/// A terminating pod stays listed (serving while ready) but is never
/// ready, as the controller reports it.
fn endpoint(pod: &Value) -> Value {
    let ready_condition = pod["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|condition| condition["type"] == "Ready" && condition["status"] == "True");
    let terminating = !pod["metadata"]["deletionTimestamp"].is_null();
    json!({
        "addresses": [pod["status"]["podIP"]],
        "conditions": {
            "ready": ready_condition && !terminating,
            "serving": ready_condition,
            "terminating": terminating,
        },
        "targetRef": {
            "kind": "Pod",
            "namespace": pod["metadata"]["namespace"],
            "name": pod["metadata"]["name"],
            "uid": pod["metadata"]["uid"],
        },
    })
}

/// The numeric port traffic goes to: `targetPort` when a number, the
/// pod's container port of that name when a name, else `port`.
fn target_port(port: &Value, pod: Option<&Value>) -> Value {
    match &port["targetPort"] {
        Value::Number(number) => Value::Number(number.clone()),
        Value::String(name) => pod
            .and_then(|pod| named_container_port(pod, name))
            .unwrap_or(Value::Null),
        _ => port["port"].clone(),
    }
}

fn named_container_port(pod: &Value, name: &str) -> Option<Value> {
    pod["spec"]["containers"]
        .as_array()?
        .iter()
        .filter_map(|container| container["ports"].as_array())
        .flatten()
        .find(|port| port["name"] == name)
        .map(|port| port["containerPort"].clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, ip: &str, ready: bool, terminating: bool) -> Value {
        let mut pod = json!({
            "metadata": {"name": name, "namespace": "default", "uid": name, "labels": {"app": "reviews"}},
            "spec": {"containers": [{"ports": [{"name": "http", "containerPort": 9080}]}]},
            "status": {"podIP": ip, "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]},
        });
        if terminating {
            pod["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z".into();
        }
        pod
    }

    #[test]
    fn selected_pods_become_endpoints_with_their_conditions() {
        let service = json!({
            "metadata": {"name": "reviews", "namespace": "default"},
            "spec": {"selector": {"app": "reviews"}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]},
        });
        let selectorless =
            json!({"metadata": {"name": "external", "namespace": "default"}, "spec": {}});
        let mut other = pod("ratings", "10.0.0.9", true, false);
        other["metadata"]["labels"]["app"] = "ratings".into();
        let pods = [
            pod("a", "10.0.0.1", true, false),
            pod("b", "10.0.0.2", false, false),
            pod("c", "10.0.0.3", true, true),
            other,
        ];
        let slices = desired(&[service, selectorless], &pods);
        assert_eq!(slices.keys().collect::<Vec<_>>(), ["reviews-slice"]);
        let slice = &slices["reviews-slice"];
        assert!(is_managed(slice));
        assert_eq!(slice["ports"][0]["port"], 9080);
        let conditions: Vec<(&str, &Value)> = slice["endpoints"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| (e["targetRef"]["name"].as_str().unwrap(), &e["conditions"]))
            .collect();
        assert_eq!(conditions.len(), 3);
        assert_eq!(conditions[0].1["ready"], true);
        assert_eq!(conditions[1].1["ready"], false);
        assert_eq!(conditions[2].1["ready"], false);
        assert_eq!(conditions[2].1["serving"], true);
        assert_eq!(conditions[2].1["terminating"], true);
    }
}
