//! The fake API server's storage: objects, one global resourceVersion
//! counter (as etcd's revision), and a bounded history of changes from
//! which watches resume. History older than what is retained (or dropped by
//! [`Store::compact`]) answers 410 Gone, as the real server does.

use std::collections::{BTreeMap, VecDeque};

use serde_json::{Value, json};
use tokio::sync::{broadcast, watch};

use super::discovery::ResourceType;
use super::selector::LabelSelector;

/// How many changes are kept for watches to resume from.
const DEFAULT_HISTORY: usize = 1000;

/// Where an object lives: its resource type (all versions share storage),
/// namespace (empty for cluster-scoped) and name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey {
    pub group: &'static str,
    pub plural: &'static str,
    pub namespace: String,
    pub name: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One change, as recorded in the history.
#[derive(Debug, Clone)]
pub struct Change {
    pub resource_version: u64,
    pub key: ObjectKey,
    pub event: EventType,
    pub object: Value,
    /// The object before a modification: a selector-filtered watch turns a
    /// modification into ADDED or DELETED when the match changes.
    pub previous: Option<Value>,
}

/// A failed request, answered as a `Status` object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            reason,
            message: message.into(),
        }
    }

    pub fn not_found(key: &ObjectKey) -> ApiError {
        let message = format!("{} \"{}\" not found", key.plural, key.name);
        ApiError::new(404, "NotFound", message)
    }

    pub fn expired(requested: u64, oldest: u64) -> ApiError {
        let message = format!("too old resource version: {requested} ({oldest})");
        ApiError::new(410, "Expired", message)
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(400, "BadRequest", message)
    }

    /// The `Status` object the API server answers errors with.
    pub fn status(&self) -> Value {
        json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        })
    }
}

/// One page of a list.
#[derive(Debug, Clone)]
pub struct ListPage {
    pub items: Vec<Value>,
    pub resource_version: u64,
    /// Set when more items follow; pass it back as `continue`.
    pub continue_token: Option<String>,
}

/// A watch's starting point: the changes to replay, and the receiver of
/// later ones (subscribed under the same lock, so nothing falls between).
pub struct WatchStart {
    pub backlog: Vec<Change>,
    pub live: broadcast::Receiver<Change>,
    /// Changes when open watches must end.
    pub disconnects: watch::Receiver<u64>,
}

pub struct Store {
    resource_version: u64,
    objects: BTreeMap<ObjectKey, Value>,
    history: VecDeque<Change>,
    max_history: usize,
    /// Watches must start at or after this version; older ones get 410.
    oldest_watchable: u64,
    changes: broadcast::Sender<Change>,
    /// Bumped to end every open watch.
    disconnects: watch::Sender<u64>,
    /// While false, watch requests fail with 503, as during a partition.
    watches_available: bool,
}

impl Default for Store {
    fn default() -> Store {
        Store::with_history(DEFAULT_HISTORY)
    }
}

impl Store {
    pub fn with_history(max_history: usize) -> Store {
        let (changes, _) = broadcast::channel(max_history.max(16));
        Store {
            resource_version: 1,
            objects: BTreeMap::new(),
            history: VecDeque::new(),
            max_history,
            oldest_watchable: 1,
            changes,
            disconnects: watch::Sender::new(0),
            watches_available: true,
        }
    }

    pub fn resource_version(&self) -> u64 {
        self.resource_version
    }

    /// Forgets every change so far: a watch from any earlier version gets
    /// 410 Gone, as after an etcd compaction.
    pub fn compact(&mut self) {
        self.history.clear();
        self.oldest_watchable = self.resource_version;
    }

    /// Ends every open watch and, while `available` is false, refuses new
    /// ones with 503: clients fall behind, as in a network partition.
    pub fn set_watches_available(&mut self, available: bool) {
        self.watches_available = available;
        if !available {
            self.disconnects.send_modify(|generation| *generation += 1);
        }
    }

    pub fn get(&self, key: &ObjectKey) -> Result<Value, ApiError> {
        self.objects
            .get(key)
            .cloned()
            .ok_or_else(|| ApiError::not_found(key))
    }

    pub fn create(&mut self, key: ObjectKey, mut object: Value) -> Result<Value, ApiError> {
        if self.objects.contains_key(&key) {
            let message = format!("{} \"{}\" already exists", key.plural, key.name);
            return Err(ApiError::new(409, "AlreadyExists", message));
        }
        let version = self.next_version();
        let metadata = metadata_of(&mut object)?;
        metadata.insert("resourceVersion".into(), version.to_string().into());
        metadata.insert("uid".into(), format!("uid-{version}").into());
        metadata.insert("creationTimestamp".into(), "2026-01-01T00:00:00Z".into());
        if !key.namespace.is_empty() {
            metadata.insert("namespace".into(), key.namespace.clone().into());
        }
        self.record(key, EventType::Added, object, None)
    }

    /// Replaces an object; a `metadata.resourceVersion` in the new object
    /// must be the stored one (optimistic concurrency).
    pub fn replace(&mut self, key: ObjectKey, mut object: Value) -> Result<Value, ApiError> {
        let previous = self.get(&key)?;
        let stored_version = previous["metadata"]["resourceVersion"].clone();
        let metadata = metadata_of(&mut object)?;
        match metadata.get("resourceVersion") {
            Some(given) if *given != stored_version => {
                let message = format!(
                    "Operation cannot be fulfilled on {} \"{}\": the object has been modified",
                    key.plural, key.name
                );
                return Err(ApiError::new(409, "Conflict", message));
            }
            _ => {}
        }
        for kept in ["uid", "creationTimestamp", "namespace"] {
            if let Some(value) = previous["metadata"].get(kept) {
                metadata.insert(kept.into(), value.clone());
            }
        }
        let version = self.next_version();
        metadata.insert("resourceVersion".into(), version.to_string().into());
        self.record(key, EventType::Modified, object, Some(previous))
    }

    pub fn delete(&mut self, key: &ObjectKey) -> Result<Value, ApiError> {
        let mut object = self.get(key)?;
        let version = self.next_version();
        object["metadata"]["resourceVersion"] = version.to_string().into();
        self.record(key.clone(), EventType::Deleted, object, None)
    }

    /// Objects of one resource type, in key order, from after the
    /// `continue` token's position, at most `limit` of them.
    pub fn list(
        &self,
        scope: &Scope,
        limit: Option<usize>,
        continue_token: Option<&str>,
    ) -> Result<ListPage, ApiError> {
        let after = continue_token.map(parse_continue).transpose()?;
        let resource_version = match &after {
            Some((version, _)) if *version < self.oldest_watchable => {
                let message = "the provided continue parameter is too old";
                return Err(ApiError::new(410, "Expired", message));
            }
            Some((version, _)) => *version,
            None => self.resource_version,
        };
        let matching = self
            .objects
            .iter()
            .filter(|(key, object)| scope.matches(key, object))
            .filter(|(key, _)| {
                after.as_ref().is_none_or(|(_, last)| {
                    (key.namespace.as_str(), key.name.as_str()) > (last.0.as_str(), last.1.as_str())
                })
            });
        let mut items = Vec::new();
        let mut last_key = None;
        let mut more = false;
        for (key, object) in matching {
            if limit.is_some_and(|limit| items.len() >= limit) {
                more = true;
                break;
            }
            items.push(object.clone());
            last_key = Some(key);
        }
        let continue_token = last_key
            .filter(|_| more)
            .map(|key| format_continue(resource_version, key));
        Ok(ListPage {
            items,
            resource_version,
            continue_token,
        })
    }

    /// Starts a watch after `from`; `None` replays the current objects as
    /// ADDED first (the API server's "any version" start).
    pub fn watch(&self, scope: &Scope, from: Option<u64>) -> Result<WatchStart, ApiError> {
        if !self.watches_available {
            return Err(ApiError::new(
                503,
                "ServiceUnavailable",
                "watches are unavailable",
            ));
        }
        let live = self.changes.subscribe();
        let backlog = match from {
            None => self.current_as_added(scope),
            Some(from) if from < self.oldest_watchable => {
                return Err(ApiError::expired(from, self.oldest_watchable));
            }
            Some(from) => self
                .history
                .iter()
                .filter(|change| change.resource_version > from)
                .cloned()
                .collect(),
        };
        Ok(WatchStart {
            backlog,
            live,
            disconnects: self.disconnects.subscribe(),
        })
    }

    fn current_as_added(&self, scope: &Scope) -> Vec<Change> {
        self.objects
            .iter()
            .filter(|(key, object)| scope.matches(key, object))
            .map(|(key, object)| Change {
                resource_version: self.resource_version,
                key: key.clone(),
                event: EventType::Added,
                object: object.clone(),
                previous: None,
            })
            .collect()
    }

    fn next_version(&mut self) -> u64 {
        self.resource_version += 1;
        self.resource_version
    }

    fn record(
        &mut self,
        key: ObjectKey,
        event: EventType,
        object: Value,
        previous: Option<Value>,
    ) -> Result<Value, ApiError> {
        match event {
            EventType::Deleted => self.objects.remove(&key),
            _ => self.objects.insert(key.clone(), object.clone()),
        };
        let change = Change {
            resource_version: self.resource_version,
            key,
            event,
            object: object.clone(),
            previous,
        };
        self.history.push_back(change.clone());
        while self.history.len() > self.max_history {
            if let Some(dropped) = self.history.pop_front() {
                self.oldest_watchable = dropped.resource_version;
            }
        }
        // Nobody watching is fine.
        let _ = self.changes.send(change);
        Ok(object)
    }
}

/// What a list or watch covers: one resource type, optionally one
/// namespace, optionally a label selector.
#[derive(Debug, Clone)]
pub struct Scope {
    pub resource: &'static ResourceType,
    pub namespace: Option<String>,
    pub selector: LabelSelector,
}

impl Scope {
    pub fn covers(&self, key: &ObjectKey) -> bool {
        key.group == self.resource.group
            && key.plural == self.resource.plural
            && self
                .namespace
                .as_ref()
                .is_none_or(|ns| *ns == key.namespace)
    }

    pub fn matches(&self, key: &ObjectKey, object: &Value) -> bool {
        self.covers(key) && self.selector.matches(object)
    }
}

fn metadata_of(object: &mut Value) -> Result<&mut serde_json::Map<String, Value>, ApiError> {
    object
        .get_mut("metadata")
        .and_then(Value::as_object_mut)
        .ok_or_else(|| ApiError::bad_request("metadata is required"))
}

fn format_continue(resource_version: u64, key: &ObjectKey) -> String {
    format!("{resource_version}/{}/{}", key.namespace, key.name)
}

/// The list's version and the (namespace, name) of the last item served.
fn parse_continue(token: &str) -> Result<(u64, (String, String)), ApiError> {
    let invalid = || ApiError::bad_request(format!("invalid continue token {token:?}"));
    let mut parts = token.splitn(3, '/');
    let version = parts
        .next()
        .and_then(|v| v.parse().ok())
        .ok_or_else(invalid)?;
    let namespace = parts.next().ok_or_else(invalid)?.to_string();
    let name = parts.next().ok_or_else(invalid)?.to_string();
    Ok((version, (namespace, name)))
}

#[cfg(test)]
mod tests;
