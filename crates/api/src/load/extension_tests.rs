//! Table-driven checks of WorkloadGroup, ProxyConfig, EnvoyFilter and
//! Telemetry: accepted specs, and rejected ones with the field and message.

use std::path::Path;

use super::parse_yaml;
use crate::AnyResource;

/// (field, line, message) of every error for one resource whose spec is
/// `spec` (indented YAML under `spec:`, from line 5).
fn problems(api_version: &str, kind: &str, spec: &str) -> Vec<(String, usize, String)> {
    let text =
        format!("apiVersion: {api_version}\nkind: {kind}\nmetadata: {{name: test}}\nspec:\n{spec}");
    let outcome = parse_yaml(Path::new("test.yaml"), &text);
    // What the data plane does not apply is warned of (checked in their
    // own tests); any other warning is an unknown field.
    let unknown: Vec<_> = outcome
        .warnings
        .iter()
        .filter(|w| {
            !w.message
                .contains("is not supported by the Trellis data plane")
        })
        .collect();
    assert!(unknown.is_empty(), "{unknown:?}");
    outcome
        .errors
        .into_iter()
        .map(|e| (e.field, e.line, e.message))
        .collect()
}

type Case<'a> = (&'a str, &'a [(&'a str, usize, &'a str)]);

fn check(versions: &[&str], kind: &str, cases: &[Case<'_>]) {
    for (spec, expected) in cases {
        let expected: Vec<(String, usize, String)> = expected
            .iter()
            .map(|(f, l, m)| (f.to_string(), *l, m.to_string()))
            .collect();
        for version in versions {
            assert_eq!(
                problems(version, kind, spec),
                expected,
                "{kind} {version}:\n{spec}"
            );
        }
    }
}

const NETWORKING: [&str; 3] = [
    "networking.istio.io/v1",
    "networking.istio.io/v1beta1",
    "networking.istio.io/v1alpha3",
];

#[test]
fn workload_groups() {
    let template = "  template: {ports: {http: 8080}, serviceAccount: default}\n";
    let probe = |check: &str| format!("{template}  probe:\n    periodSeconds: 4\n    {check}\n");
    let http = probe(
        "httpGet: {path: /ready, port: 3100, scheme: HTTPS, httpHeaders: [{name: X-Probe, value: a}]}",
    );
    let tcp = probe("tcpSocket: {port: 3100}");
    let exec = probe("exec: {command: [cat, /tmp/ready]}");
    let grpc = probe("grpc: {port: 9000, service: health}");
    let none = probe("failureThreshold: 3");
    let two = probe("tcpSocket: {port: 1}\n    exec: {command: [a]}");
    let bad_http = probe("httpGet: {port: 70000, scheme: ftp, httpHeaders: [{name: 'bad name'}]}");
    let empty_exec = probe("exec: {command: []}");
    let negative =
        format!("{template}  probe:\n    timeoutSeconds: -1\n    tcpSocket: {{port: 80}}\n");
    check(
        &NETWORKING,
        "WorkloadGroup",
        &[
            (template, &[]),
            (
                "  metadata: {labels: {app.kubernetes.io/name: reviews, version: '1.3.4'}, annotations: {a: b}}\n  template: {serviceAccount: reviews}\n",
                &[],
            ),
            (&http, &[]),
            (&tcp, &[]),
            (&exec, &[]),
            (&grpc, &[]),
            ("  {}\n", &[("spec.template", 4, "template is required")]),
            (
                "  template: {address: 10.0.0.1}\n",
                &[(
                    "spec.template.address",
                    5,
                    "address must not be set in the workload entry template",
                )],
            ),
            (
                "  template: {ports: {HTTP: 0}}\n",
                &[
                    (
                        "spec.template.ports.HTTP",
                        5,
                        "port name \"HTTP\" is not a valid DNS-1123 label",
                    ),
                    (
                        "spec.template.ports.HTTP",
                        5,
                        "port number 0 must be in the range 1..65535",
                    ),
                ],
            ),
            (
                "  metadata: {labels: {'bad key!': a}}\n  template: {}\n",
                &[(
                    "spec.metadata.labels[\"bad key!\"]",
                    5,
                    "invalid tag key: \"bad key!\"",
                )],
            ),
            (
                &none,
                &[(
                    "spec.probe",
                    6,
                    "must define a health check: httpGet, tcpSocket, exec or grpc",
                )],
            ),
            (
                &two,
                &[(
                    "spec.probe",
                    6,
                    "only one of httpGet, tcpSocket, exec or grpc may be set",
                )],
            ),
            (
                &bad_http,
                &[
                    (
                        "spec.probe.httpGet.port",
                        8,
                        "port number 70000 must be in the range 1..65535",
                    ),
                    (
                        "spec.probe.httpGet.scheme",
                        8,
                        "scheme \"ftp\" must be HTTP or HTTPS",
                    ),
                    (
                        "spec.probe.httpGet.httpHeaders[0].name",
                        8,
                        "invalid header name: \"bad name\"",
                    ),
                ],
            ),
            (
                &empty_exec,
                &[("spec.probe.exec.command", 8, "exec command must be set")],
            ),
            (
                &negative,
                &[(
                    "spec.probe.timeoutSeconds",
                    7,
                    "timeoutSeconds must be non-negative",
                )],
            ),
        ],
    );
}

#[test]
fn proxy_configs() {
    check(
        &["networking.istio.io/v1beta1"],
        "ProxyConfig",
        &[
            ("  concurrency: 0\n  image: {imageType: distroless}\n", &[]),
            (
                "  selector: {matchLabels: {app: ratings}}\n  concurrency: 2\n  environmentVariables: {ISTIO_META_DNS_CAPTURE: 'true'}\n  image: {imageType: debug}\n",
                &[],
            ),
            (
                "  concurrency: -1\n",
                &[("spec.concurrency", 5, "concurrency must be non-negative")],
            ),
            (
                "  image: {imageType: tiny}\n",
                &[(
                    "spec.image.imageType",
                    5,
                    "imageType \"tiny\" must be one of default, debug or distroless",
                )],
            ),
            (
                "  selector: {matchLabels: {app: '*'}}\n",
                &[(
                    "spec.selector.matchLabels.app",
                    5,
                    "wildcard is not supported in selector: \"app=*\"",
                )],
            ),
            (
                "  environmentVariables: {'A=B': x}\n",
                &[(
                    "spec.environmentVariables[\"A=B\"]",
                    5,
                    "invalid environment variable name: \"A=B\"",
                )],
            ),
        ],
    );
    let outcome = parse_yaml(
        Path::new("p.yaml"),
        "apiVersion: networking.istio.io/v1\nkind: ProxyConfig\nmetadata: {name: p}\n",
    );
    assert!(outcome.resources.is_empty());
    assert!(
        outcome.warnings[0]
            .message
            .contains("ProxyConfig (networking.istio.io/v1)")
    );
}

#[test]
fn envoy_filters_are_validated_and_always_warned_about() {
    let patch = |apply_to: &str, patch: &str| {
        format!("  configPatches:\n  - applyTo: {apply_to}\n    patch: {patch}\n")
    };
    let lua = patch(
        "HTTP_FILTER",
        "{operation: INSERT_BEFORE, value: {name: envoy.lua, typed_config: {'@type': type.googleapis.com/x, inlineCode: 'function f() end', n: [1, 2.5, true, null]}}}",
    );
    check(
        &["networking.istio.io/v1alpha3"],
        "EnvoyFilter",
        &[
            (&lua, &[]),
            (
                "  workloadSelector: {labels: {app: reviews}}\n  priority: -1\n",
                &[],
            ),
            (
                "  configPatches:\n  - patch: {operation: MERGE}\n",
                &[(
                    "spec.configPatches[0].applyTo",
                    6,
                    "Envoy filter: missing applyTo",
                )],
            ),
            (
                &patch("SOMETHING", "{operation: MERGE}"),
                &[(
                    "spec.configPatches[0].applyTo",
                    6,
                    "Envoy filter: unknown applyTo \"SOMETHING\"",
                )],
            ),
            (
                "  configPatches:\n  - applyTo: CLUSTER\n",
                &[(
                    "spec.configPatches[0].patch",
                    6,
                    "Envoy filter: missing patch",
                )],
            ),
            (
                &patch("CLUSTER", "{value: {}}"),
                &[(
                    "spec.configPatches[0].patch.operation",
                    7,
                    "Envoy filter: missing patch operation",
                )],
            ),
            (
                &patch("CLUSTER", "{operation: UPSERT}"),
                &[(
                    "spec.configPatches[0].patch.operation",
                    7,
                    "Envoy filter: unknown patch operation \"UPSERT\"",
                )],
            ),
            (
                &patch("CLUSTER", "{operation: REMOVE, value: {a: b}}"),
                &[(
                    "spec.configPatches[0].patch.value",
                    7,
                    "Envoy filter: a REMOVE patch takes no value",
                )],
            ),
        ],
    );
    let text = format!(
        "apiVersion: networking.istio.io/v1alpha3\nkind: EnvoyFilter\nmetadata: {{name: lua, namespace: prod}}\nspec:\n{lua}"
    );
    let outcome = parse_yaml(Path::new("ef.yaml"), &text);
    assert!(matches!(
        outcome.resources.as_slice(),
        [AnyResource::EnvoyFilter(_)]
    ));
    let warnings: Vec<String> = outcome.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(
        warnings,
        [
            "ef.yaml:1:1: EnvoyFilter prod/lua is not supported by the Trellis data plane: its patches are not applied"
        ]
    );
}

const TELEMETRY: [&str; 2] = ["telemetry.istio.io/v1", "telemetry.istio.io/v1alpha1"];

#[test]
fn telemetry_parts_the_data_plane_does_not_apply_are_warned_of() {
    let warning = |spec: &str| {
        let text = format!(
            "apiVersion: telemetry.istio.io/v1\nkind: Telemetry\nmetadata: {{name: t, namespace: prod}}\nspec:\n{spec}"
        );
        let outcome = parse_yaml(Path::new("t.yaml"), &text);
        assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
        outcome
            .warnings
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        warning(
            "  metrics:\n  - overrides:\n    - match: {customMetric: my_metric}\n      disabled: true\n"
        ),
        [
            "t.yaml:1:1: spec.metrics[0].overrides[0].match.customMetric: Telemetry prod/t: a customMetric override is not supported by the Trellis data plane and has no effect"
        ]
    );
    assert_eq!(
        warning("  targetRefs: [{kind: Gateway, group: gateway.networking.k8s.io, name: gw}]\n")
            .len(),
        1
    );
    assert!(warning("  metrics:\n  - overrides:\n    - match: {metric: REQUEST_COUNT}\n      disabled: true\n").is_empty());
}

#[test]
fn telemetries() {
    check(
        &TELEMETRY,
        "Telemetry",
        &[
            ("  {}\n", &[]),
            (
                "  selector: {matchLabels: {app: reviews}}\n  tracing:\n  - providers: [{name: zipkin}]\n    randomSamplingPercentage: 10.5\n    customTags:\n      env: {environment: {name: POD_NAME, defaultValue: x}}\n      fixed: {literal: {value: v}}\n      user: {header: {name: x-user}}\n",
                &[],
            ),
            (
                "  metrics:\n  - providers: [{name: prometheus}]\n    reportingInterval: 15s\n    overrides:\n    - match: {metric: REQUEST_COUNT, mode: CLIENT}\n      tagOverrides:\n        grpc_response_status: {operation: REMOVE}\n        request_host: {value: request.host}\n    - match: {customMetric: my_metric}\n      disabled: true\n",
                &[],
            ),
            (
                "  targetRefs: [{kind: Gateway, group: gateway.networking.k8s.io, name: gw}]\n  accessLogging:\n  - providers: [{name: envoy}]\n    filter: {expression: 'response.code >= 400'}\n",
                &[],
            ),
            (
                "  tracing:\n  - randomSamplingPercentage: 101\n",
                &[(
                    "spec.tracing[0].randomSamplingPercentage",
                    6,
                    "randomSamplingPercentage must be in range [0.0, 100.0]",
                )],
            ),
            (
                "  tracing:\n  - customTags:\n      both: {literal: {value: a}, header: {name: b}}\n      none: {}\n      env: {environment: {}}\n",
                &[
                    (
                        "spec.tracing[0].customTags.both",
                        7,
                        "exactly one of literal, environment or header must be set",
                    ),
                    (
                        "spec.tracing[0].customTags.env.environment.name",
                        9,
                        "environment name must be set",
                    ),
                    (
                        "spec.tracing[0].customTags.none",
                        8,
                        "exactly one of literal, environment or header must be set",
                    ),
                ],
            ),
            (
                "  metrics:\n  - overrides:\n    - match: {metric: REQUEST_COUNTS}\n      tagOverrides:\n        a: {operation: UPSERT}\n        b: {operation: REMOVE, value: x}\n",
                &[
                    (
                        "spec.metrics[0].overrides[0].match.metric",
                        7,
                        "unknown metric \"REQUEST_COUNTS\"",
                    ),
                    (
                        "spec.metrics[0].overrides[0].tagOverrides.a",
                        9,
                        "must specify a value for tag \"a\" to upsert",
                    ),
                    (
                        "spec.metrics[0].overrides[0].tagOverrides.b",
                        10,
                        "cannot specify a value for tag \"b\" to remove",
                    ),
                ],
            ),
            (
                "  metrics:\n  - reportingInterval: 1us\n    overrides:\n    - match: {metric: ALL_METRICS, customMetric: m}\n",
                &[
                    (
                        "spec.metrics[0].reportingInterval",
                        6,
                        "duration must be greater than 1ms",
                    ),
                    (
                        "spec.metrics[0].overrides[0].match",
                        8,
                        "only one of metric or customMetric may be set",
                    ),
                ],
            ),
            (
                "  accessLogging:\n  - providers: [{name: ''}]\n    filter: {expression: ' '}\n",
                &[
                    (
                        "spec.accessLogging[0].providers[0].name",
                        6,
                        "provider name must be set",
                    ),
                    (
                        "spec.accessLogging[0].filter.expression",
                        7,
                        "filter expression must be set",
                    ),
                ],
            ),
            (
                "  selector: {matchLabels: {app: a}}\n  targetRef: {kind: Gateway, name: gw}\n",
                &[(
                    "spec",
                    4,
                    "only one of targetRefs or workloadSelector can be set",
                )],
            ),
        ],
    );
}
