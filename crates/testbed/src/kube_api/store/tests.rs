use serde_json::json;

use super::*;
use crate::kube_api::discovery::find_by_plural;

fn pods(namespace: Option<&str>, selector: &str) -> Scope {
    Scope {
        resource: find_by_plural(&Default::default(), "", "v1", "pods").unwrap(),
        namespace: namespace.map(str::to_string),
        selector: LabelSelector::parse(selector).unwrap(),
    }
}

fn key(namespace: &str, name: &str) -> ObjectKey {
    ObjectKey {
        group: "",
        plural: "pods",
        namespace: namespace.into(),
        name: name.into(),
    }
}

fn pod(name: &str, app: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": app}}})
}

fn version_of(object: &Value) -> u64 {
    object["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn every_change_gets_a_greater_resource_version() {
    let mut store = Store::default();
    let a = store.create(key("ns", "a"), pod("a", "x")).unwrap();
    let b = store.create(key("ns", "b"), pod("b", "x")).unwrap();
    let a2 = store.replace(key("ns", "a"), pod("a", "y")).unwrap();
    assert!(version_of(&a) < version_of(&b) && version_of(&b) < version_of(&a2));
    assert_eq!(a2["metadata"]["uid"], a["metadata"]["uid"]);
    assert_eq!(a2["metadata"]["namespace"], "ns");
    let deleted = store.delete(&key("ns", "a")).unwrap();
    assert_eq!(version_of(&deleted), store.resource_version());
    assert_eq!(store.get(&key("ns", "a")).unwrap_err().code, 404);
}

#[test]
fn create_conflicts_and_stale_replaces_are_refused() {
    let mut store = Store::default();
    let created = store.create(key("ns", "a"), pod("a", "x")).unwrap();
    assert_eq!(
        store
            .create(key("ns", "a"), pod("a", "x"))
            .unwrap_err()
            .code,
        409
    );
    store.replace(key("ns", "a"), pod("a", "y")).unwrap();
    // Replacing based on the first version lost the race.
    let stale = store.replace(key("ns", "a"), created).unwrap_err();
    assert_eq!((stale.code, stale.reason), (409, "Conflict"));
    assert_eq!(
        store
            .replace(key("ns", "b"), pod("b", "x"))
            .unwrap_err()
            .code,
        404
    );
}

#[test]
fn lists_filter_by_namespace_and_labels_and_page_with_continue() {
    let mut store = Store::default();
    for (namespace, name, app) in [("a", "p1", "x"), ("a", "p2", "y"), ("b", "p3", "x")] {
        store.create(key(namespace, name), pod(name, app)).unwrap();
    }
    let names = |page: &ListPage| -> Vec<String> {
        page.items
            .iter()
            .map(|item| item["metadata"]["name"].as_str().unwrap().to_string())
            .collect()
    };
    let all = store.list(&pods(None, ""), None, None).unwrap();
    assert_eq!(names(&all), ["p1", "p2", "p3"]);
    assert_eq!(all.resource_version, store.resource_version());
    assert_eq!(
        names(&store.list(&pods(Some("a"), ""), None, None).unwrap()),
        ["p1", "p2"]
    );
    assert_eq!(
        names(&store.list(&pods(None, "app=x"), None, None).unwrap()),
        ["p1", "p3"]
    );

    let first = store.list(&pods(None, ""), Some(2), None).unwrap();
    assert_eq!(names(&first), ["p1", "p2"]);
    let token = first.continue_token.clone().unwrap();
    let second = store.list(&pods(None, ""), Some(2), Some(&token)).unwrap();
    assert_eq!(names(&second), ["p3"]);
    assert_eq!(second.continue_token, None);
    assert_eq!(second.resource_version, first.resource_version);
    store.create(key("b", "p4"), pod("p4", "x")).unwrap();
    store.compact();
    let expired = store
        .list(&pods(None, ""), Some(2), Some(&token))
        .unwrap_err();
    assert_eq!(expired.code, 410);
}

#[test]
fn watches_replay_history_after_the_requested_version() {
    let mut store = Store::default();
    store.create(key("ns", "a"), pod("a", "x")).unwrap();
    let listed = store
        .list(&pods(None, ""), None, None)
        .unwrap()
        .resource_version;
    store.create(key("ns", "b"), pod("b", "x")).unwrap();
    store.delete(&key("ns", "a")).unwrap();

    let start = store.watch(&pods(None, ""), Some(listed)).unwrap();
    let events: Vec<(EventType, &str)> = start
        .backlog
        .iter()
        .map(|change| (change.event, change.key.name.as_str()))
        .collect();
    assert_eq!(events, [(EventType::Added, "b"), (EventType::Deleted, "a")]);

    // Without a version, the current objects come first, as ADDED.
    let fresh = store.watch(&pods(None, ""), None).unwrap();
    assert_eq!(fresh.backlog.len(), 1);
    assert_eq!(fresh.backlog[0].key.name, "b");
}

#[test]
fn live_changes_follow_the_backlog_without_gaps() {
    let mut store = Store::default();
    let mut start = store.watch(&pods(None, ""), Some(1)).unwrap();
    store.create(key("ns", "a"), pod("a", "x")).unwrap();
    let change = start.live.try_recv().unwrap();
    assert_eq!(
        (change.event, change.key.name.as_str()),
        (EventType::Added, "a")
    );
}

#[test]
fn versions_older_than_the_history_are_gone() {
    let mut store = Store::with_history(2);
    let start = store.resource_version();
    for name in ["a", "b", "c"] {
        store.create(key("ns", name), pod(name, "x")).unwrap();
    }
    let error = store.watch(&pods(None, ""), Some(start)).err().unwrap();
    assert_eq!((error.code, error.reason), (410, "Expired"));
    let status = error.status();
    assert_eq!(status["kind"], "Status");
    assert_eq!(status["code"], 410);
    // The retained window still serves.
    let recent = store.resource_version() - 1;
    assert_eq!(
        store
            .watch(&pods(None, ""), Some(recent))
            .unwrap()
            .backlog
            .len(),
        1
    );

    store.compact();
    assert_eq!(
        store
            .watch(&pods(None, ""), Some(recent))
            .err()
            .unwrap()
            .code,
        410
    );
    let now = store.resource_version();
    assert!(
        store
            .watch(&pods(None, ""), Some(now))
            .unwrap()
            .backlog
            .is_empty()
    );
}
