//! The JSON document every demo app answers with, and that tests read back.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One demo app response, or one entry of a response's `calls`.
///
/// Three shapes share this type (absent fields are omitted from the JSON):
/// - a normal answer: `service`, `version`, `pod`, `namespace`, `path`,
///   `headers` (what the app received) and `calls` (the nested answers of
///   the calls it made, in a fixed order);
/// - an injected fault (`trellis.io/demo-error-rate`): the app's identity
///   plus `error` and `status` (500);
/// - a failed call, recorded by the caller: `service` (the callee's name),
///   `error`, and `status` when a response arrived. It has no `pod`, which
///   is how a reader tells "the mesh failed to deliver" from "the app
///   answered with an error".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DemoReply {
    pub service: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub calls: Vec<DemoReply>,
}

impl DemoReply {
    /// A call that produced no answer from the callee app.
    pub fn failed_call(service: &str, error: String, status: Option<u16>) -> DemoReply {
        DemoReply {
            service: service.to_owned(),
            status,
            error: Some(error),
            ..DemoReply::default()
        }
    }

    /// True when a demo app produced this document (even an injected fault).
    pub fn answered_by_app(&self) -> bool {
        self.pod.is_some()
    }

    /// The first direct call to `service`, if one was made.
    pub fn call(&self, service: &str) -> Option<&DemoReply> {
        self.calls.iter().find(|call| call.service == service)
    }

    /// The first reply from `service` anywhere in the tree (this one
    /// included), depth first: e.g. which reviews version productpage
    /// reached.
    pub fn find(&self, service: &str) -> Option<&DemoReply> {
        if self.service == service {
            return Some(self);
        }
        self.calls.iter().find_map(|call| call.find(service))
    }

    /// Every call in the tree, depth first, that no app answered: the
    /// requests the mesh failed to deliver.
    pub fn undelivered_calls(&self) -> Vec<&DemoReply> {
        let mut found = Vec::new();
        self.collect_undelivered(&mut found);
        found
    }

    fn collect_undelivered<'a>(&'a self, found: &mut Vec<&'a DemoReply>) {
        for call in &self.calls {
            if call.answered_by_app() {
                call.collect_undelivered(found);
            } else {
                found.push(call);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn omits_absent_fields_and_reads_back() {
        let reply = DemoReply {
            service: "reviews".into(),
            version: Some("v2".into()),
            pod: Some("reviews-v2-0".into()),
            calls: vec![DemoReply::failed_call("ratings", "timed out".into(), None)],
            ..DemoReply::default()
        };
        let json = serde_json::to_value(&reply).unwrap();
        assert_eq!(json["calls"][0]["service"], "ratings");
        assert!(json["calls"][0].get("pod").is_none());
        assert!(json.get("error").is_none());
        let back: DemoReply = serde_json::from_value(json).unwrap();
        assert_eq!(back, reply);
        assert_eq!(back.undelivered_calls(), vec![&reply.calls[0]]);
        assert_eq!(back.find("ratings"), Some(&reply.calls[0]));
        assert_eq!(back.find("reviews"), Some(&back));
        assert_eq!(back.find("details"), None);
    }
}
