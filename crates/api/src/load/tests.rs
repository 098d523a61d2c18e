use std::path::{Path, PathBuf};

use super::*;
use crate::istio::StringMatch;
use crate::kube::IntOrString;
use crate::meta::Resource;

/// Istio's Bookinfo sample, bundled once for the whole repository.
fn testdata(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../samples/bookinfo")
        .join(relative)
}

fn parse(text: &str) -> ParseOutcome {
    parse_yaml(Path::new("test.yaml"), text)
}

fn only_error(outcome: &ParseOutcome) -> &ConfigError {
    assert_eq!(outcome.errors.len(), 1, "{:#?}", outcome.errors);
    &outcome.errors[0]
}

fn virtual_services(outcome: &ParseOutcome) -> Vec<&Resource<crate::istio::VirtualService>> {
    outcome
        .resources
        .iter()
        .filter_map(|r| match r {
            AnyResource::VirtualService(vs) => Some(vs),
            _ => None,
        })
        .collect()
}

#[test]
fn every_bookinfo_networking_sample_parses_without_errors() {
    let mut files: Vec<_> = std::fs::read_dir(testdata("networking"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    files.sort();
    assert!(files.len() >= 20, "samples missing: {files:?}");
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let outcome = parse_yaml(&file, &text);
        assert!(
            outcome.errors.is_empty(),
            "{}: {:#?}",
            file.display(),
            outcome.errors
        );
        assert!(
            outcome.warnings.is_empty(),
            "{}: {:#?}",
            file.display(),
            outcome.warnings
        );
        assert!(
            !outcome.resources.is_empty(),
            "{}: nothing read",
            file.display()
        );
    }
}

#[test]
fn bookinfo_platform_reads_services_accounts_and_deployments() {
    let file = testdata("platform/bookinfo.yaml");
    let outcome = parse_yaml(&file, &std::fs::read_to_string(&file).unwrap());
    assert!(outcome.errors.is_empty(), "{:#?}", outcome.errors);
    assert!(outcome.warnings.is_empty(), "{:#?}", outcome.warnings);
    let count = |kind: &str| {
        outcome
            .resources
            .iter()
            .filter(|r| r.kind() == kind)
            .count()
    };
    assert_eq!(count("Service"), 4);
    assert_eq!(count("ServiceAccount"), 4);
    assert_eq!(count("Deployment"), 6);

    let reviews_v3 = outcome
        .resources
        .iter()
        .find_map(|r| match r {
            AnyResource::Deployment(d) if d.meta.name == "reviews-v3" => Some(d),
            _ => None,
        })
        .unwrap();
    let template = &reviews_v3.spec.template;
    assert_eq!(template.metadata.labels["version"], "v3");
    assert_eq!(
        template.spec.service_account_name.as_deref(),
        Some("bookinfo-reviews")
    );
    let container = &template.spec.containers[0];
    assert_eq!(container.ports[0].container_port, 9080);
    assert_eq!(container.env[0].name, "LOG_DIR");
    assert_eq!(container.env[0].value.as_deref(), Some("/tmp/logs"));
    assert_eq!(reviews_v3.spec.selector.match_labels["app"], "reviews");

    let details = match &outcome.resources[0] {
        AnyResource::Service(service) => service,
        other => panic!("first resource is {other:?}"),
    };
    assert_eq!(details.key().to_string(), "Service/default/details");
    assert_eq!(details.spec.ports[0].name.as_deref(), Some("http"));
    assert_eq!(details.spec.ports[0].port, 9080);
    assert_eq!(details.source.line, 32, "{:?}", details.source);
    assert_eq!(details.source.column, 1);
}

#[test]
fn bookinfo_routes_are_typed() {
    let file = testdata("networking/virtual-service-reviews-jason-v2-v3.yaml");
    let outcome = parse_yaml(&file, &std::fs::read_to_string(&file).unwrap());
    let vs = &virtual_services(&outcome)[0].spec;
    assert_eq!(vs.hosts, ["reviews"]);
    let jason = &vs.http[0];
    assert_eq!(
        jason.r#match[0].headers["end-user"],
        StringMatch::Exact("jason".into())
    );
    assert_eq!(jason.route[0].destination.subset.as_deref(), Some("v2"));
    assert_eq!(vs.http[1].route[0].weight, 0);

    let file = testdata("networking/virtual-service-ratings-test-delay.yaml");
    let outcome = parse_yaml(&file, &std::fs::read_to_string(&file).unwrap());
    let delay = virtual_services(&outcome)[0].spec.http[0]
        .fault
        .as_ref()
        .unwrap();
    let delay = delay.delay.as_ref().unwrap();
    assert_eq!(delay.fixed_delay.as_deref(), Some("7s"));
    assert_eq!(delay.percentage.unwrap().value, 100.0);
}

#[test]
fn syntax_error_reports_its_line() {
    let text = "apiVersion: v1\nkind: Service\nmetadata:\n  name: a\n  labels: [x\n";
    let outcome = parse(text);
    let error = only_error(&outcome);
    assert_eq!(error.field, "");
    assert_eq!((error.line, error.column), (5, 11), "{error}");
    assert!(error.to_string().starts_with("test.yaml:"), "{error}");
}

#[test]
fn a_bad_document_does_not_hide_the_others() {
    let text = "\
apiVersion: v1
kind: Service
metadata: {name: a
---
apiVersion: v1
kind: Service
metadata: {name: b}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: c}
spec: {}
";
    let outcome = parse(text);
    assert_eq!(outcome.resources.len(), 1);
    assert_eq!(outcome.resources[0].meta().name, "b");
    assert_eq!(outcome.errors.len(), 2, "{:#?}", outcome.errors);
    assert_eq!(outcome.errors[1].field, "spec.hosts");
    assert_eq!(outcome.errors[1].line, 12);
}

const REDIRECT_AND_ROUTE: &str = "\
apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts: [reviews]
  http:
  - redirect:
      uri: /v2
    route:
    - destination:
        host: reviews
";

#[test]
fn redirect_and_route_are_exclusive() {
    let outcome = parse(REDIRECT_AND_ROUTE);
    let error = only_error(&outcome);
    assert_eq!(error.field, "spec.http[0]");
    assert_eq!((error.line, error.column), (8, 5));
    assert!(error.message.contains("both route and redirect"), "{error}");
    assert!(outcome.resources.is_empty());
}

#[test]
fn negative_weight_names_the_field_and_line() {
    let text = "\
apiVersion: networking.istio.io/v1alpha3
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, subset: v1}
      weight: 110
    - destination: {host: reviews, subset: v2}
      weight: -10
";
    let outcome = parse(text);
    let weight_error = outcome
        .errors
        .iter()
        .find(|e| e.field == "spec.http[0].route[1].weight")
        .unwrap_or_else(|| panic!("{:#?}", outcome.errors));
    assert_eq!((weight_error.line, weight_error.column), (12, 7));
    assert!(weight_error.message.contains("-10"), "{weight_error}");
    assert!(
        outcome
            .errors
            .iter()
            .any(|e| e.field == "spec.http[0].route[0].weight"),
        "{:#?}",
        outcome.errors
    );
}

#[test]
fn weights_of_several_destinations_must_total_100() {
    let text = "\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, subset: v1}
      weight: 50
    - destination: {host: reviews, subset: v2}
      weight: 40
";
    let error = only_error(&parse(text)).clone();
    assert_eq!(error.field, "spec.http[0].route");
    assert_eq!(error.message, "total destination weight 90 != 100");
}

#[test]
fn unknown_kubernetes_fields_are_ignored() {
    let text = "\
apiVersion: v1
kind: Service
metadata:
  name: web
  uid: 1234
  creationTimestamp: null
spec:
  sessionAffinity: None
  ports:
  - port: 80
    targetPort: http
    nodePort: 30080
status:
  loadBalancer: {}
";
    let outcome = parse(text);
    assert!(outcome.errors.is_empty(), "{:#?}", outcome.errors);
    let AnyResource::Service(service) = &outcome.resources[0] else {
        panic!("not a service");
    };
    let target = service.spec.ports[0].target_port.clone();
    assert_eq!(target, Some(IntOrString::String("http".into())));
}

#[test]
fn unknown_kinds_are_warnings() {
    let text = "\
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web}
spec: {}
---
apiVersion: extensions.istio.io/v1alpha1
kind: WasmPlugin
metadata: {name: filter}
";
    let outcome = parse(text);
    assert!(outcome.errors.is_empty());
    assert!(outcome.resources.is_empty());
    assert_eq!(outcome.warnings.len(), 2);
    assert_eq!(outcome.warnings[1].line, 6);
    assert!(outcome.warnings[0].message.contains("Ingress"));
    assert!(outcome.warnings[1].message.contains("WasmPlugin"));
}

#[test]
fn wrong_types_report_the_field() {
    let text = "\
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  ports:
  - port: eighty
";
    let error = only_error(&parse(text)).clone();
    assert_eq!(error.field, "spec.ports[0].port");
    assert_eq!(error.line, 6);
    assert!(error.message.contains("eighty"), "{error}");
}

#[test]
fn missing_type_fields_and_names_are_errors() {
    let outcome = parse("metadata: {name: x}\n");
    let fields: Vec<_> = outcome.errors.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(fields, ["apiVersion", "kind"]);

    let outcome = parse("apiVersion: v1\nkind: ServiceAccount\nmetadata: {}\n");
    assert_eq!(only_error(&outcome).field, "metadata.name");

    let outcome = parse("- a\n- b\n");
    assert!(only_error(&outcome).message.contains("mapping"));
}

#[test]
fn string_matches_accept_the_oneof_and_empty_for_presence() {
    let text = "\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web}
spec:
  hosts: [web]
  http:
  - match:
    - uri: {prefix: /api}
      headers:
        x-canary: {}
        x-user: {regex: \"^u[0-9]+$\"}
    route:
    - destination: {host: web}
";
    let outcome = parse(text);
    assert!(outcome.errors.is_empty(), "{:#?}", outcome.errors);
    let request = &virtual_services(&outcome)[0].spec.http[0].r#match[0];
    assert_eq!(request.uri, Some(StringMatch::Prefix("/api".into())));
    assert_eq!(request.headers["x-canary"], StringMatch::Present);
    assert_eq!(
        request.headers["x-user"],
        StringMatch::Regex("^u[0-9]+$".into())
    );

    let both = text.replace("{prefix: /api}", "{prefix: /api, exact: /api}");
    let error = only_error(&parse(&both)).clone();
    assert_eq!(error.field, "spec.http[0].match[0].uri");
    assert_eq!(error.line, 8);
}

#[test]
fn invalid_regex_and_duration_are_errors() {
    let text = "\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web}
spec:
  hosts: [web]
  http:
  - match:
    - uri: {regex: \"(unclosed\"}
    timeout: 10 seconds
    retries: {attempts: 2, perTryTimeout: 1.5s}
    route:
    - destination: {host: web}
";
    let outcome = parse(text);
    let fields: Vec<_> = outcome
        .errors
        .iter()
        .map(|e| (e.field.as_str(), e.line))
        .collect();
    assert_eq!(
        fields,
        [
            ("spec.http[0].match[0].uri", 8),
            ("spec.http[0].timeout", 9)
        ]
    );
}

#[test]
fn destination_rule_subsets_must_be_named_uniquely() {
    let text = "\
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  trafficPolicy:
    tls: {mode: ISTIO_MUTUAL}
  subsets:
  - name: v1
    labels: {version: v1}
  - name: v1
    labels: {version: v2}
  - labels: {version: v3}
";
    let outcome = parse(text);
    let fields: Vec<_> = outcome
        .errors
        .iter()
        .map(|e| (e.field.as_str(), e.line))
        .collect();
    assert_eq!(
        fields,
        [("spec.subsets[1].name", 11), ("spec.subsets[2].name", 13)]
    );
    assert_eq!(outcome.errors[0].message, "duplicate subset names: v1");
}

#[test]
fn duplicate_resources_in_one_text_are_errors() {
    let text = "\
apiVersion: v1
kind: ServiceAccount
metadata: {name: sa}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: sa, namespace: default}
";
    let outcome = parse(text);
    assert_eq!(outcome.resources.len(), 1);
    let error = only_error(&outcome);
    assert_eq!(error.line, 7);
    assert!(
        error
            .message
            .contains("ServiceAccount/default/sa is already defined at line 1")
    );
}

#[test]
fn namespaces_carry_their_labels() {
    let text = "\
apiVersion: v1
kind: Namespace
metadata:
  name: bookinfo
  labels: {istio-injection: enabled}
";
    let outcome = parse(text);
    let AnyResource::Namespace(namespace) = &outcome.resources[0] else {
        panic!("{outcome:?}");
    };
    assert_eq!(namespace.spec.labels["istio-injection"], "enabled");
    assert_eq!(namespace.key().to_string(), "Namespace/bookinfo");
}

#[test]
fn workload_entries_are_read_and_checked() {
    let text = "\
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-v1-vm, namespace: bookinfo}
spec:
  address: 127.0.0.10
  ports: {http: 9080}
  labels: {app: reviews, version: v1}
  serviceAccount: bookinfo-reviews
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: broken}
spec:
  ports: {http: 70000}
";
    let outcome = parse(text);
    let AnyResource::WorkloadEntry(entry) = &outcome.resources[0] else {
        panic!("{outcome:?}");
    };
    assert_eq!(entry.spec.ports["http"], 9080);
    assert_eq!(
        entry.key().to_string(),
        "WorkloadEntry/bookinfo/reviews-v1-vm"
    );
    let fields: Vec<_> = outcome.errors.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(fields, ["spec.address", "spec.ports.http"]);
}

#[test]
fn garbage_never_panics() {
    let inputs = [
        "",
        "---",
        "...",
        "~",
        "[",
        "{",
        "a: *b",
        "&a [*a]",
        "? [a]\n: b",
        "- - - -",
        "apiVersion: v1\nkind: Service\nspec: [1]",
        "kind: {a: b}\napiVersion: [x]",
        "apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec:\n  ports: [{port: -1}]",
        "\u{feff}apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: a}\n",
        "%YAML 1.2\n---\na: !!binary aGVsbG8=\n",
        "apiVersion: v1\napiVersion: v1\nkind: Service\n",
    ];
    for input in inputs {
        let _ = parse(input);
    }
    let outcome = parse("\u{feff}apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: a}\n");
    assert_eq!(outcome.resources.len(), 1, "{outcome:?}");
}

#[test]
fn route_policies_are_checked_field_by_field() {
    let text = "\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web}
spec:
  hosts: [web]
  http:
  - directResponse: {status: 200}
    route:
    - destination: {host: web}
  - redirect: {uri: /new, redirectCode: 200}
  - route:
    - destination: {host: web, port: {number: 0}}
    retries: {attempts: -1, perTryTimeout: 0s}
    fault:
      abort: {httpStatus: 700, percentage: {value: 120}}
";
    let outcome = parse(text);
    let fields: Vec<_> = outcome
        .errors
        .iter()
        .map(|e| (e.field.as_str(), e.line))
        .collect();
    assert_eq!(
        fields,
        [
            ("spec.http[0]", 7),
            ("spec.http[1].redirect.redirectCode", 10),
            ("spec.http[2].route[0].destination.port.number", 12),
            ("spec.http[2].retries.attempts", 13),
            ("spec.http[2].retries.perTryTimeout", 13),
            ("spec.http[2].fault.abort.httpStatus", 15),
            ("spec.http[2].fault.abort.percentage.value", 15),
        ]
    );
    assert_eq!(
        outcome.errors[0].message,
        "HTTP route cannot contain both route and direct_response"
    );
}

#[test]
fn every_prefix_of_a_real_file_parses_without_panicking() {
    let file = testdata("platform/bookinfo.yaml");
    let text = std::fs::read_to_string(&file).unwrap();
    let boundaries = (0..text.len())
        .step_by(7)
        .filter(|i| text.is_char_boundary(*i));
    for end in boundaries {
        let outcome = parse_yaml(&file, &text[..end]);
        assert!(outcome.resources.len() <= 14);
    }
}
