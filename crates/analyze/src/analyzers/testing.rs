//! Test support: analyze a YAML text with one analyzer and read the
//! messages as istioctl prints them.

use std::path::Path;

use trellis_api::{AnyResource, parse_yaml};

use crate::message::Message;
use crate::model::Model;

/// The messages `analyzer` reports for the resources of `yaml`, which must be valid.
pub(crate) fn messages(analyzer: fn(&Model<'_>, &mut Vec<Message>), yaml: &str) -> Vec<String> {
    let resources = resources(yaml);
    let model = Model::new(&resources);
    let mut messages = Vec::new();
    analyzer(&model, &mut messages);
    messages.iter().map(Message::to_string).collect()
}

pub(crate) fn resources(yaml: &str) -> Vec<AnyResource> {
    let outcome = parse_yaml(Path::new("test.yaml"), yaml);
    assert!(outcome.errors.is_empty(), "{:#?}", outcome.errors);
    assert!(outcome.warnings.is_empty(), "{:#?}", outcome.warnings);
    outcome.resources
}

/// Kubernetes Service `name` in `default` on port 9080, selecting `app: name`,
/// and a Deployment of it with `version: v1`.
pub(crate) fn service_with_pods(name: &str) -> String {
    format!(
        "apiVersion: v1
kind: Service
metadata: {{name: {name}}}
spec:
  selector: {{app: {name}}}
  ports: [{{name: http, port: 9080}}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}-v1}}
spec:
  selector: {{matchLabels: {{app: {name}, version: v1}}}}
  template:
    metadata: {{labels: {{app: {name}, version: v1}}}}
    spec:
      containers: [{{name: app, image: app}}]
---
"
    )
}
