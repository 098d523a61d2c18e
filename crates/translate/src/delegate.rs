//! Istio's delegate VirtualServices: a root rule with `delegate` is replaced
//! by the delegate's rules, each matched under the root rule's conditions.
//! A delegate condition must narrow the root's; a pair that contradicts it
//! is dropped (and a rule left with no condition at all, with a warning).
//! Route settings the delegate rule leaves unset come from the root rule.

use std::borrow::Cow;
use std::collections::BTreeMap;

use trellis_api::{HttpMatchRequest, HttpRoute, Resource, StringMatch, VirtualService};
use trellis_config::Snapshot;

/// The rules `rule` stands for, each with the VirtualService it comes from
/// (hosts in a delegate resolve in the delegate's namespace): the rule
/// itself unless it delegates.
pub fn expand<'a>(
    snapshot: &'a Snapshot,
    vs: &'a Resource<VirtualService>,
    rule: &'a HttpRoute,
) -> Vec<(&'a Resource<VirtualService>, Cow<'a, HttpRoute>)> {
    let Some(target) = &rule.delegate else {
        return vec![(vs, Cow::Borrowed(rule))];
    };
    let namespace = target.namespace.as_deref().unwrap_or(vs.namespace());
    let Some(delegate) = snapshot
        .virtual_services()
        .find(|d| d.name() == target.name && d.namespace() == namespace)
        .filter(|d| d.spec.hosts.is_empty() && exported_to(d, vs.namespace()))
    else {
        tracing::warn!(
            virtual_service = vs.name(),
            delegate = %format!("{namespace}/{}", target.name),
            "delegate VirtualService not found, has hosts or is not exported here; rule skipped"
        );
        return Vec::new();
    };
    delegate
        .spec
        .http
        .iter()
        .filter_map(|child| {
            if child.delegate.is_some() {
                tracing::warn!(
                    virtual_service = delegate.name(),
                    "a delegate VirtualService cannot delegate again; rule skipped"
                );
                return None;
            }
            let merged = merge_rule(rule, child);
            if merged.is_none() {
                tracing::warn!(
                    virtual_service = delegate.name(),
                    root = vs.name(),
                    "every match of a delegate rule conflicts with the root's; rule dropped"
                );
            }
            merged.map(|merged| (delegate, Cow::Owned(merged)))
        })
        .collect()
}

fn exported_to(delegate: &Resource<VirtualService>, namespace: &str) -> bool {
    trellis_api::exported_to(&delegate.spec.export_to, delegate.namespace(), namespace)
}

/// The delegate rule under the root's matches and defaults; `None` when no
/// match pair is compatible.
fn merge_rule(root: &HttpRoute, child: &HttpRoute) -> Option<HttpRoute> {
    let mut merged = child.clone();
    merged.r#match = match (root.r#match.is_empty(), child.r#match.is_empty()) {
        (true, _) => child.r#match.clone(),
        (false, true) => root.r#match.clone(),
        (false, false) => {
            let pairs = root
                .r#match
                .iter()
                .flat_map(|r| child.r#match.iter().filter_map(move |c| merge_match(r, c)));
            let pairs: Vec<_> = pairs.collect();
            if pairs.is_empty() {
                return None;
            }
            pairs
        }
    };
    merged.name = match (&root.name, &child.name) {
        (Some(root), Some(child)) => Some(format!("{root}-{child}")),
        (root, child) => child.clone().or_else(|| root.clone()),
    };
    inherit(&mut merged.rewrite, &root.rewrite);
    inherit(&mut merged.timeout, &root.timeout);
    inherit(&mut merged.retries, &root.retries);
    inherit(&mut merged.fault, &root.fault);
    inherit(&mut merged.mirror, &root.mirror);
    inherit(&mut merged.mirror_percent, &root.mirror_percent);
    inherit(&mut merged.mirror_percentage, &root.mirror_percentage);
    inherit(&mut merged.cors_policy, &root.cors_policy);
    inherit(&mut merged.headers, &root.headers);
    if merged.mirrors.is_empty() {
        merged.mirrors = root.mirrors.clone();
    }
    Some(merged)
}

fn inherit<T: Clone>(field: &mut Option<T>, root: &Option<T>) {
    if field.is_none() {
        *field = root.clone();
    }
}

/// Both conditions at once, if the child's narrows the root's.
fn merge_match(root: &HttpMatchRequest, child: &HttpMatchRequest) -> Option<HttpMatchRequest> {
    let mut merged = child.clone();
    merged.uri = narrower(&root.uri, &child.uri)?;
    merged.scheme = narrower(&root.scheme, &child.scheme)?;
    merged.method = narrower(&root.method, &child.method)?;
    merged.authority = narrower(&root.authority, &child.authority)?;
    merged.headers = merge_map(&root.headers, &child.headers)?;
    merged.query_params = merge_map(&root.query_params, &child.query_params)?;
    merged.without_headers = merge_map(&root.without_headers, &child.without_headers)?;
    merged.port = same(root.port, child.port)?;
    merged.source_namespace = same(
        root.source_namespace.clone(),
        child.source_namespace.clone(),
    )?;
    for (key, value) in &root.source_labels {
        match merged.source_labels.get(key) {
            Some(existing) if existing != value => return None,
            _ => merged.source_labels.insert(key.clone(), value.clone()),
        };
    }
    if child.gateways.is_empty() {
        merged.gateways = root.gateways.clone();
    } else if !root.gateways.is_empty() && !child.gateways.iter().all(|g| root.gateways.contains(g))
    {
        return None;
    }
    if child.uri.is_none() {
        merged.ignore_uri_case = root.ignore_uri_case;
    }
    Some(merged)
}

/// The child's value when it is within the root's; `None` on conflict.
fn narrower(
    root: &Option<StringMatch>,
    child: &Option<StringMatch>,
) -> Option<Option<StringMatch>> {
    let (root, child) = match (root, child) {
        (None, _) => return Some(child.clone()),
        (Some(root), None) => return Some(Some(root.clone())),
        (Some(StringMatch::Present), Some(child)) => return Some(Some(child.clone())),
        (Some(root), Some(child)) => (root, child),
    };
    let within = match (root, child) {
        (StringMatch::Prefix(outer), StringMatch::Prefix(inner) | StringMatch::Exact(inner)) => {
            inner.starts_with(outer.as_str())
        }
        (StringMatch::Exact(outer), StringMatch::Exact(inner))
        | (StringMatch::Regex(outer), StringMatch::Regex(inner)) => outer == inner,
        _ => false,
    };
    within.then(|| Some(child.clone()))
}

fn merge_map(
    root: &BTreeMap<String, StringMatch>,
    child: &BTreeMap<String, StringMatch>,
) -> Option<BTreeMap<String, StringMatch>> {
    let mut merged = child.clone();
    for (key, value) in root {
        let narrowed = narrower(&Some(value.clone()), &child.get(key).cloned())?;
        if let Some(narrowed) = narrowed {
            merged.insert(key.clone(), narrowed);
        }
    }
    Some(merged)
}

fn same<T: PartialEq>(root: Option<T>, child: Option<T>) -> Option<Option<T>> {
    match (root, child) {
        (Some(root), Some(child)) if root != child => None,
        (root, child) => Some(child.or(root)),
    }
}

#[cfg(test)]
mod tests;
