//! TRL0001: a DENY AuthorizationPolicy that matches request paths, in a
//! mesh whose path normalization leaves other spellings of those paths
//! unnormalized, so that a request can reach the path without being
//! denied. Istio's security best practices explain the bypasses and
//! recommend DECODE_AND_MERGE_SLASHES; istioctl has no analyzer for it.

use trellis_api::PathNormalizationMode as Mode;
use trellis_api::istio::{AuthorizationAction, AuthorizationPolicy};

use crate::message::{DENY_PATHS_BYPASSABLE_BY_NORMALIZATION, Message};
use crate::model::Model;

pub(crate) fn analyze(model: &Model<'_>, messages: &mut Vec<Message>) {
    let Some(open) = spellings_left_open(model.path_normalization) else {
        return;
    };
    for policy in &model.authorization_policies {
        if policy.spec.action != AuthorizationAction::Deny || !matches_paths(&policy.spec) {
            continue;
        }
        let mode = match model.path_normalization {
            Mode::Default | Mode::Base => "BASE",
            Mode::None => "NONE",
            Mode::MergeSlashes => "MERGE_SLASHES",
            Mode::DecodeAndMergeSlashes => "DECODE_AND_MERGE_SLASHES",
        };
        let text = format!(
            "This DENY policy matches request paths, but the mesh's path normalization is {mode}: \
             a path written with {open} is matched as written and is not denied, though the \
             application may read it as the denied path. Set meshConfig.pathNormalization.normalization \
             to DECODE_AND_MERGE_SLASHES, as Istio's security best practices recommend."
        );
        messages.push(Message::new(
            &DENY_PATHS_BYPASSABLE_BY_NORMALIZATION,
            policy,
            text,
        ));
    }
}

/// The spellings `mode` does not normalize; `None` when it leaves none.
fn spellings_left_open(mode: Mode) -> Option<&'static str> {
    match mode {
        Mode::None => Some("dot segments (/./, /../), escaped letters, backslashes, // or %2F"),
        Mode::Default | Mode::Base => Some("// or an escaped slash (%2F, %5C)"),
        Mode::MergeSlashes => Some("an escaped slash (%2F, %5C)"),
        Mode::DecodeAndMergeSlashes => None,
    }
}

fn matches_paths(policy: &AuthorizationPolicy) -> bool {
    policy.rules.iter().any(|rule| {
        rule.to.iter().any(|to| {
            to.operation
                .as_ref()
                .is_some_and(|op| !op.paths.is_empty() || !op.not_paths.is_empty())
        })
    })
}

#[cfg(test)]
mod tests {
    use super::super::testing::resources;
    use super::*;

    const POLICIES: &str = "apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-admin}
spec:
  action: DENY
  rules: [{to: [{operation: {paths: [/admin*]}}]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-post}
spec:
  action: DENY
  rules: [{to: [{operation: {methods: [POST]}}]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-public}
spec:
  rules: [{to: [{operation: {paths: [/public*]}}]}]
";

    fn messages(yaml: &str) -> Vec<String> {
        let resources = resources(yaml);
        let model = Model::new(&resources);
        let mut messages = Vec::new();
        analyze(&model, &mut messages);
        messages.iter().map(Message::to_string).collect()
    }

    fn with_mesh_config(mode: &str) -> String {
        format!(
            "{POLICIES}---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: istio, namespace: istio-system}}\ndata:\n  mesh: |\n    pathNormalization: {{normalization: {mode}}}\n"
        )
    }

    #[test]
    fn deny_policies_on_paths_are_flagged_unless_slashes_are_decoded_and_merged() {
        let flagged = messages(POLICIES);
        assert_eq!(flagged.len(), 1, "{flagged:#?}");
        assert!(
            flagged[0].starts_with(
                "Warning [TRL0001] (AuthorizationPolicy default/deny-admin) This DENY policy matches request paths, but the mesh's path normalization is BASE: a path written with // or an escaped slash"
            ),
            "{}",
            flagged[0]
        );
        let merge = messages(&with_mesh_config("MERGE_SLASHES"));
        assert!(merge[0].contains("is MERGE_SLASHES: a path written with an escaped slash"));
        assert!(messages(&with_mesh_config("DECODE_AND_MERGE_SLASHES")).is_empty());
    }
}
