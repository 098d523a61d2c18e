//! Injection into one pod (or pod template): everything else in the pod is
//! left as it was.

use serde::Serialize;
use serde_json::{Map, Value};

use crate::config::{InjectConfig, ProxyConfig};
use crate::error::InjectError;
use crate::names::*;
use crate::selection::{SkipReason, pod_opt_out, text};
use crate::template::{self, ProxyContext, STATUS_PORT};

/// What injection did to a pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Injected,
    Skipped(SkipReason),
}

/// The `sidecar.istio.io/status` annotation, with Istio's field order.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SidecarStatus<'a> {
    init_containers: [&'a str; 1],
    containers: [&'a str; 1],
    volumes: Vec<&'a str>,
    image_pull_secrets: Option<()>,
    revision: &'a str,
}

/// Injects the sidecar into `pod`, an object with `metadata` and `spec`
/// (a Pod, or the `template` of a workload). `workload_name` names the
/// owning workload for the proxy's metrics and canonical labels.
pub fn inject_pod(
    pod: &mut Value,
    workload_name: &str,
    config: &InjectConfig,
) -> Result<Outcome, InjectError> {
    let pod = pod
        .as_object_mut()
        .ok_or(InjectError::InvalidPod("not an object"))?;
    let spec = pod
        .get("spec")
        .and_then(Value::as_object)
        .ok_or(InjectError::InvalidPod("no spec"))?;
    let app_containers = container_names(spec)?;
    if spec.get("hostNetwork").and_then(Value::as_bool) == Some(true) {
        return Ok(Outcome::Skipped(SkipReason::HostNetwork));
    }
    let metadata = object_field(pod, "metadata")?;
    let mut labels = take_map(metadata, "labels")?;
    let mut annotations = take_map(metadata, "annotations")?;
    if let Some(reason) = pod_opt_out(&labels, &annotations) {
        restore(metadata, labels, annotations);
        return Ok(Outcome::Skipped(reason));
    }
    add_labels(&mut labels, workload_name, config);
    let app_prometheus = scrape_through_proxy(&mut annotations);
    let image = text(&annotations, PROXY_IMAGE)
        .unwrap_or(&config.proxy_image)
        .to_owned();
    let context = ProxyContext {
        annotations: &annotations,
        labels: &labels,
        workload_name,
        app_containers: &app_containers,
        app_prometheus,
    };
    let proxy = template::proxy_container(&context, config, &image);
    let init = template::init_container(&annotations, &image);
    let hold = hold_application(&annotations, config);
    add_annotations(&mut annotations, &app_containers, config);
    restore(metadata, labels, annotations);
    let spec = object_field(pod, "spec")?;
    add_containers(spec, init, proxy, hold)?;
    add_volumes(spec)?;
    Ok(Outcome::Injected)
}

fn container_names(spec: &Map<String, Value>) -> Result<Vec<String>, InjectError> {
    let containers = spec
        .get("containers")
        .and_then(Value::as_array)
        .ok_or(InjectError::InvalidPod("spec.containers is not a list"))?;
    Ok(containers
        .iter()
        .filter_map(|container| container.get("name").and_then(Value::as_str))
        .map(str::to_owned)
        .collect())
}

fn object_field<'a>(
    object: &'a mut Map<String, Value>,
    key: &str,
) -> Result<&'a mut Map<String, Value>, InjectError> {
    let field = object
        .entry(key)
        .or_insert_with(|| Value::Object(Map::new()));
    if field.is_null() {
        *field = Value::Object(Map::new());
    }
    field.as_object_mut().ok_or(InjectError::InvalidPod(
        "metadata, spec, labels and annotations must be objects",
    ))
}

/// Takes a string map out of `metadata` (put back with [`restore`]) so
/// that labels and annotations can be edited side by side.
fn take_map(
    metadata: &mut Map<String, Value>,
    key: &str,
) -> Result<Map<String, Value>, InjectError> {
    match metadata.remove(key) {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(map)) => Ok(map),
        Some(_) => Err(InjectError::InvalidPod(
            "labels and annotations must be objects",
        )),
    }
}

/// Puts labels and annotations back, leaving absent what was absent and
/// is still empty.
fn restore(
    metadata: &mut Map<String, Value>,
    labels: Map<String, Value>,
    annotations: Map<String, Value>,
) {
    for (key, map) in [("labels", labels), ("annotations", annotations)] {
        if !map.is_empty() {
            metadata.insert(key.to_owned(), Value::Object(map));
        }
    }
}

/// Istio's canonical service labels (from the app's own labels when it has
/// them), the mTLS mode label that peers use to choose mTLS, and the
/// revision that injected the pod, which its proxy reports to the control
/// plane (as current Istio labels injected pods).
fn add_labels(labels: &mut Map<String, Value>, workload_name: &str, config: &InjectConfig) {
    let first_of = |keys: [&str; 3]| {
        keys.iter()
            .find_map(|key| text(labels, key))
            .map(str::to_owned)
    };
    let name = first_of([CANONICAL_NAME_LABEL, "app.kubernetes.io/name", "app"])
        .unwrap_or_else(|| workload_name.to_owned());
    let revision = first_of([
        CANONICAL_REVISION_LABEL,
        "app.kubernetes.io/version",
        "version",
    ])
    .unwrap_or_else(|| "latest".to_owned());
    labels.insert(CANONICAL_NAME_LABEL.to_owned(), name.into());
    labels.insert(CANONICAL_REVISION_LABEL.to_owned(), revision.into());
    labels.insert(TLS_MODE_LABEL.to_owned(), "istio".into());
    labels.insert(REVISION_LABEL.to_owned(), config.revision.name().into());
}

/// Points Prometheus at the merged metrics port, unless the app turned
/// scraping off. Returns the app's own annotations, which the proxy scrapes
/// and merges (Istio's `ISTIO_PROMETHEUS_ANNOTATIONS`).
fn scrape_through_proxy(annotations: &mut Map<String, Value>) -> Option<Value> {
    if text(annotations, PROMETHEUS_SCRAPE) == Some("false") {
        return None;
    }
    let app: Map<String, Value> = [
        ("scrape", PROMETHEUS_SCRAPE),
        ("path", PROMETHEUS_PATH),
        ("port", PROMETHEUS_PORT),
    ]
    .into_iter()
    .filter_map(|(field, key)| Some((field.to_owned(), annotations.get(key)?.clone())))
    .collect();
    annotations.insert(PROMETHEUS_SCRAPE.to_owned(), "true".into());
    annotations.insert(PROMETHEUS_PORT.to_owned(), STATUS_PORT.to_string().into());
    annotations.insert(PROMETHEUS_PATH.to_owned(), "/stats/prometheus".into());
    (!app.is_empty()).then_some(Value::Object(app))
}

/// `holdApplicationUntilProxyStarts` from the pod's `proxy.istio.io/config`
/// annotation, else the mesh default. A malformed annotation falls back to
/// the default rather than failing the pod, as the proxy would.
fn hold_application(annotations: &Map<String, Value>, config: &InjectConfig) -> bool {
    text(annotations, PROXY_CONFIG)
        .and_then(|yaml| serde_saphyr::from_str::<ProxyConfig>(yaml).ok())
        .and_then(|proxy| proxy.hold_application_until_proxy_starts)
        .unwrap_or(config.hold_application_until_proxy_starts)
}

fn add_annotations(
    annotations: &mut Map<String, Value>,
    app_containers: &[String],
    config: &InjectConfig,
) {
    let volumes = template::volumes();
    let status = SidecarStatus {
        init_containers: [INIT_CONTAINER],
        containers: [PROXY_CONTAINER],
        volumes: volumes.iter().map(|(name, _, _)| *name).collect(),
        image_pull_secrets: None,
        revision: config.revision.name(),
    };
    let status = serde_json::to_string(&status).expect("the status annotation serializes");
    annotations.insert(STATUS_ANNOTATION.to_owned(), status.into());
    // Which revision injected the pod, as Istio records it.
    annotations.insert(REVISION_LABEL.to_owned(), config.revision.name().into());
    // `kubectl logs POD` keeps showing the app, not the proxy listed first.
    if let Some(app) = app_containers.first() {
        for key in [DEFAULT_CONTAINER, DEFAULT_LOGS_CONTAINER] {
            annotations.entry(key).or_insert_with(|| app.clone().into());
        }
    }
}

/// `istio-init` runs before any app init container, so that their traffic
/// is already captured, as in Istio. The proxy goes first among the
/// containers when the app is held until the proxy starts.
fn add_containers(
    spec: &mut Map<String, Value>,
    init: Value,
    proxy: Value,
    hold_application: bool,
) -> Result<(), InjectError> {
    list_field(spec, "initContainers")?.insert(0, init);
    let containers = list_field(spec, "containers")?;
    if hold_application {
        containers.insert(0, proxy);
    } else {
        containers.push(proxy);
    }
    Ok(())
}

/// Adds the sidecar's volumes, replacing any of the same name (as a
/// re-applied template would).
fn add_volumes(spec: &mut Map<String, Value>) -> Result<(), InjectError> {
    let volumes = list_field(spec, "volumes")?;
    for volume in template::volume_objects() {
        let name = volume.get("name").cloned();
        match volumes
            .iter_mut()
            .find(|existing| existing.get("name") == name.as_ref())
        {
            Some(existing) => *existing = volume,
            None => volumes.push(volume),
        }
    }
    Ok(())
}

fn list_field<'a>(
    spec: &'a mut Map<String, Value>,
    key: &str,
) -> Result<&'a mut Vec<Value>, InjectError> {
    let field = spec.entry(key).or_insert_with(|| Value::Array(Vec::new()));
    if field.is_null() {
        *field = Value::Array(Vec::new());
    }
    field.as_array_mut().ok_or(InjectError::InvalidPod(
        "containers, initContainers and volumes must be lists",
    ))
}
