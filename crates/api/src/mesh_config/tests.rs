//! Mesh configs: read with Istio's defaults, validated as istiod does, and
//! located precisely, from a file, text, or the `istio` ConfigMap.

use std::path::Path;

use super::*;
use crate::{AnyResource, ConfigError, parse_yaml};

const FULL: &str = r#"trustDomain: example.org
trustDomainAliases: [old.example.org]
rootNamespace: istio-system
outboundTrafficPolicy: {mode: REGISTRY_ONLY}
enableAutoMtls: false
pathNormalization: {normalization: DECODE_AND_MERGE_SLASHES}
accessLogFile: /dev/stdout
accessLogEncoding: JSON
accessLogFormat: '{"code": "%RESPONSE_CODE%"}'
defaultConfig:
  concurrency: 2
  holdApplicationUntilProxyStarts: true
  discoveryAddress: istiod.istio-system.svc:15012
  drainDuration: 45s
  terminationDrainDuration: 5s
  proxyMetadata: {ISTIO_META_DNS_CAPTURE: "true"}
defaultProviders: {accessLogging: [envoy], tracing: [otel]}
extensionProviders:
- name: ext-authz-http
  envoyExtAuthzHttp:
    service: ext-authz.foo.svc.cluster.local
    port: 8000
    timeout: 1s
    pathPrefix: /check
    statusOnError: "503"
    includeRequestHeadersInCheck: [x-ext-authz]
    includeRequestBodyInCheck: {maxRequestBytes: 1024, allowPartialMessage: true}
- name: ext-authz-grpc
  envoyExtAuthzGrpc: {service: ext-authz.foo.svc.cluster.local, port: 9000, failOpen: true}
- name: zipkin
  zipkin: {service: zipkin.istio-system.svc.cluster.local, port: 9411, maxTagLength: 256}
- name: otel
  opentelemetry:
    service: otel.observability.svc.cluster.local
    port: 4318
    http: {path: /v1/traces, timeout: 5s, headers: [{name: x-token, value: t}]}
- name: prometheus
  prometheus: {}
- name: envoy
  envoyFileAccessLog: {path: /dev/stdout, logFormat: {text: "%START_TIME%\n"}}
"#;

fn parse(text: &str) -> Result<MeshConfigOutcome, MeshConfigError> {
    MeshConfig::parse(Path::new("mesh.yaml"), text)
}

#[test]
fn a_full_mesh_config_reads_into_typed_settings_without_warnings() {
    let outcome = parse(FULL).expect("valid");
    assert!(outcome.warnings.is_empty(), "{:#?}", outcome.warnings);
    let config = outcome.config;
    assert_eq!(config.trust_domain(), "example.org");
    assert_eq!(config.trust_domain_aliases, ["old.example.org"]);
    assert_eq!(
        config.outbound_traffic_mode(),
        OutboundTrafficMode::RegistryOnly
    );
    assert!(!config.auto_mtls());
    assert_eq!(
        config.path_normalization(),
        PathNormalizationMode::DecodeAndMergeSlashes
    );
    assert_eq!(
        MeshConfig::default().path_normalization(),
        PathNormalizationMode::Base
    );
    assert_eq!(config.access_log_encoding, Some(AccessLogEncoding::Json));
    assert_eq!(config.default_config.concurrency, Some(2));
    assert_eq!(
        config.default_config.hold_application_until_proxy_starts,
        Some(true)
    );
    assert_eq!(
        config.default_config.proxy_metadata["ISTIO_META_DNS_CAPTURE"],
        "true"
    );
    let http = config
        .extension_provider("ext-authz-http")
        .and_then(|p| p.envoy_ext_authz_http.as_ref());
    assert_eq!(
        http.map(|h| (h.port, h.path_prefix.as_deref())),
        Some((8000, Some("/check")))
    );
    let otel = config
        .extension_provider("otel")
        .and_then(|p| p.opentelemetry.as_ref());
    assert_eq!(
        otel.and_then(|o| o.http.as_ref()).map(|h| h.path.as_str()),
        Some("/v1/traces")
    );
    let kinds: Vec<Vec<&str>> = config
        .extension_providers
        .iter()
        .map(|p| p.kinds())
        .collect();
    assert_eq!(kinds[4], ["prometheus"]);
}

#[test]
fn an_empty_mesh_config_is_istios_defaults() {
    for text in ["", "# nothing\n", "{}"] {
        let config = parse(text).expect("valid").config;
        assert_eq!(config.trust_domain(), DEFAULT_TRUST_DOMAIN);
        assert_eq!(config.root_namespace(), DEFAULT_ROOT_NAMESPACE);
        assert_eq!(
            config.outbound_traffic_mode(),
            OutboundTrafficMode::AllowAny
        );
        assert!(config.auto_mtls());
    }
}

/// A text and the (field, line, message) of each error expected.
type Case<'a> = (&'a str, &'a [(&'a str, usize, &'a str)]);

/// (field, line, message) of each error of an invalid mesh config.
fn errors(text: &str) -> Vec<(String, usize, String)> {
    match parse(text) {
        Ok(outcome) => panic!("accepted: {outcome:?}"),
        Err(MeshConfigError::Invalid { errors, .. }) => errors
            .into_iter()
            .map(|e| (e.field, e.line, e.message))
            .collect(),
        Err(other) => panic!("{other}"),
    }
}

#[test]
fn what_istiod_refuses_is_an_error_at_its_field() {
    let cases: [Case<'_>; 13] = [
        (
            "trustDomain: ''\n",
            &[("trustDomain", 1, "empty domain name not allowed")],
        ),
        (
            "trustDomainAliases: [ok.org, Bad.Org]\n",
            &[(
                "trustDomainAliases[1]",
                1,
                "trust domain \"Bad.Org\" is invalid: use lowercase letters, digits, '.', '-' and '_'",
            )],
        ),
        (
            "rootNamespace: istio_system\n",
            &[(
                "rootNamespace",
                1,
                "root namespace \"istio_system\" is not a valid DNS-1123 label",
            )],
        ),
        (
            "defaultConfig:\n  concurrency: -1\n  drainDuration: 1us\n  discoveryAddress: istiod\n",
            &[
                (
                    "defaultConfig.concurrency",
                    2,
                    "concurrency must be greater than or equal to 0",
                ),
                (
                    "defaultConfig.drainDuration",
                    3,
                    "duration must be greater than 1ms",
                ),
                (
                    "defaultConfig.discoveryAddress",
                    4,
                    "invalid discovery address \"istiod\": expected host:port",
                ),
            ],
        ),
        (
            "connectTimeout: soon\n",
            &[(
                "connectTimeout",
                1,
                "invalid duration \"soon\": unknown unit (use ns, us, ms, s, m or h)",
            )],
        ),
        (
            "outboundTrafficPolicy: {mode: SOMETIMES}\n",
            &[(
                "outboundTrafficPolicy.mode",
                1,
                "unknown variant `SOMETIMES`, expected `REGISTRY_ONLY` or `ALLOW_ANY`",
            )],
        ),
        (
            "pathNormalization: {normalization: MERGE}\n",
            &[(
                "pathNormalization.normalization",
                1,
                "unknown variant `MERGE`, expected one of `DEFAULT`, `NONE`, `BASE`, `MERGE_SLASHES`, `DECODE_AND_MERGE_SLASHES`",
            )],
        ),
        (
            "accessLogEncoding: XML\n",
            &[(
                "accessLogEncoding",
                1,
                "unknown variant `XML`, expected `TEXT` or `JSON`",
            )],
        ),
        (
            "extensionProviders:\n- name: a\n  prometheus: {}\n- name: a\n  prometheus: {}\n",
            &[(
                "extensionProviders[1].name",
                4,
                "duplicate extension provider name \"a\"",
            )],
        ),
        (
            "extensionProviders:\n- prometheus: {}\n  zipkin: {service: z, port: 9411}\n",
            &[
                (
                    "extensionProviders[0].name",
                    2,
                    "empty extension provider name",
                ),
                (
                    "extensionProviders[0]",
                    2,
                    "extension provider \"\" must set exactly one provider kind, found 2",
                ),
            ],
        ),
        (
            "extensionProviders:\n- name: authz\n  envoyExtAuthzHttp: {port: 0, statusOnError: teapot, pathPrefix: check, timeout: 0s}\n",
            &[
                (
                    "extensionProviders[0].envoyExtAuthzHttp.service",
                    3,
                    "service must be set",
                ),
                (
                    "extensionProviders[0].envoyExtAuthzHttp.port",
                    3,
                    "port number 0 must be in the range 1..65535",
                ),
                (
                    "extensionProviders[0].envoyExtAuthzHttp.timeout",
                    3,
                    "duration must be greater than 1ms",
                ),
                (
                    "extensionProviders[0].envoyExtAuthzHttp.statusOnError",
                    3,
                    "invalid statusOnError value \"teapot\": expected an HTTP status code",
                ),
                (
                    "extensionProviders[0].envoyExtAuthzHttp.pathPrefix",
                    3,
                    "pathPrefix \"check\" must begin with /",
                ),
            ],
        ),
        (
            "extensionProviders:\n- name: log\n  envoyFileAccessLog: {path: /dev/stdout, logFormat: {}}\n",
            &[(
                "extensionProviders[0].envoyFileAccessLog.logFormat",
                3,
                "exactly one of text or labels must be set",
            )],
        ),
        ("[a, b]\n", &[("", 1, "a mesh config must be a mapping")]),
    ];
    for (text, expected) in cases {
        let expected: Vec<(String, usize, String)> = expected
            .iter()
            .map(|(f, l, m)| (f.to_string(), *l, m.to_string()))
            .collect();
        assert_eq!(errors(text), expected, "{text}");
    }
}

#[test]
fn unknown_mesh_fields_are_warnings_naming_them() {
    let outcome =
        parse("trustDomian: example.org\ndefaultConfig:\n  concurrence: 2\n").expect("valid");
    let warnings: Vec<String> = outcome.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(
        warnings,
        [
            "mesh.yaml:1:1: trustDomian: unknown field \"trustDomian\"",
            "mesh.yaml:3:3: defaultConfig.concurrence: unknown field \"concurrence\"",
        ]
    );
}

#[test]
fn broken_texts_and_missing_files_are_errors() {
    assert_eq!(
        errors("a: b\n---\nc: d\n")[0].2,
        "a mesh config is a single YAML document"
    );
    assert_eq!(errors("trustDomain: [\n").len(), 1);
    let missing = MeshConfig::from_file(Path::new("/nonexistent/mesh.yaml"));
    assert!(
        matches!(missing, Err(MeshConfigError::Read { .. })),
        "{missing:?}"
    );
}

const ISTIO_CONFIG_MAP: &str = "\
apiVersion: v1
kind: ConfigMap
metadata:
  name: istio
  namespace: istio-system
data:
  mesh: |-
    accessLogFile: /dev/stdout
    defaultConfig:
      concurrency: -2
    rootNamespce: istio-system
  meshNetworks: 'networks: {}'
";

#[test]
fn the_istio_config_map_is_validated_in_place() {
    let outcome = parse_yaml(Path::new("istio.yaml"), ISTIO_CONFIG_MAP);
    let show =
        |found: &[ConfigError]| -> Vec<String> { found.iter().map(ToString::to_string).collect() };
    assert_eq!(
        show(&outcome.errors),
        [
            "istio.yaml:10:7: data.mesh: defaultConfig.concurrency: concurrency must be greater than or equal to 0"
        ]
    );
    assert_eq!(
        show(&outcome.warnings),
        ["istio.yaml:11:5: data.mesh: rootNamespce: unknown field \"rootNamespce\""]
    );
    let other = ISTIO_CONFIG_MAP.replace("name: istio\n", "name: unrelated\n");
    let outcome = parse_yaml(Path::new("other.yaml"), &other);
    assert!(
        outcome.errors.is_empty() && outcome.warnings.is_empty(),
        "{outcome:?}"
    );
}

#[test]
fn from_config_map_reads_the_mesh_key() {
    let text = ISTIO_CONFIG_MAP
        .replace("concurrency: -2", "concurrency: 2")
        .replace("rootNamespce", "rootNamespace");
    let outcome = parse_yaml(Path::new("istio.yaml"), &text);
    let [AnyResource::ConfigMap(config_map)] = outcome.resources.as_slice() else {
        panic!("{outcome:?}");
    };
    let mesh = MeshConfig::from_config_map(config_map).expect("valid");
    assert_eq!(mesh.config.access_log_file, "/dev/stdout");
    assert_eq!(mesh.config.default_config.concurrency, Some(2));
    let mut without_key = config_map.clone();
    without_key.spec.data.clear();
    let error = MeshConfig::from_config_map(&without_key).unwrap_err();
    assert_eq!(
        error.to_string(),
        "ConfigMap istio-system/istio has no \"mesh\" key"
    );
}
