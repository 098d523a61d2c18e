//! The resource types the fake API server serves, and its discovery
//! documents (`/api`, `/apis`, `/api/v1`, `/apis/GROUP[/VERSION]`).
//! Named groups can be hidden, as when their CRDs are not installed.

use std::collections::BTreeSet;

use serde_json::{Value, json};

/// Named API groups not served right now.
pub type HiddenGroups = BTreeSet<String>;

/// One resource type: its group, the versions it is served under (the
/// first is preferred), kind and plural.
#[derive(Debug, PartialEq, Eq)]
pub struct ResourceType {
    pub group: &'static str,
    pub versions: &'static [&'static str],
    pub kind: &'static str,
    pub plural: &'static str,
    pub namespaced: bool,
}

const CORE: &[&str] = &["v1"];
const NETWORKING: &[&str] = &["v1", "v1beta1", "v1alpha3"];
const SECURITY: &[&str] = &["v1", "v1beta1"];

macro_rules! resource_types {
    ($($group:literal $versions:ident $kind:ident $plural:literal $namespaced:literal;)*) => {
        pub static RESOURCE_TYPES: &[ResourceType] = &[$(ResourceType {
            group: $group,
            versions: $versions,
            kind: stringify!($kind),
            plural: $plural,
            namespaced: $namespaced,
        },)*];
    };
}

resource_types! {
    "" CORE Namespace "namespaces" false;
    "" CORE Service "services" true;
    "" CORE Pod "pods" true;
    "" CORE ServiceAccount "serviceaccounts" true;
    "apps" CORE Deployment "deployments" true;
    "discovery.k8s.io" CORE EndpointSlice "endpointslices" true;
    "networking.istio.io" NETWORKING VirtualService "virtualservices" true;
    "networking.istio.io" NETWORKING DestinationRule "destinationrules" true;
    "networking.istio.io" NETWORKING Gateway "gateways" true;
    "networking.istio.io" NETWORKING ServiceEntry "serviceentries" true;
    "networking.istio.io" NETWORKING WorkloadEntry "workloadentries" true;
    "networking.istio.io" NETWORKING Sidecar "sidecars" true;
    "security.istio.io" SECURITY PeerAuthentication "peerauthentications" true;
    "security.istio.io" SECURITY RequestAuthentication "requestauthentications" true;
    "security.istio.io" SECURITY AuthorizationPolicy "authorizationpolicies" true;
}

const VERBS: [&str; 8] = [
    "create",
    "delete",
    "get",
    "list",
    "patch",
    "update",
    "watch",
    "deletecollection",
];

impl ResourceType {
    pub fn serves(&self, group: &str, version: &str) -> bool {
        self.group == group && self.versions.contains(&version)
    }

    /// `v1` for the core group, `GROUP/VERSION` otherwise.
    pub fn api_version(&self, version: &str) -> String {
        group_version(self.group, version)
    }
}

/// The resource type served at `group`/`version` under `plural`.
pub fn find_by_plural(
    hidden: &HiddenGroups,
    group: &str,
    version: &str,
    plural: &str,
) -> Option<&'static ResourceType> {
    if hidden.contains(group) {
        return None;
    }
    RESOURCE_TYPES
        .iter()
        .find(|resource| resource.serves(group, version) && resource.plural == plural)
}

/// The resource type of an object's `apiVersion` and `kind`.
pub fn find_by_kind(api_version: &str, kind: &str) -> Option<&'static ResourceType> {
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    RESOURCE_TYPES
        .iter()
        .find(|resource| resource.serves(group, version) && resource.kind == kind)
}

fn group_version(group: &str, version: &str) -> String {
    if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    }
}

/// `GET /api`.
pub fn core_versions() -> Value {
    json!({
        "kind": "APIVersions",
        "versions": CORE,
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1:443"}],
    })
}

/// `GET /apis`.
pub fn group_list(hidden: &HiddenGroups) -> Value {
    let groups: Vec<Value> = named_groups(hidden)
        .into_iter()
        .map(group_document)
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `GET /apis/GROUP`.
pub fn group(hidden: &HiddenGroups, name: &str) -> Option<Value> {
    named_groups(hidden)
        .into_iter()
        .find(|group| *group == name)
        .map(|group| {
            let mut document = group_document(group);
            document["kind"] = "APIGroup".into();
            document["apiVersion"] = "v1".into();
            document
        })
}

/// `GET /api/v1` or `GET /apis/GROUP/VERSION`.
pub fn resource_list(hidden: &HiddenGroups, group: &str, version: &str) -> Option<Value> {
    if hidden.contains(group) {
        return None;
    }
    let resources: Vec<Value> = RESOURCE_TYPES
        .iter()
        .filter(|resource| resource.serves(group, version))
        .map(|resource| {
            json!({
                "name": resource.plural,
                "singularName": resource.kind.to_ascii_lowercase(),
                "namespaced": resource.namespaced,
                "kind": resource.kind,
                "verbs": VERBS,
            })
        })
        .collect();
    (!resources.is_empty()).then(|| {
        json!({
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": group_version(group, version),
            "resources": resources,
        })
    })
}

fn named_groups(hidden: &HiddenGroups) -> Vec<&'static str> {
    let mut groups: Vec<&'static str> = Vec::new();
    let served =
        |resource: &&ResourceType| !resource.group.is_empty() && !hidden.contains(resource.group);
    for resource in RESOURCE_TYPES.iter().filter(served) {
        if !groups.contains(&resource.group) {
            groups.push(resource.group);
        }
    }
    groups
}

fn group_document(group: &'static str) -> Value {
    let versions = RESOURCE_TYPES
        .iter()
        .find(|resource| resource.group == group)
        .map_or(&[][..], |resource| resource.versions);
    let version_document =
        |version: &&str| json!({"groupVersion": group_version(group, version), "version": version});
    json!({
        "name": group,
        "versions": versions.iter().map(version_document).collect::<Vec<_>>(),
        "preferredVersion": versions.first().map(version_document),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn istio_groups_list_every_served_version_preferring_v1() {
        let list = group_list(&HiddenGroups::new());
        let networking = list["groups"]
            .as_array()
            .unwrap()
            .iter()
            .find(|group| group["name"] == "networking.istio.io")
            .unwrap();
        assert_eq!(networking["versions"].as_array().unwrap().len(), 3);
        assert_eq!(networking["preferredVersion"]["version"], "v1");
        let none = HiddenGroups::new();
        let resources = resource_list(&none, "security.istio.io", "v1beta1").unwrap();
        let names: Vec<&str> = resources["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|resource| resource["name"].as_str().unwrap())
            .collect();
        assert!(names.contains(&"authorizationpolicies"), "{names:?}");
        assert!(resource_list(&none, "security.istio.io", "v1alpha3").is_none());
    }

    #[test]
    fn a_hidden_group_is_neither_listed_nor_routed() {
        let hidden = HiddenGroups::from(["networking.istio.io".to_string()]);
        let list = group_list(&hidden);
        let names: Vec<&str> = list["groups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|group| group["name"].as_str().unwrap())
            .collect();
        assert!(!names.contains(&"networking.istio.io"), "{names:?}");
        assert!(names.contains(&"security.istio.io"), "{names:?}");
        assert!(group(&hidden, "networking.istio.io").is_none());
        assert!(resource_list(&hidden, "networking.istio.io", "v1").is_none());
        assert!(find_by_plural(&hidden, "networking.istio.io", "v1", "virtualservices").is_none());
        assert!(find_by_plural(&hidden, "", "v1", "pods").is_some());
    }

    #[test]
    fn kinds_resolve_under_every_served_version() {
        let vs = find_by_kind("networking.istio.io/v1alpha3", "VirtualService").unwrap();
        assert_eq!(vs.plural, "virtualservices");
        assert_eq!(find_by_kind("v1", "Pod").unwrap().plural, "pods");
        assert!(find_by_kind("v1beta1", "Pod").is_none());
        let none = HiddenGroups::new();
        assert!(find_by_plural(&none, "", "v1", "namespaces").is_some_and(|r| !r.namespaced));
    }
}
