//! Routing of the fake API server's REST paths:
//! `/api/v1[/namespaces/NS]/PLURAL[/NAME]` and
//! `/apis/GROUP/VERSION[/namespaces/NS]/PLURAL[/NAME]`, plus discovery.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::discovery::{self, HiddenGroups, ResourceType};
use super::selector::LabelSelector;
use super::store::{ApiError, ObjectKey, Scope, Store};
use super::watch::{self, WatchRequest};

#[derive(Clone)]
pub struct Shared {
    pub store: Arc<Mutex<Store>>,
    pub bookmark_interval: Duration,
    /// List requests served, so tests can tell a relist happened.
    pub lists: Arc<AtomicU64>,
    /// Groups answered as not installed.
    pub hidden_groups: Arc<Mutex<HiddenGroups>>,
}

/// A request's target below a group version.
struct Target {
    resource: &'static ResourceType,
    api_version: String,
    namespace: Option<String>,
    name: Option<String>,
}

impl Target {
    fn key(&self, name: &str) -> ObjectKey {
        ObjectKey {
            group: self.resource.group,
            plural: self.resource.plural,
            namespace: self.namespace.clone().unwrap_or_default(),
            name: name.to_string(),
        }
    }
}

pub async fn handle(
    State(shared): State<Shared>,
    method: Method,
    uri: Uri,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    let segments: Vec<&str> = uri.path().split('/').filter(|s| !s.is_empty()).collect();
    let hidden = shared
        .hidden_groups
        .lock()
        .expect("hidden groups poisoned")
        .clone();
    if method == Method::GET
        && let Some(document) = discovery_document(&hidden, &segments)
    {
        return json_response(StatusCode::OK, &document);
    }
    let result = match parse_target(&hidden, &segments) {
        Some(target) => serve(&shared, &method, target, &query, &body),
        None => Err(ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )),
    };
    result.unwrap_or_else(|error| error_response(&error))
}

fn discovery_document(hidden: &HiddenGroups, segments: &[&str]) -> Option<Value> {
    match segments {
        ["api"] => Some(discovery::core_versions()),
        ["api", version] => discovery::resource_list(hidden, "", version),
        ["apis"] => Some(discovery::group_list(hidden)),
        ["apis", group] => discovery::group(hidden, group),
        ["apis", group, version] => discovery::resource_list(hidden, group, version),
        _ => None,
    }
}

fn parse_target(hidden: &HiddenGroups, segments: &[&str]) -> Option<Target> {
    let (group, version, rest) = match segments {
        ["api", version, rest @ ..] => ("", *version, rest),
        ["apis", group, version, rest @ ..] => (*group, *version, rest),
        _ => return None,
    };
    let (namespace, plural, name) = match rest {
        ["namespaces", namespace, plural, name @ ..] if name.len() <= 1 => {
            (Some(*namespace), *plural, name.first())
        }
        [plural, name @ ..] if name.len() <= 1 => (None, *plural, name.first()),
        _ => return None,
    };
    let resource = discovery::find_by_plural(hidden, group, version, plural)?;
    if namespace.is_some() && !resource.namespaced {
        return None;
    }
    Some(Target {
        resource,
        api_version: resource.api_version(version),
        namespace: namespace.map(str::to_string),
        name: name.map(|name| name.to_string()),
    })
}

fn serve(
    shared: &Shared,
    method: &Method,
    target: Target,
    query: &HashMap<String, String>,
    body: &[u8],
) -> Result<Response, ApiError> {
    let collection_read = method == Method::GET && target.name.is_none();
    if target.resource.namespaced && target.namespace.is_none() && !collection_read {
        let message = format!(
            "{} must be addressed within a namespace",
            target.resource.plural
        );
        return Err(ApiError::new(404, "NotFound", message));
    }
    let mut store = shared.store.lock().expect("fake API store poisoned");
    let name = target.name.clone();
    let object = match (method.as_str(), name.as_deref()) {
        ("GET", None) if is_true(query.get("watch")) => {
            drop(store);
            return watch_response(shared, target, query);
        }
        ("GET", None) => {
            shared.lists.fetch_add(1, Ordering::Relaxed);
            return list_response(&store, &target, query);
        }
        ("GET", Some(name)) => store.get(&target.key(name))?,
        ("POST", None) => {
            let object = request_object(&target, body, None)?;
            let name = object["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let created = store.create(target.key(&name), object)?;
            let created = served_as(created, &target.api_version);
            return Ok(json_response(StatusCode::CREATED, &created));
        }
        ("PUT", Some(name)) => {
            let object = request_object(&target, body, Some(name))?;
            store.replace(target.key(name), object)?
        }
        ("DELETE", Some(name)) => store.delete(&target.key(name))?,
        _ => {
            return Err(ApiError::new(
                405,
                "MethodNotAllowed",
                format!("{method} is not supported here"),
            ));
        }
    };
    Ok(json_response(
        StatusCode::OK,
        &served_as(object, &target.api_version),
    ))
}

fn list_response(
    store: &Store,
    target: &Target,
    query: &HashMap<String, String>,
) -> Result<Response, ApiError> {
    let limit = query
        .get("limit")
        .map(|limit| limit.parse::<usize>())
        .transpose()
        .map_err(|_| ApiError::bad_request("limit must be a number"))?
        .filter(|limit| *limit > 0);
    let scope = scope(target, query)?;
    let page = store.list(&scope, limit, query.get("continue").map(String::as_str))?;
    let items: Vec<Value> = page
        .items
        .into_iter()
        .map(|item| served_as(item, &target.api_version))
        .collect();
    let mut metadata = json!({"resourceVersion": page.resource_version.to_string()});
    if let Some(token) = page.continue_token {
        metadata["continue"] = token.into();
    }
    let list = json!({
        "kind": format!("{}List", target.resource.kind),
        "apiVersion": target.api_version,
        "metadata": metadata,
        "items": items,
    });
    Ok(json_response(StatusCode::OK, &list))
}

fn watch_response(
    shared: &Shared,
    target: Target,
    query: &HashMap<String, String>,
) -> Result<Response, ApiError> {
    let from =
        match query.get("resourceVersion").map(String::as_str) {
            None | Some("") | Some("0") => None,
            Some(version) => Some(version.parse::<u64>().map_err(|_| {
                ApiError::bad_request(format!("invalid resourceVersion {version:?}"))
            })?),
        };
    let timeout = query
        .get("timeoutSeconds")
        .and_then(|seconds| seconds.parse().ok())
        .map(Duration::from_secs);
    let request = WatchRequest {
        scope: scope(&target, query)?,
        from,
        bookmarks: is_true(query.get("allowWatchBookmarks")),
        send_initial_events: is_true(query.get("sendInitialEvents")),
        timeout,
        api_version: target.api_version,
    };
    let body = match watch::start(&shared.store, request, shared.bookmark_interval) {
        Ok(lines) => Body::from_stream(lines),
        // The API server accepts the watch and sends one ERROR event.
        Err(error) if error.code == 410 => Body::from(watch::line(&watch::error_event(&error))),
        Err(error) => return Err(error),
    };
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

fn scope(target: &Target, query: &HashMap<String, String>) -> Result<Scope, ApiError> {
    let selector = LabelSelector::parse(query.get("labelSelector").map_or("", String::as_str))?;
    Ok(Scope {
        resource: target.resource,
        namespace: target.namespace.clone(),
        selector,
    })
}

/// The body of a create or replace, checked against the path.
fn request_object(target: &Target, body: &[u8], name: Option<&str>) -> Result<Value, ApiError> {
    let object: Value = serde_json::from_slice(body)
        .map_err(|error| ApiError::bad_request(format!("invalid JSON body: {error}")))?;
    if object["kind"] != target.resource.kind {
        let message = format!("kind must be {}", target.resource.kind);
        return Err(ApiError::bad_request(message));
    }
    let object_name = object["metadata"]["name"].as_str().unwrap_or_default();
    if object_name.is_empty() || name.is_some_and(|name| name != object_name) {
        return Err(ApiError::bad_request(
            "metadata.name is missing or differs from the path",
        ));
    }
    let object_namespace = object["metadata"]["namespace"].as_str();
    if let (Some(given), Some(path)) = (object_namespace, &target.namespace)
        && given != path
    {
        return Err(ApiError::bad_request(
            "the namespace of the object does not match the path",
        ));
    }
    Ok(object)
}

/// Objects of a group are stored once and served under the version asked for.
fn served_as(mut object: Value, api_version: &str) -> Value {
    object["apiVersion"] = api_version.into();
    object
}

fn is_true(value: Option<&String>) -> bool {
    value.is_some_and(|value| value == "true" || value == "1")
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn error_response(error: &ApiError) -> Response {
    let status = StatusCode::from_u16(error.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    json_response(status, &error.status())
}
