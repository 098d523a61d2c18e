use serde_json::json;

use super::*;

fn object(value: Value) -> DynamicObject {
    serde_json::from_value(value).unwrap()
}

fn virtual_services() -> ApiResource {
    ApiResource {
        group: "networking.istio.io".into(),
        version: "v1".into(),
        api_version: "networking.istio.io/v1".into(),
        kind: "VirtualService".into(),
        plural: "virtualservices".into(),
    }
}

fn pod(status: Value) -> DynamicObject {
    object(json!({
        "metadata": {"name": "reviews-v1-abc", "namespace": "default", "labels": {"app": "reviews"}},
        "spec": {
            "serviceAccountName": "bookinfo-reviews",
            "containers": [{"name": "reviews", "ports": [{"containerPort": 9080, "name": "http"}, {"containerPort": 9090}]}],
        },
        "status": status,
    }))
}

fn ready(ip: &str) -> Value {
    json!({"phase": "Running", "podIP": ip, "conditions": [{"type": "Ready", "status": "True"}]})
}

#[test]
fn config_objects_are_parsed_without_server_fields() {
    let vs = object(json!({
        "metadata": {"name": "reviews", "namespace": "default", "resourceVersion": "7", "uid": "u"},
        "spec": {"hosts": ["reviews"], "http": [{"route": [{"destination": {"host": "reviews"}}]}]},
        "status": {"observedGeneration": 1},
    }));
    let Converted::Resource(resource, warnings) = convert(Role::Config, &virtual_services(), &vs)
    else {
        panic!("refused a valid VirtualService");
    };
    let AnyResource::VirtualService(resource) = *resource else {
        panic!("not a VirtualService");
    };
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(resource.spec.hosts, ["reviews"]);
    assert_eq!(
        resource.source.file,
        PathBuf::from("kubernetes:VirtualService/default/reviews")
    );
}

#[test]
fn invalid_config_is_refused_with_its_location() {
    let vs = object(json!({
        "metadata": {"name": "reviews", "namespace": "default"},
        "spec": {"hosts": ["reviews"], "http": [{"route": [{"destination": {"host": ""}}]}]},
    }));
    let Converted::Invalid(Rejection::InvalidResource, errors) =
        convert(Role::Config, &virtual_services(), &vs)
    else {
        panic!("accepted an empty destination host");
    };
    assert!(
        errors[0].starts_with("kubernetes:VirtualService/default/reviews:"),
        "{errors:?}"
    );
}

#[test]
fn ready_pods_become_workloads() {
    let converted = convert(
        Role::Workloads(Readiness::PodCondition),
        &virtual_services(),
        &pod(ready("10.244.0.9")),
    );
    let Converted::Resource(resource, _) = converted else {
        panic!("a ready pod is a workload");
    };
    let AnyResource::WorkloadEntry(entry) = *resource else {
        panic!("not a WorkloadEntry");
    };
    assert_eq!(
        entry.key().to_string(),
        "WorkloadEntry/default/reviews-v1-abc"
    );
    assert_eq!(entry.spec.address, "10.244.0.9");
    assert_eq!(
        entry.spec.service_account.as_deref(),
        Some("bookinfo-reviews")
    );
    assert_eq!(entry.spec.labels["app"], "reviews");
    assert_eq!(
        entry.spec.ports,
        BTreeMap::from([("http".to_string(), 9080)])
    );
}

#[test]
fn pods_not_ready_without_ip_or_finished_are_not_workloads() {
    let not_ready = json!({"phase": "Running", "podIP": "10.244.0.9", "conditions": [{"type": "Ready", "status": "False"}]});
    let pending = json!({"phase": "Pending", "conditions": []});
    let mut finished = ready("10.244.0.9");
    finished["phase"] = "Succeeded".into();
    for status in [not_ready, pending, finished] {
        let converted = convert(
            Role::Workloads(Readiness::PodCondition),
            &virtual_services(),
            &pod(status.clone()),
        );
        assert!(matches!(converted, Converted::Nothing), "{status}");
    }
    let mut terminating = pod(ready("10.244.0.9"));
    terminating.metadata.deletion_timestamp =
        serde_json::from_value(json!("2026-01-01T00:00:00Z")).unwrap();
    let converted = convert(
        Role::Workloads(Readiness::PodCondition),
        &virtual_services(),
        &terminating,
    );
    assert!(matches!(converted, Converted::Nothing));
}

#[test]
fn kinds_trellis_does_not_read_are_unsupported_not_invalid() {
    let resource = ApiResource {
        kind: "Telescope".into(),
        ..virtual_services()
    };
    let object = object(json!({"metadata": {"name": "t", "namespace": "default"}, "spec": {}}));
    let Converted::Unsupported(warnings) = convert(Role::Config, &resource, &object) else {
        panic!("an unknown kind is not config");
    };
    assert!(warnings[0].contains("unsupported"), "{warnings:?}");
}

#[test]
fn with_endpoint_slices_a_pod_not_ready_by_its_condition_is_still_a_workload() {
    let not_ready = json!({"phase": "Running", "podIP": "10.244.0.9", "conditions": [{"type": "Ready", "status": "False"}]});
    let role = Role::Workloads(Readiness::EndpointSlices);
    let converted = convert(role, &virtual_services(), &pod(not_ready));
    assert!(
        matches!(converted, Converted::Resource(..)),
        "{converted:?}"
    );
    let mut terminating = pod(ready("10.244.0.9"));
    terminating.metadata.deletion_timestamp =
        serde_json::from_value(json!("2026-01-01T00:00:00Z")).unwrap();
    let converted = convert(role, &virtual_services(), &terminating);
    assert!(matches!(converted, Converted::Nothing));
}

#[test]
fn endpoint_slices_list_ready_pods_without_terminating_ones() {
    let endpoint = |name: &str, conditions: serde_json::Value| {
        json!({"addresses": ["10.0.0.1"], "conditions": conditions,
               "targetRef": {"kind": "Pod", "name": name}})
    };
    let slice = object(json!({
        "metadata": {"name": "reviews-abc", "namespace": "default"},
        "addressType": "IPv4",
        "endpoints": [
            endpoint("ready", json!({"ready": true, "serving": true, "terminating": false})),
            endpoint("unknown", json!({})),
            endpoint("not-ready", json!({"ready": false, "serving": false})),
            endpoint("terminating", json!({"ready": false, "serving": true, "terminating": true})),
            {"addresses": ["10.0.0.2"], "conditions": {"ready": true}},
            {"addresses": ["10.0.0.3"], "conditions": {"ready": true},
             "targetRef": {"kind": "Node", "name": "node-1"}},
        ],
    }));
    let Converted::ReadyPods(pods) = convert(Role::EndpointSlices, &virtual_services(), &slice)
    else {
        panic!("not read as an EndpointSlice");
    };
    let names: Vec<&str> = pods.iter().map(|(_, name)| name.as_str()).collect();
    assert_eq!(names, ["ready", "unknown"]);
    assert!(pods.iter().all(|(namespace, _)| namespace == "default"));
}

#[test]
fn service_level_objectives_come_from_their_crd_like_files() {
    let slos = ApiResource {
        group: "trellis.io".into(),
        version: "v1alpha1".into(),
        api_version: "trellis.io/v1alpha1".into(),
        kind: "ServiceLevelObjective".into(),
        plural: "servicelevelobjectives".into(),
    };
    let valid = object(json!({
        "metadata": {"name": "reviews", "namespace": "default"},
        "spec": {"service": "reviews", "latency": {"threshold": "200ms", "target": 99}},
    }));
    let Converted::Resource(resource, _) = convert(Role::Config, &slos, &valid) else {
        panic!("refused a valid ServiceLevelObjective");
    };
    assert!(matches!(*resource, AnyResource::ServiceLevelObjective(_)));
    let invalid = object(json!({
        "metadata": {"name": "reviews", "namespace": "default"},
        "spec": {"service": "reviews", "availability": {"target": 100}},
    }));
    let Converted::Invalid(Rejection::InvalidResource, errors) =
        convert(Role::Config, &slos, &invalid)
    else {
        panic!("accepted a target of 100%");
    };
    assert!(
        errors[0].starts_with("kubernetes:ServiceLevelObjective/default/reviews:")
            && errors[0].contains("spec.availability.target"),
        "{errors:?}"
    );
}
