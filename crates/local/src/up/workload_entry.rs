//! Each local workload registered as an Istio `WorkloadEntry` file in the
//! config directory: the control plane learns endpoints from the same
//! watched directory as the routing, so a restarted control plane knows
//! every endpoint without asking `up`.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use serde::Serialize;

use super::plan::WorkloadPlan;

/// Istio's label for the workload (Deployment) a WorkloadEntry belongs to.
pub const WORKLOAD_NAME_LABEL: &str = "service.istio.io/workload-name";

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WorkloadEntryDocument<'a> {
    api_version: &'static str,
    kind: &'static str,
    metadata: Metadata<'a>,
    spec: Spec<'a>,
}

#[derive(Serialize)]
struct Metadata<'a> {
    name: &'a str,
    namespace: &'a str,
    labels: &'a BTreeMap<String, String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Spec<'a> {
    address: String,
    labels: BTreeMap<String, String>,
    service_account: &'a str,
    ports: &'a BTreeMap<String, u16>,
}

/// The YAML of `workload`'s WorkloadEntry at `address`: named after the pod,
/// labelled with the pod template's labels (which Service selectors match),
/// with the service account its certificate is issued for, and its ports by
/// Service port name.
pub fn workload_entry_yaml(workload: &WorkloadPlan, address: Ipv4Addr) -> String {
    // Istio names a WorkloadEntry's workload by this label (metrics report
    // the Deployment, not the pod).
    let mut labels = workload.labels.clone();
    labels.insert(WORKLOAD_NAME_LABEL.into(), workload.workload.clone());
    let document = WorkloadEntryDocument {
        api_version: "networking.istio.io/v1",
        kind: "WorkloadEntry",
        metadata: Metadata {
            name: &workload.pod,
            namespace: &workload.namespace,
            labels: &workload.labels,
        },
        spec: Spec {
            address: address.to_string(),
            labels,
            service_account: &workload.service_account,
            ports: &workload.entry_ports,
        },
    };
    let yaml = serde_saphyr::to_string(&document)
        .expect("maps of strings and numbers always serialize to YAML");
    format!(
        "# Registered by `trellis up` for pod {}: a local process with its own sidecar.\n{yaml}",
        workload.pod
    )
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use trellis_api::{AnyResource, parse_yaml};

    use super::*;
    use crate::up::plan::{AppPlan, ContainerPlan};

    fn reviews_v2() -> WorkloadPlan {
        WorkloadPlan {
            workload: "reviews-v2".into(),
            pod: "reviews-v2-0".into(),
            namespace: "default".into(),
            service_account: "bookinfo-reviews".into(),
            labels: BTreeMap::from([
                ("app".into(), "reviews".into()),
                ("version".into(), "v2".into()),
                // A value YAML would read as a boolean unless quoted.
                ("canary".into(), "true".into()),
            ]),
            services: vec!["reviews".into()],
            app: AppPlan {
                service: "reviews".into(),
                version: "v2".into(),
                latency: Duration::ZERO,
                error_rate: 0.0,
            },
            containers: vec![ContainerPlan {
                name: "reviews".into(),
                ports: vec![9080],
            }],
            entry_ports: BTreeMap::from([("http".into(), 9080)]),
            service_targets: BTreeMap::from([("reviews".into(), 9080)]),
            proxy_type: crate::up::state::ProxyRole::Sidecar,
        }
    }

    #[test]
    fn round_trips_through_the_api_parser() {
        let yaml = workload_entry_yaml(&reviews_v2(), Ipv4Addr::new(127, 42, 0, 7));
        let outcome = parse_yaml(Path::new("workload.yaml"), &yaml);
        assert!(outcome.errors.is_empty(), "{:?}\n{yaml}", outcome.errors);
        let [AnyResource::WorkloadEntry(entry)] = outcome.resources.as_slice() else {
            panic!("expected one WorkloadEntry in\n{yaml}");
        };
        assert_eq!(entry.meta.name, "reviews-v2-0");
        assert_eq!(entry.meta.namespace.as_deref(), Some("default"));
        assert_eq!(entry.spec.address, "127.42.0.7");
        assert_eq!(
            entry.spec.service_account.as_deref(),
            Some("bookinfo-reviews")
        );
        let mut expected = reviews_v2().labels;
        expected.insert(WORKLOAD_NAME_LABEL.into(), "reviews-v2".into());
        assert_eq!(entry.spec.labels, expected);
        assert_eq!(
            entry.spec.ports,
            BTreeMap::from([("http".to_owned(), 9080)])
        );
    }

    #[test]
    fn generates_from_a_deployment_and_its_service() {
        let manifests = "apiVersion: v1
kind: Service
metadata: {name: ratings}
spec:
  selector: {app: ratings}
  ports: [{name: http-web, port: 80, targetPort: 9080}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: ratings-v1, namespace: default}
spec:
  template:
    metadata:
      labels: {app: ratings, version: v1}
    spec:
      serviceAccountName: bookinfo-ratings
      containers: [{name: ratings, ports: [{containerPort: 9080}]}]
";
        let parsed = parse_yaml(Path::new("ratings.yaml"), manifests);
        let plan = crate::up::plan::plan(parsed.resources.iter()).unwrap();
        let yaml = workload_entry_yaml(&plan.workloads[0], Ipv4Addr::new(127, 42, 0, 3));
        let reparsed = parse_yaml(Path::new("entry.yaml"), &yaml);
        let [AnyResource::WorkloadEntry(entry)] = reparsed.resources.as_slice() else {
            panic!("expected one WorkloadEntry in\n{yaml}");
        };
        assert_eq!(entry.meta.name, "ratings-v1-0");
        assert_eq!(
            entry.spec.ports,
            BTreeMap::from([("http-web".to_owned(), 9080)])
        );
        assert_eq!(entry.spec.labels["version"], "v1");
        assert_eq!(
            entry.spec.service_account.as_deref(),
            Some("bookinfo-ratings")
        );
    }
}
