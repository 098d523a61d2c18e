//! The injection webhook's decision: an admission.k8s.io/v1 AdmissionReview
//! of a Pod in, an AdmissionReview response with a JSON Patch out.
//!
//! Namespace selection happens before the request is sent: the API server
//! calls the webhook only for pods the MutatingWebhookConfiguration's
//! namespaceSelector/objectSelector match (see `webhook_config`), and the
//! request carries no namespace labels. The handler applies the pod-level
//! rules: an opt-out, an already injected pod, host networking.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::config::InjectConfig;
use crate::manifest::pod_workload_name;
use crate::patch::diff;
use crate::pod::{Outcome, inject_pod};

const API_VERSION: &str = "admission.k8s.io/v1";

/// How the webhook behaves besides what it injects.
#[derive(Debug, Clone)]
pub struct WebhookOptions {
    pub config: InjectConfig,
    /// Deny pods that cannot be injected, instead of admitting them
    /// without a sidecar (the default, as a failure to inject should not
    /// stop a workload from running).
    pub reject_on_error: bool,
}

/// A request that is not an AdmissionReview at all (answered 400).
#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    #[error("not an AdmissionReview: {0}")]
    Malformed(#[from] serde_json::Error),
}

#[derive(Deserialize)]
struct AdmissionReview {
    request: AdmissionRequest,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AdmissionRequest {
    uid: String,
    #[serde(default)]
    kind: GroupVersionKind,
    #[serde(default)]
    operation: String,
    #[serde(default)]
    object: Value,
}

#[derive(Default, Deserialize)]
struct GroupVersionKind {
    #[serde(default)]
    group: String,
    #[serde(default)]
    kind: String,
}

/// Answers one AdmissionReview (the request body) with the response body.
pub fn review(body: &[u8], options: &WebhookOptions) -> Result<Value, ReviewError> {
    let request = serde_json::from_slice::<AdmissionReview>(body)?.request;
    let is_pod_creation = request.kind.group.is_empty()
        && request.kind.kind == "Pod"
        && request.operation == "CREATE";
    let response = if is_pod_creation {
        inject_response(&request, options)
    } else {
        allowed(&request.uid)
    };
    Ok(json!({"apiVersion": API_VERSION, "kind": "AdmissionReview", "response": response}))
}

fn inject_response(request: &AdmissionRequest, options: &WebhookOptions) -> Value {
    let mut pod = request.object.clone();
    let workload = pod_workload_name(&pod);
    match inject_pod(&mut pod, &workload, &options.config) {
        Ok(Outcome::Injected) => {
            let patch =
                serde_json::to_vec(&diff(&request.object, &pod)).expect("a JSON patch serializes");
            let mut response = allowed(&request.uid);
            response["patchType"] = "JSONPatch".into();
            response["patch"] = STANDARD.encode(patch).into();
            response
        }
        Ok(Outcome::Skipped(reason)) => {
            tracing::debug!(uid = request.uid, workload, ?reason, "not injected");
            allowed(&request.uid)
        }
        Err(error) => {
            let message = format!("sidecar not injected: {error}");
            tracing::warn!(uid = request.uid, workload, "{message}");
            if options.reject_on_error {
                json!({"uid": request.uid, "allowed": false, "status": {"code": 500, "message": message}})
            } else {
                let mut response = allowed(&request.uid);
                response["warnings"] = json!([message]);
                response
            }
        }
    }
}

fn allowed(uid: &str) -> Value {
    json!({"uid": uid, "allowed": true})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Revision;

    fn options() -> WebhookOptions {
        WebhookOptions {
            config: InjectConfig::for_revision(Revision::default()),
            reject_on_error: false,
        }
    }

    fn request(object: Value, operation: &str) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "apiVersion": API_VERSION,
            "kind": "AdmissionReview",
            "request": {"uid": "705ab4f5", "kind": {"group": "", "version": "v1", "kind": "Pod"},
                        "operation": operation, "object": object},
        }))
        .unwrap()
    }

    #[test]
    fn opted_out_and_updated_pods_are_admitted_unchanged() {
        let opted_out = json!({"metadata": {"labels": {"sidecar.istio.io/inject": "false"}},
                               "spec": {"containers": [{"name": "app"}]}});
        let answer = review(&request(opted_out.clone(), "CREATE"), &options()).unwrap();
        assert_eq!(
            answer["response"],
            json!({"uid": "705ab4f5", "allowed": true})
        );
        let pod = json!({"spec": {"containers": [{"name": "app"}]}});
        let answer = review(&request(pod, "UPDATE"), &options()).unwrap();
        assert_eq!(
            answer["response"],
            json!({"uid": "705ab4f5", "allowed": true})
        );
    }

    #[test]
    fn a_pod_that_cannot_be_injected_is_admitted_with_a_warning_unless_configured() {
        let broken = json!({"metadata": {"name": "x"}, "spec": {"containers": "app"}});
        let answer = review(&request(broken.clone(), "CREATE"), &options()).unwrap();
        assert_eq!(answer["response"]["allowed"], true);
        assert!(
            answer["response"]["warnings"][0]
                .as_str()
                .unwrap()
                .contains("spec.containers")
        );
        let strict = WebhookOptions {
            reject_on_error: true,
            ..options()
        };
        let answer = review(&request(broken, "CREATE"), &strict).unwrap();
        assert_eq!(answer["response"]["allowed"], false);
        assert_eq!(answer["response"]["status"]["code"], 500);
    }

    #[test]
    fn garbage_is_rejected() {
        assert!(review(b"{\"kind\": \"Pod\"}", &options()).is_err());
    }
}
