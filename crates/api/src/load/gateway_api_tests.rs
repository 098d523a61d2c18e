//! Table-driven checks of the Gateway API kinds: accepted specs, and
//! rejected ones with the field, line and the schema's message.

use std::path::Path;

use super::parse_yaml;
use crate::AnyResource;

const VERSIONS: [&str; 2] = [
    "gateway.networking.k8s.io/v1",
    "gateway.networking.k8s.io/v1beta1",
];

/// (field, line, message) of every error for one resource whose spec is
/// `spec` (indented YAML under `spec:`, from line 5).
fn problems(api_version: &str, kind: &str, spec: &str) -> Vec<(String, usize, String)> {
    let text =
        format!("apiVersion: {api_version}\nkind: {kind}\nmetadata: {{name: test}}\nspec:\n{spec}");
    let outcome = parse_yaml(Path::new("test.yaml"), &text);
    assert!(outcome.warnings.is_empty(), "{:?}", outcome.warnings);
    outcome
        .errors
        .into_iter()
        .map(|e| (e.field, e.line, e.message))
        .collect()
}

type Case<'a> = (&'a str, &'a [(&'a str, usize, &'a str)]);

fn check(kind: &str, cases: &[Case<'_>]) {
    for (spec, expected) in cases {
        let expected: Vec<(String, usize, String)> = expected
            .iter()
            .map(|(f, l, m)| (f.to_string(), *l, m.to_string()))
            .collect();
        for version in VERSIONS {
            assert_eq!(
                problems(version, kind, spec),
                expected,
                "{kind} {version}:\n{spec}"
            );
        }
    }
}

#[test]
fn gateway_classes() {
    check(
        "GatewayClass",
        &[
            ("  controllerName: istio.io/gateway-controller\n", &[]),
            (
                "  controllerName: trellis\n",
                &[(
                    "spec.controllerName",
                    5,
                    "controllerName \"trellis\" must be a domain-prefixed path, e.g. example.com/gateway-controller",
                )],
            ),
        ],
    );
}

const LISTENER: &str =
    "  gatewayClassName: istio\n  listeners:\n  - name: http\n    port: 80\n    protocol: HTTP\n";

#[test]
fn gateways() {
    let https = "  gatewayClassName: istio\n  listeners:\n  - name: https\n    hostname: '*.example.com'\n    port: 443\n    protocol: HTTPS\n    tls: {mode: Terminate, certificateRefs: [{name: cert}]}\n    allowedRoutes: {namespaces: {from: Selector, selector: {matchLabels: {shared: 'true'}}}, kinds: [{kind: HTTPRoute}]}\n  addresses: [{value: 10.0.0.1}, {type: Hostname, value: gw.example.com}]\n";
    let twice = format!("{LISTENER}  - name: http\n    port: 80\n    protocol: HTTP\n");
    check(
        "Gateway",
        &[
            (LISTENER, &[]),
            (https, &[]),
            (
                "  gatewayClassName: istio\n  listeners:\n  - {name: tls, port: 443, protocol: TLS, tls: {mode: Passthrough}}\n  - {name: tcp, port: 9000, protocol: TCP}\n  - {name: custom, port: 9001, protocol: example.com/quic}\n",
                &[],
            ),
            (
                "  listeners: []\n",
                &[
                    ("spec.gatewayClassName", 4, "gatewayClassName is required"),
                    ("spec.listeners", 5, "at least one listener is required"),
                ],
            ),
            (
                &twice,
                &[
                    (
                        "spec.listeners[1]",
                        10,
                        "Listener name must be unique within the Gateway",
                    ),
                    (
                        "spec.listeners[1]",
                        10,
                        "Combination of port, protocol and hostname must be unique for each listener",
                    ),
                ],
            ),
            (
                "  gatewayClassName: istio\n  listeners:\n  - {name: Web, port: 0, protocol: SCTP}\n",
                &[
                    (
                        "spec.listeners[0].name",
                        7,
                        "listener name \"Web\" must be a lowercase RFC 1123 subdomain",
                    ),
                    (
                        "spec.listeners[0].port",
                        7,
                        "port number 0 must be in the range 1..65535",
                    ),
                    (
                        "spec.listeners[0].protocol",
                        7,
                        "protocol \"SCTP\" must be HTTP, HTTPS, TLS, TCP, UDP or a domain-prefixed name",
                    ),
                ],
            ),
            (
                "  gatewayClassName: istio\n  listeners:\n  - {name: a, port: 80, protocol: HTTP, tls: {certificateRefs: [{name: c}]}}\n  - {name: b, port: 443, protocol: HTTPS}\n  - {name: c, port: 9000, protocol: TCP, hostname: a.com}\n",
                &[
                    (
                        "spec.listeners[0].tls",
                        7,
                        "tls must not be specified for protocols ['HTTP', 'TCP', 'UDP']",
                    ),
                    (
                        "spec.listeners[1].tls",
                        8,
                        "tls mode must be set for protocols ['HTTPS', 'TLS']",
                    ),
                    (
                        "spec.listeners[2].hostname",
                        9,
                        "hostname must not be specified for protocols ['TCP', 'UDP']",
                    ),
                ],
            ),
            (
                "  gatewayClassName: istio\n  listeners:\n  - {name: a, port: 443, protocol: HTTPS, tls: {}}\n  - {name: b, port: 8443, protocol: HTTPS, tls: {mode: Passthrough}}\n",
                &[
                    (
                        "spec.listeners[0].tls",
                        7,
                        "certificateRefs or options must be specified when mode is Terminate",
                    ),
                    (
                        "spec.listeners[1].tls.mode",
                        8,
                        "Passthrough is not supported for the HTTPS protocol: use TLS",
                    ),
                ],
            ),
            (
                "  gatewayClassName: istio\n  listeners:\n  - {name: a, port: 80, protocol: HTTP, hostname: 10.0.0.1}\n  - {name: b, port: 81, protocol: HTTP, hostname: 'a.*.com'}\n  - {name: c, port: 82, protocol: HTTP, allowedRoutes: {namespaces: {from: Selector}}}\n  addresses: [{value: gw.example.com}]\n",
                &[
                    (
                        "spec.listeners[0].hostname",
                        7,
                        "hostname \"10.0.0.1\" must not be an IP address",
                    ),
                    (
                        "spec.listeners[1].hostname",
                        8,
                        "hostname \"a.*.com\" must be a lowercase DNS name, optionally prefixed by a \"*.\" wildcard label",
                    ),
                    (
                        "spec.listeners[2].allowedRoutes.namespaces.selector",
                        9,
                        "selector must be specified when from is Selector",
                    ),
                    (
                        "spec.addresses[0].value",
                        10,
                        "\"gw.example.com\" is not an IP address",
                    ),
                ],
            ),
        ],
    );
}

#[test]
fn gateway_api_and_istio_gateways_of_one_name_do_not_conflict() {
    let text = format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {{name: gw}}\nspec:\n{LISTENER}---\napiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {{name: gw}}\nspec:\n  servers: [{{port: {{number: 80, name: http, protocol: HTTP}}, hosts: ['*']}}]\n"
    );
    let outcome = parse_yaml(Path::new("gw.yaml"), &text);
    assert!(outcome.errors.is_empty(), "{:#?}", outcome.errors);
    let keys: Vec<String> = outcome
        .resources
        .iter()
        .map(|r| r.key().to_string())
        .collect();
    assert_eq!(
        keys,
        [
            "Gateway.gateway.networking.k8s.io/default/gw",
            "Gateway/default/gw"
        ]
    );
    assert!(matches!(
        outcome.resources.as_slice(),
        [AnyResource::KubernetesGateway(_), AnyResource::Gateway(_)]
    ));
}

const PARENT: &str = "  parentRefs: [{name: gw, sectionName: http}]\n";

#[test]
fn http_routes() {
    let route =
        |rules: &str| format!("{PARENT}  hostnames: [bookinfo.example.com]\n  rules:\n{rules}");
    let full = route(
        "  - matches:\n    - path: {type: PathPrefix, value: /api}\n      headers: [{name: x-user, value: admin}, {type: RegularExpression, name: x-id, value: '^[0-9]+$'}]\n      queryParams: [{name: debug, value: '1'}]\n      method: GET\n    filters:\n    - type: RequestHeaderModifier\n      requestHeaderModifier: {set: [{name: x-a, value: b}], remove: [x-b]}\n    - type: URLRewrite\n      urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /v2}}\n    - type: RequestMirror\n      requestMirror: {backendRef: {name: shadow, port: 80}, percent: 10}\n    backendRefs:\n    - {name: reviews, port: 9080, weight: 90}\n    - {name: reviews-v2, port: 9080, weight: 10}\n    timeouts: {request: 10s, backendRequest: 2s}\n",
    );
    let redirect = route(
        "  - filters:\n    - type: RequestRedirect\n      requestRedirect: {scheme: https, statusCode: 301, port: 443}\n",
    );
    let bad_paths = route(
        "  - matches:\n    - path: {value: api}\n    - path: {type: Exact, value: /a//b}\n    - path: {type: RegularExpression, value: '('}\n    - method: FETCH\n",
    );
    let bad_filters = route(
        "  - filters:\n    - type: RequestRedirect\n      urlRewrite: {}\n    - requestHeaderModifier: {}\n    - type: URLRewrite\n      urlRewrite: {path: {type: ReplaceFullPath}}\n    backendRefs: [{name: a, port: 80}]\n",
    );
    let bad_backends = route(
        "  - backendRefs:\n    - {name: a}\n    - {name: b, port: 80, weight: -1}\n    - {name: c, kind: Bucket, group: storage.example.com}\n    timeouts: {request: 1s, backendRequest: 5s}\n",
    );
    let bad_headers = route(
        "  - matches:\n    - headers: [{name: x-a, value: '1'}, {name: X-A, value: '2'}, {name: 'bad name', value: x}]\n    filters:\n    - type: ResponseHeaderModifier\n      responseHeaderModifier: {add: [{name: x, value: a}, {name: x, value: b}]}\n    - type: ResponseHeaderModifier\n      responseHeaderModifier: {remove: ['a b']}\n",
    );
    let prefix_rewrite = route(
        "  - matches:\n    - path: {type: Exact, value: /a}\n    filters:\n    - type: URLRewrite\n      urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /b}}\n",
    );
    check(
        "HTTPRoute",
        &[
            (&full, &[]),
            (&redirect, &[]),
            (
                "  parentRefs: [{namespace: Infra, port: 0}]\n  hostnames: ['*.example.com', 10.0.0.1]\n",
                &[
                    ("spec.parentRefs[0].name", 5, "name is required"),
                    (
                        "spec.parentRefs[0].namespace",
                        5,
                        "namespace \"Infra\" is not a valid DNS-1123 label",
                    ),
                    (
                        "spec.parentRefs[0].port",
                        5,
                        "port number 0 must be in the range 1..65535",
                    ),
                    (
                        "spec.hostnames[1]",
                        6,
                        "hostname \"10.0.0.1\" must not be an IP address",
                    ),
                ],
            ),
            (
                &bad_paths,
                &[
                    (
                        "spec.rules[0].matches[0].path.value",
                        9,
                        "value must be an absolute path and start with '/' when type one of ['Exact', 'PathPrefix']",
                    ),
                    (
                        "spec.rules[0].matches[1].path.value",
                        10,
                        "must not contain '//' when type one of ['Exact', 'PathPrefix']",
                    ),
                    (
                        "spec.rules[0].matches[2].path.value",
                        11,
                        "\"(\" is not a valid regex: regex parse error:\n    (\n    ^\nerror: unclosed group",
                    ),
                    (
                        "spec.rules[0].matches[3].method",
                        12,
                        "unsupported method \"FETCH\"",
                    ),
                ],
            ),
            (
                &bad_filters,
                &[
                    (
                        "spec.rules[0].filters[0]",
                        9,
                        "filter.requestRedirect must be specified for RequestRedirect filter.type",
                    ),
                    (
                        "spec.rules[0].filters[0]",
                        9,
                        "filter.urlRewrite must be nil if the filter.type is not URLRewrite",
                    ),
                    ("spec.rules[0].filters[1].type", 11, "type is required"),
                    (
                        "spec.rules[0].filters[2].urlRewrite.path",
                        13,
                        "replaceFullPath must be specified when type is set to 'ReplaceFullPath'",
                    ),
                    (
                        "spec.rules[0].filters",
                        8,
                        "May specify either httpRouteFilterRequestRedirect or httpRouteFilterRequestRewrite, but not both",
                    ),
                    (
                        "spec.rules[0].backendRefs",
                        14,
                        "RequestRedirect filter must not be used together with backendRefs",
                    ),
                ],
            ),
            (
                &bad_backends,
                &[
                    (
                        "spec.rules[0].backendRefs[0]",
                        9,
                        "Must have port for Service reference",
                    ),
                    (
                        "spec.rules[0].backendRefs[1].weight",
                        10,
                        "weight -1 must be in range 0..1000000",
                    ),
                    (
                        "spec.rules[0].timeouts",
                        12,
                        "backendRequest timeout cannot be longer than request timeout",
                    ),
                ],
            ),
            (
                &bad_headers,
                &[
                    (
                        "spec.rules[0].matches[0].headers[1].name",
                        9,
                        "duplicate name \"X-A\"",
                    ),
                    (
                        "spec.rules[0].matches[0].headers[2].name",
                        9,
                        "invalid name: \"bad name\"",
                    ),
                    (
                        "spec.rules[0].filters[0].responseHeaderModifier.add[1].name",
                        12,
                        "duplicate name \"x\"",
                    ),
                    (
                        "spec.rules[0].filters[1]",
                        13,
                        "ResponseHeaderModifier filter cannot be repeated",
                    ),
                    (
                        "spec.rules[0].filters[1].responseHeaderModifier.remove[0]",
                        14,
                        "invalid name: \"a b\"",
                    ),
                ],
            ),
            (
                &prefix_rewrite,
                &[(
                    "spec.rules[0].filters",
                    10,
                    "When using URLRewrite filter with path.replacePrefixMatch, exactly one PathPrefix match must be specified",
                )],
            ),
            (
                &route(
                    "  - timeouts: {request: 1d}\n    filters:\n    - type: RequestRedirect\n      requestRedirect: {scheme: ftp, statusCode: 200}\n",
                ),
                &[
                    (
                        "spec.rules[0].filters[0].requestRedirect.scheme",
                        11,
                        "scheme \"ftp\" must be http or https",
                    ),
                    (
                        "spec.rules[0].filters[0].requestRedirect.statusCode",
                        11,
                        "statusCode 200 must be one of 301, 302, 303, 307, 308",
                    ),
                    (
                        "spec.rules[0].timeouts.request",
                        8,
                        "invalid duration \"1d\": use up to four parts such as 1h, 30m, 10s or 500ms",
                    ),
                ],
            ),
        ],
    );
}

#[test]
fn grpc_routes() {
    let route = |rules: &str| format!("{PARENT}  rules:\n{rules}");
    let good = route(
        "  - matches:\n    - method: {service: foo.v1.Echo, method: Say}\n      headers: [{name: x-user, value: a}]\n    - method: {type: RegularExpression, service: 'foo\\..*'}\n    backendRefs: [{name: echo, port: 9000}]\n",
    );
    let bad = route(
        "  - matches:\n    - method: {}\n    - method: {service: 'foo/Echo', method: '1say'}\n    filters:\n    - type: URLRewrite\n      urlRewrite: {}\n    backendRefs: [{name: echo}]\n",
    );
    check(
        "GRPCRoute",
        &[
            (&good, &[]),
            (
                &bad,
                &[
                    (
                        "spec.rules[0].matches[0].method",
                        8,
                        "One or both of 'service' or 'method' must be specified",
                    ),
                    (
                        "spec.rules[0].matches[1].method.service",
                        9,
                        "service \"foo/Echo\" must be a dot-separated list of identifiers, e.g. foo.v1.Echo",
                    ),
                    (
                        "spec.rules[0].matches[1].method.method",
                        9,
                        "method \"1say\" must be an identifier",
                    ),
                    (
                        "spec.rules[0].filters[0].type",
                        11,
                        "filter type URLRewrite is not supported by GRPCRoute",
                    ),
                    (
                        "spec.rules[0].backendRefs[0]",
                        13,
                        "Must have port for Service reference",
                    ),
                ],
            ),
        ],
    );
}

#[test]
fn reference_grants() {
    check(
        "ReferenceGrant",
        &[
            (
                "  from: [{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: prod}]\n  to: [{group: '', kind: Service, name: reviews}]\n",
                &[],
            ),
            (
                "  from: []\n",
                &[
                    ("spec.from", 5, "at least one from entry is required"),
                    ("spec.to", 4, "at least one to entry is required"),
                ],
            ),
            (
                "  from: [{group: '', kind: '', namespace: Prod}]\n  to: [{group: ''}]\n",
                &[
                    ("spec.from[0].kind", 5, "kind is required"),
                    (
                        "spec.from[0].namespace",
                        5,
                        "namespace \"Prod\" is not a valid DNS-1123 label",
                    ),
                    ("spec.to[0].kind", 6, "kind is required"),
                ],
            ),
        ],
    );
}
