//! Fields a schema does not have: a warning naming the path and line for
//! Istio kinds, silence for Kubernetes kinds; the resource still loads.

use std::path::Path;

use super::{ParseOutcome, parse_yaml};

fn parse(text: &str) -> ParseOutcome {
    parse_yaml(Path::new("typo.yaml"), text)
}

/// (field, line, message) of every warning.
fn warnings(outcome: &ParseOutcome) -> Vec<(String, usize, String)> {
    outcome
        .warnings
        .iter()
        .map(|w| (w.field.clone(), w.line, w.message.clone()))
        .collect()
}

#[test]
fn a_misspelled_istio_field_is_a_warning_with_its_path_and_line() {
    let text = "\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - rout:
    - destination: {host: reviews}
    route:
    - destination: {host: reviews}
    retries:
      attempts: 3
      perTryTimout: 2s
";
    let outcome = parse(text);
    assert!(outcome.errors.is_empty(), "{:#?}", outcome.errors);
    assert_eq!(outcome.resources.len(), 1);
    assert_eq!(
        warnings(&outcome),
        [
            (
                "spec.http[0].rout".into(),
                7,
                "unknown field \"rout\"".into()
            ),
            (
                "spec.http[0].retries.perTryTimout".into(),
                13,
                "unknown field \"perTryTimout\"".into()
            ),
        ]
    );
    assert_eq!(
        outcome.warnings[0].to_string(),
        "typo.yaml:7:5: spec.http[0].rout: unknown field \"rout\""
    );
}

#[test]
fn unknown_fields_are_warned_about_in_every_istio_kind() {
    let cases = [
        (
            "networking.istio.io/v1",
            "DestinationRule",
            "host: a\n  hostt: b",
        ),
        ("networking.istio.io/v1beta1", "Gateway", "selektor: {a: b}"),
        (
            "networking.istio.io/v1alpha3",
            "ServiceEntry",
            "hosts: [a.com]\n  resolutio: DNS",
        ),
        ("networking.istio.io/v1", "Sidecar", "egres: []"),
        ("networking.istio.io/v1", "WorkloadEntry", "adress: 1.2.3.4"),
        (
            "security.istio.io/v1",
            "PeerAuthentication",
            "mtsl: {mode: STRICT}",
        ),
        (
            "security.istio.io/v1",
            "AuthorizationPolicy",
            "actoin: DENY",
        ),
        (
            "security.istio.io/v1",
            "RequestAuthentication",
            "jwtrules: []",
        ),
    ];
    for (api_version, kind, spec) in cases {
        let text = format!(
            "apiVersion: {api_version}\nkind: {kind}\nmetadata: {{name: x}}\nspec:\n  {spec}\n"
        );
        let outcome = parse(&text);
        let found = warnings(&outcome);
        assert_eq!(found.len(), 1, "{kind}: {found:?} {:?}", outcome.errors);
        assert!(found[0].0.starts_with("spec."), "{kind}: {found:?}");
        assert!(found[0].2.starts_with("unknown field"), "{kind}: {found:?}");
    }
}

#[test]
fn top_level_and_metadata_typos_are_named_but_kubernetes_bookkeeping_is_not() {
    let text = "\
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata:
  name: default
  namspace: prod
  uid: 7f0c
  resourceVersion: \"12\"
  creationTimestamp: null
  managedFields: [{manager: kubectl}]
spce: {}
status: {validationMessages: []}
";
    let outcome = parse(text);
    assert!(outcome.errors.is_empty(), "{:#?}", outcome.errors);
    assert_eq!(
        warnings(&outcome),
        [
            (
                "metadata.namspace".into(),
                5,
                "unknown field \"namspace\"".into()
            ),
            ("spce".into(), 10, "unknown field \"spce\"".into()),
        ]
    );
}

#[test]
fn kubernetes_objects_carry_fields_the_mesh_does_not_read_without_warnings() {
    let text = "\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, uid: a}
spec:
  replicas: 2
  strategy: {type: RollingUpdate}
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      nodeSelector: {disk: ssd}
      containers:
      - name: web
        image: web:1
        resources: {limits: {cpu: 1}}
status: {replicas: 2}
";
    let outcome = parse(text);
    assert!(outcome.errors.is_empty(), "{:#?}", outcome.errors);
    assert!(outcome.warnings.is_empty(), "{:#?}", outcome.warnings);
    assert_eq!(outcome.resources.len(), 1);
}

#[test]
fn an_invalid_resource_still_reports_its_unknown_fields() {
    let text = "\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  tcp:
  - route:
    - destination: {host: reviews}
      weight: -1
      wieght: 5
";
    let outcome = parse(text);
    assert_eq!(outcome.errors.len(), 1, "{:#?}", outcome.errors);
    assert_eq!(
        warnings(&outcome),
        [(
            "spec.tcp[0].route[0].wieght".into(),
            10,
            "unknown field \"wieght\"".into()
        )]
    );
}
