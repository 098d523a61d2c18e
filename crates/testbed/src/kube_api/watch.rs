//! Watch responses: a chunked stream of JSON lines, one event each
//! (`{"type":"ADDED","object":{...}}`), with BOOKMARKs when asked for, and
//! ending at `timeoutSeconds` as the API server ends watches.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::store::{ApiError, Change, EventType, Scope, Store, WatchStart};

/// The API server's default watch length is 30-60 minutes; clients
/// normally ask for less with `timeoutSeconds`.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1800);

/// What a watch request asks for.
#[derive(Debug, Clone)]
pub struct WatchRequest {
    pub scope: Scope,
    /// Events after this version; `None` replays current objects first.
    pub from: Option<u64>,
    pub bookmarks: bool,
    /// Streaming list: replay current objects, then a BOOKMARK annotated
    /// `k8s.io/initial-events-end`.
    pub send_initial_events: bool,
    pub timeout: Option<Duration>,
    /// The `apiVersion` the client asked for; objects are served under it.
    pub api_version: String,
}

/// Starts a watch, or refuses it (410 when `from` is no longer retained).
pub fn start(
    store: &Arc<Mutex<Store>>,
    request: WatchRequest,
    bookmark_interval: Duration,
) -> Result<ReceiverStream<Result<Bytes, Infallible>>, ApiError> {
    let from = if request.send_initial_events {
        None
    } else {
        request.from
    };
    let (start, version) = {
        let store = store.lock().expect("fake API store poisoned");
        (store.watch(&request.scope, from)?, store.resource_version())
    };
    let (lines, body) = mpsc::channel(64);
    let watch = Watch {
        request,
        lines,
        progress: version,
    };
    tokio::spawn(watch.run(start, bookmark_interval));
    Ok(ReceiverStream::new(body))
}

struct Watch {
    request: WatchRequest,
    lines: mpsc::Sender<Result<Bytes, Infallible>>,
    /// Every change up to this version has been considered for sending.
    progress: u64,
}

impl Watch {
    async fn run(mut self, start: WatchStart, bookmark_interval: Duration) {
        let WatchStart {
            backlog,
            mut live,
            mut disconnects,
        } = start;
        for change in &backlog {
            if !self.send_change(change).await {
                return;
            }
        }
        if self.request.send_initial_events && !self.send_bookmark(true).await {
            return;
        }
        let deadline = tokio::time::sleep(self.request.timeout.unwrap_or(DEFAULT_TIMEOUT));
        tokio::pin!(deadline);
        let mut bookmarks = tokio::time::interval(bookmark_interval);
        bookmarks.tick().await;
        loop {
            let keep_going = tokio::select! {
                _ = &mut deadline => false,
                _ = self.lines.closed() => false,
                _ = disconnects.changed() => false,
                _ = bookmarks.tick(), if self.request.bookmarks => self.send_bookmark(false).await,
                change = live.recv() => match change {
                    Ok(change) => {
                        self.progress = change.resource_version;
                        self.send_change(&change).await
                    }
                    // A watcher too slow to keep up is cut off; it resumes
                    // from its last version (or relists after 410).
                    Err(_) => false,
                },
            };
            if !keep_going {
                return;
            }
        }
    }

    async fn send_change(&self, change: &Change) -> bool {
        let Some(event) = visible_event(&self.request.scope, change) else {
            return true;
        };
        let mut object = change.object.clone();
        object["apiVersion"] = self.request.api_version.clone().into();
        self.send(json!({"type": event.as_str(), "object": object}))
            .await
    }

    async fn send_bookmark(&self, initial_events_end: bool) -> bool {
        let mut metadata = json!({"resourceVersion": self.progress.to_string()});
        if initial_events_end {
            metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        let object = json!({
            "kind": self.request.scope.resource.kind,
            "apiVersion": self.request.api_version,
            "metadata": metadata,
        });
        self.send(json!({"type": "BOOKMARK", "object": object}))
            .await
    }

    async fn send(&self, event: Value) -> bool {
        self.lines.send(Ok(line(&event))).await.is_ok()
    }
}

/// An event line: JSON and a newline.
pub fn line(event: &Value) -> Bytes {
    let mut bytes = event.to_string().into_bytes();
    bytes.push(b'\n');
    Bytes::from(bytes)
}

/// The `ERROR` event a watch that cannot start answers with.
pub fn error_event(error: &ApiError) -> Value {
    json!({"type": "ERROR", "object": error.status()})
}

/// How a change looks through a label selector: a modification that makes
/// an object match is ADDED for this watch, one that makes it stop
/// matching is DELETED.
fn visible_event(scope: &Scope, change: &Change) -> Option<EventType> {
    if !scope.covers(&change.key) {
        return None;
    }
    let matches_now = scope.selector.matches(&change.object);
    match change.event {
        EventType::Added | EventType::Deleted => matches_now.then_some(change.event),
        EventType::Modified => {
            let matched_before = change
                .previous
                .as_ref()
                .map_or(matches_now, |previous| scope.selector.matches(previous));
            match (matched_before, matches_now) {
                (true, true) => Some(EventType::Modified),
                (false, true) => Some(EventType::Added),
                (true, false) => Some(EventType::Deleted),
                (false, false) => None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::kube_api::discovery::find_by_plural;
    use crate::kube_api::selector::LabelSelector;
    use crate::kube_api::store::ObjectKey;

    async fn next_event(lines: &mut ReceiverStream<Result<Bytes, Infallible>>) -> Value {
        let line = tokio::time::timeout(Duration::from_secs(5), lines.as_mut().recv())
            .await
            .expect("no watch event within 5s")
            .expect("watch ended")
            .unwrap();
        serde_json::from_slice(&line).unwrap()
    }

    fn request(selector: &str, from: Option<u64>, bookmarks: bool) -> WatchRequest {
        WatchRequest {
            scope: Scope {
                resource: find_by_plural(&Default::default(), "", "v1", "pods").unwrap(),
                namespace: None,
                selector: LabelSelector::parse(selector).unwrap(),
            },
            from,
            bookmarks,
            send_initial_events: false,
            timeout: None,
            api_version: "v1".into(),
        }
    }

    fn pod(app: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": {"app": app}}})
    }

    fn key() -> ObjectKey {
        ObjectKey {
            group: "",
            plural: "pods",
            namespace: "ns".into(),
            name: "p".into(),
        }
    }

    #[tokio::test]
    async fn selector_changes_turn_modifications_into_added_and_deleted() {
        let store = Arc::new(Mutex::new(Store::default()));
        let from = store.lock().unwrap().resource_version();
        let mut lines = start(
            &store,
            request("app=a", Some(from), false),
            Duration::from_secs(60),
        )
        .unwrap();
        store.lock().unwrap().create(key(), pod("b")).unwrap();
        store.lock().unwrap().replace(key(), pod("a")).unwrap();
        store.lock().unwrap().replace(key(), pod("a")).unwrap();
        store.lock().unwrap().replace(key(), pod("b")).unwrap();
        let mut types = Vec::new();
        for _ in 0..3 {
            let event = next_event(&mut lines).await;
            types.push(event["type"].as_str().unwrap().to_string());
        }
        assert_eq!(types, ["ADDED", "MODIFIED", "DELETED"]);
    }

    #[tokio::test]
    async fn bookmarks_carry_the_version_reached() {
        let store = Arc::new(Mutex::new(Store::default()));
        let from = store.lock().unwrap().resource_version();
        let mut lines = start(
            &store,
            request("", Some(from), true),
            Duration::from_millis(50),
        )
        .unwrap();
        store.lock().unwrap().create(key(), pod("a")).unwrap();
        let added = next_event(&mut lines).await;
        let bookmark = next_event(&mut lines).await;
        assert_eq!(bookmark["type"], "BOOKMARK");
        assert_eq!(bookmark["object"]["kind"], "Pod");
        assert_eq!(
            bookmark["object"]["metadata"]["resourceVersion"],
            added["object"]["metadata"]["resourceVersion"]
        );
    }

    #[tokio::test]
    async fn partitions_end_open_watches_and_refuse_new_ones() {
        let store = Arc::new(Mutex::new(Store::default()));
        let mut lines =
            start(&store, request("", Some(1), false), Duration::from_secs(60)).unwrap();
        store.lock().unwrap().set_watches_available(false);
        let ended = tokio::time::timeout(Duration::from_secs(5), lines.as_mut().recv()).await;
        assert!(ended.unwrap().is_none(), "the watch should end");
        let refused = start(&store, request("", Some(1), false), Duration::from_secs(60)).err();
        assert_eq!(refused.unwrap().code, 503);
    }

    #[test]
    fn error_events_carry_a_status() {
        let event = error_event(&ApiError::expired(3, 9));
        assert_eq!(event["type"], "ERROR");
        assert_eq!(event["object"]["reason"], "Expired");
        assert_eq!(event["object"]["code"], 410);
    }
}
