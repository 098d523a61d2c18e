use std::path::Path;

use trellis_api::parse_yaml;

use super::*;

fn plan_yaml(text: &str) -> Result<MeshPlan, Vec<ConfigError>> {
    let outcome = parse_yaml(Path::new("app.yaml"), text);
    assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
    plan(outcome.resources.iter())
}

fn workload<'a>(plan: &'a MeshPlan, pod: &str) -> &'a WorkloadPlan {
    plan.workloads
        .iter()
        .find(|w| w.pod == pod)
        .unwrap_or_else(|| panic!("no pod {pod}"))
}

const SERVICE: &str = "apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector:
    app: web
  ports:
  - name: http
    port: 80
    targetPort: http-alt
  - name: admin
    port: 9000
";

fn deployment(extra_template_metadata: &str, replicas: u32) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web-v2
spec:
  replicas: {replicas}
  template:
    metadata:
      labels:
        app: web
        version: v2
{extra_template_metadata}    spec:
      serviceAccountName: web-sa
      containers:
      - name: server
        ports:
        - containerPort: 8080
          name: http-alt
"
    )
}

#[test]
fn plans_bundled_bookinfo() {
    let manifests = super::super::manifests::load(&[]).unwrap();
    let plan = plan(manifests.resources()).unwrap();
    assert_eq!(plan.workloads.len(), 6);
    let names: Vec<_> = plan.services.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["details", "ratings", "reviews", "productpage"]);
    let reviews = workload(&plan, "reviews-v2-0");
    assert_eq!(reviews.workload, "reviews-v2");
    assert_eq!(reviews.service_account, "bookinfo-reviews");
    assert_eq!(reviews.services, ["reviews"]);
    assert_eq!(reviews.labels["version"], "v2");
    assert_eq!(reviews.app.service, "reviews");
    assert_eq!(reviews.inbound_ports(), [9080]);
    assert_eq!(
        reviews.entry_ports,
        BTreeMap::from([("http".to_owned(), 9080)])
    );
}

#[test]
fn resolves_target_ports_and_replicas() {
    let plan = plan_yaml(&format!("{SERVICE}---\n{}", deployment("", 2))).unwrap();
    assert_eq!(plan.workloads.len(), 2);
    let second = workload(&plan, "web-v2-1");
    // http -> the named container port; admin -> its own number, which no
    // container declares, so the first container serves it.
    assert_eq!(
        second.entry_ports,
        BTreeMap::from([("admin".to_owned(), 9000), ("http".to_owned(), 8080)])
    );
    assert_eq!(second.containers[0].ports, [8080, 9000]);
    assert_eq!(second.inbound_ports(), [8080, 9000]);
    assert_eq!(
        second.service_targets,
        BTreeMap::from([("web".to_owned(), 8080)])
    );
    assert_eq!(second.app.version, "v2");
    assert_eq!(second.app.latency, Duration::ZERO);
}

#[test]
fn reads_demo_annotations() {
    let annotations = "      annotations:\n        trellis.io/demo-latency: 250ms\n        trellis.io/demo-error-rate: \"0.5\"\n";
    let plan = plan_yaml(&deployment(annotations, 1)).unwrap();
    let app = &plan.workloads[0].app;
    assert_eq!(app.latency, Duration::from_millis(250));
    assert_eq!(app.error_rate, 0.5);
    assert!(plan.workloads[0].services.is_empty());
}

#[test]
fn reports_bad_annotations_at_the_deployment() {
    let annotations = "      annotations:\n        trellis.io/demo-latency: soon\n        trellis.io/demo-error-rate: \"2\"\n";
    let errors = plan_yaml(&deployment(annotations, 1)).unwrap_err();
    let messages: Vec<_> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(messages.len(), 2, "{messages:?}");
    assert!(messages[0].starts_with(
        "app.yaml:1:1: spec.template.metadata.annotations.trellis.io/demo-latency: invalid duration"
    ));
    assert!(messages[1].contains("trellis.io/demo-error-rate: invalid error rate \"2\""));
}

#[test]
fn rejects_ports_the_sidecar_owns() {
    let text = deployment("", 1).replace("containerPort: 8080", "containerPort: 15001");
    let errors = plan_yaml(&text).unwrap_err();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].field, "spec.template.spec.containers[0].ports");
    assert!(errors[0].message.contains("reserved for the sidecar"));
}

#[test]
fn services_select_only_their_namespace() {
    let other_namespace = SERVICE.replace("name: web\n", "name: web\n  namespace: shop\n");
    let plan = plan_yaml(&format!("{other_namespace}---\n{}", deployment("", 1))).unwrap();
    assert!(plan.workloads[0].services.is_empty());
    assert!(plan.workloads[0].entry_ports.is_empty());
    assert_eq!(plan.services[0].namespace, "shop");
}
