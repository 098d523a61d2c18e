use kube::discovery::ApiResource;
use serde_json::{Value, json};

use super::*;

fn services() -> KindStore {
    KindStore::new(ServedKind {
        resource: ApiResource {
            group: String::new(),
            version: "v1".into(),
            api_version: "v1".into(),
            kind: "Service".into(),
            plural: "services".into(),
        },
        role: Role::Config,
    })
}

fn service(name: &str, port: Value) -> DynamicObject {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"ports": [{"name": "http", "port": port}], "selector": {"app": name}},
    }))
    .unwrap()
}

fn names(store: &KindStore) -> Vec<String> {
    store.resources().map(|r| r.meta().name.clone()).collect()
}

fn port_of(store: &KindStore, name: &str) -> u16 {
    store
        .resources()
        .find_map(|resource| match resource.as_ref() {
            AnyResource::Service(service) if service.meta.name == name => {
                Some(service.spec.ports[0].port)
            }
            _ => None,
        })
        .unwrap()
}

fn list(store: &mut KindStore, objects: Vec<DynamicObject>) -> bool {
    store.handle(Event::Init);
    for object in objects {
        store.handle(Event::InitApply(object));
    }
    store.handle(Event::InitDone)
}

#[test]
fn a_relist_replaces_the_contents_when_complete() {
    let mut store = services();
    assert!(!store.is_synced());
    assert!(list(
        &mut store,
        vec![service("a", json!(80)), service("b", json!(80))]
    ));
    assert!(store.is_synced());
    // Mid-relist, what was in force stays.
    store.handle(Event::Init);
    store.handle(Event::InitApply(service("b", json!(80))));
    assert_eq!(names(&store), ["a", "b"]);
    // Done: "a" was deleted while the watch was down.
    assert!(store.handle(Event::InitDone));
    assert_eq!(names(&store), ["b"]);
    // The same list again changes nothing.
    assert!(!list(&mut store, vec![service("b", json!(80))]));
}

#[test]
fn invalid_versions_keep_the_last_good_one() {
    let mut store = services();
    list(&mut store, vec![service("a", json!(80))]);
    assert!(!store.handle(Event::Apply(service("a", json!(0)))));
    assert_eq!(port_of(&store, "a"), 80);
    assert!(store.handle(Event::Apply(service("a", json!(81)))));
    assert_eq!(port_of(&store, "a"), 81);
    // Invalid during a relist: still the last good version.
    assert!(!list(&mut store, vec![service("a", json!(0))]));
    assert_eq!(port_of(&store, "a"), 81);
    // Never valid: nothing.
    assert!(!store.handle(Event::Apply(service("b", json!(0)))));
    assert_eq!(names(&store), ["a"]);
    assert!(store.handle(Event::Delete(service("a", json!(81)))));
    assert!(names(&store).is_empty());
}
