use kube::discovery::ApiResource;
use serde_json::{Value, json};

use super::*;

fn services() -> KindStore {
    services_counted(ValidationMetrics::default())
}

fn services_counted(validation: ValidationMetrics) -> KindStore {
    KindStore::new(
        ServedKind {
            resource: ApiResource {
                group: String::new(),
                version: "v1".into(),
                api_version: "v1".into(),
                kind: "Service".into(),
                plural: "services".into(),
            },
            role: Role::Config,
        },
        validation,
    )
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

fn version(mut object: DynamicObject, resource_version: &str) -> DynamicObject {
    object.metadata.resource_version = Some(resource_version.into());
    object
}

/// `galley_validation_*` series and their values, sorted.
fn counted(validation: &ValidationMetrics) -> Vec<String> {
    let mut registry = prometheus_client::registry::Registry::default();
    validation.register(&mut registry);
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    let mut lines: Vec<String> = text
        .lines()
        .filter(|line| line.starts_with("galley_"))
        .map(str::to_string)
        .collect();
    lines.sort();
    lines
}

#[test]
fn each_object_version_is_validated_and_counted_once() {
    let validation = ValidationMetrics::default();
    let mut store = services_counted(validation.clone());
    let first_list = || {
        vec![
            version(service("a", json!(80)), "1"),
            version(service("b", json!(0)), "2"),
        ]
    };
    list(&mut store, first_list());
    // A relist delivers the same versions again: nothing new to count.
    list(&mut store, first_list());
    // Updated and still invalid; updated and valid; not a Service at all.
    store.handle(Event::Apply(version(service("b", json!(0)), "3")));
    store.handle(Event::Apply(version(service("a", json!(81)), "4")));
    store.handle(Event::Apply(version(service("c", json!("eighty")), "5")));
    let labels = "group=\"\",version=\"v1\",resource=\"services\"";
    assert_eq!(
        counted(&validation),
        [
            format!("galley_validation_failed{{{labels},reason=\"crd_conversion_error\"}} 1"),
            format!("galley_validation_failed{{{labels},reason=\"invalid_resource\"}} 2"),
            format!("galley_validation_passed{{{labels}}} 2"),
        ]
    );
}
