//! `kube-inject` over a multi-document manifest: every pod template gets
//! the sidecar, every other document passes through, in the same order.

use serde_json::Value;

use crate::config::InjectConfig;
use crate::error::InjectError;
use crate::pod::{Outcome, inject_pod};

/// Injects every pod template of a YAML stream and prints the result as
/// YAML documents separated by `---`. Keys come out sorted, as
/// `kubectl get -o yaml` prints them; values are unchanged.
pub fn inject_manifest(yaml: &str, config: &InjectConfig) -> Result<String, InjectError> {
    let mut documents: Vec<Value> = serde_saphyr::from_str_multiple(yaml)?;
    for (index, document) in documents.iter_mut().enumerate() {
        inject_document(document, config).map_err(|source| InjectError::InDocument {
            index,
            kind: field(document, "kind").to_owned(),
            name: name(document).to_owned(),
            source: Box::new(source),
        })?;
    }
    let mut out = String::new();
    for document in &documents {
        if !out.is_empty() {
            out.push_str("---\n");
        }
        out.push_str(&serde_saphyr::to_string(document)?);
    }
    Ok(out)
}

/// Injects the pod template(s) of one object; returns one outcome per
/// template (none for objects without pods).
pub fn inject_document(
    document: &mut Value,
    config: &InjectConfig,
) -> Result<Vec<Outcome>, InjectError> {
    let workload = name(document).to_owned();
    let kind = field(document, "kind").to_owned();
    let template = match kind.as_str() {
        "Pod" => {
            let workload = pod_workload_name(document);
            return Ok(vec![inject_pod(document, &workload, config)?]);
        }
        "List" => return inject_list(document, config),
        "Deployment"
        | "StatefulSet"
        | "DaemonSet"
        | "ReplicaSet"
        | "ReplicationController"
        | "Job" => document.pointer_mut("/spec/template"),
        "CronJob" => document.pointer_mut("/spec/jobTemplate/spec/template"),
        _ => return Ok(Vec::new()),
    };
    let template = template.ok_or(InjectError::InvalidPod("workload has no pod template"))?;
    let outcome = inject_pod(template, &workload, config)?;
    tracing::debug!(kind, workload, ?outcome, "kube-inject");
    Ok(vec![outcome])
}

fn inject_list(list: &mut Value, config: &InjectConfig) -> Result<Vec<Outcome>, InjectError> {
    let mut outcomes = Vec::new();
    if let Some(items) = list.get_mut("items").and_then(Value::as_array_mut) {
        for item in items {
            outcomes.extend(inject_document(item, config)?);
        }
    }
    Ok(outcomes)
}

/// The workload a pod belongs to, as Istio derives it: its controller's
/// name (a ReplicaSet's without the pod-template-hash suffix, so a
/// Deployment's pods are named after the Deployment), else the pod's own
/// name or, for a pod not yet named, its `generateName` prefix.
pub fn pod_workload_name(pod: &Value) -> String {
    let metadata = &pod["metadata"];
    let controller = metadata["ownerReferences"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|owner| owner["controller"].as_bool() == Some(true));
    if let Some(owner) = controller {
        let owner_name = owner["name"].as_str().unwrap_or_default();
        let hash = metadata["labels"]["pod-template-hash"].as_str();
        if owner["kind"] == "ReplicaSet"
            && let Some(deployment) =
                hash.and_then(|hash| owner_name.strip_suffix(&format!("-{hash}")))
        {
            return deployment.to_owned();
        }
        return owner_name.to_owned();
    }
    match metadata["name"].as_str() {
        Some(name) if !name.is_empty() => name.to_owned(),
        _ => metadata["generateName"]
            .as_str()
            .unwrap_or_default()
            .trim_end_matches('-')
            .to_owned(),
    }
}

fn field<'a>(document: &'a Value, key: &str) -> &'a str {
    document
        .get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn name(document: &Value) -> &str {
    document
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn deployment_pods_are_named_after_the_deployment() {
        let pod = json!({"metadata": {
            "generateName": "reviews-v1-5d8f7c9b4-",
            "labels": {"pod-template-hash": "5d8f7c9b4"},
            "ownerReferences": [{"kind": "ReplicaSet", "name": "reviews-v1-5d8f7c9b4", "controller": true}],
        }});
        assert_eq!(pod_workload_name(&pod), "reviews-v1");
    }

    #[test]
    fn other_pods_are_named_after_their_controller_or_themselves() {
        let job_pod = json!({"metadata": {"name": "migrate-x7k2p",
            "ownerReferences": [{"kind": "Job", "name": "migrate", "controller": true}]}});
        assert_eq!(pod_workload_name(&job_pod), "migrate");
        assert_eq!(
            pod_workload_name(&json!({"metadata": {"name": "debug"}})),
            "debug"
        );
        assert_eq!(
            pod_workload_name(&json!({"metadata": {"generateName": "web-"}})),
            "web"
        );
    }
}
