use prometheus_client::registry::Registry;

use super::*;

const SERVICE: &str = "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: default}\nspec:\n  ports: [{name: http, port: PORT}]\n";
const VIRTUAL_SERVICE: &str = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: web, namespace: default}\nspec:\n  hosts: [web]\n  http:\n  - route:\n    - destination: {host: web}\n      weight: WEIGHT\n";

fn service(port: &str) -> String {
    SERVICE.replace("PORT", port)
}

fn virtual_service(weight: &str) -> String {
    VIRTUAL_SERVICE.replace("WEIGHT", weight)
}

/// The value of each `galley_validation_*` series, `name{labels} value`.
fn series(metrics: &ValidationMetrics) -> Vec<String> {
    let mut registry = Registry::default();
    metrics.register(&mut registry);
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    let mut lines: Vec<String> = text
        .lines()
        .filter(|line| line.starts_with("galley_"))
        .map(str::to_string)
        .collect();
    lines.sort();
    lines
}

const SERVICE_PASSED: &str =
    "galley_validation_passed{group=\"\",version=\"v1\",resource=\"services\"}";
const VS_PASSED: &str = "galley_validation_passed{group=\"networking.istio.io\",version=\"v1\",resource=\"virtualservices\"}";
const VS_INVALID: &str = "galley_validation_failed{group=\"networking.istio.io\",version=\"v1\",resource=\"virtualservices\",reason=\"invalid_resource\"}";

#[test]
fn kinds_take_their_kubernetes_plural() {
    for (kind, resource) in [
        ("VirtualService", "virtualservices"),
        ("ServiceEntry", "serviceentries"),
        ("AuthorizationPolicy", "authorizationpolicies"),
        ("Gateway", "gateways"),
        ("GatewayClass", "gatewayclasses"),
        ("Telemetry", "telemetries"),
        ("HTTPRoute", "httproutes"),
        ("Namespace", "namespaces"),
    ] {
        assert_eq!(plural(kind), resource, "{kind}");
    }
    assert_eq!(
        ResourceType::of("security.istio.io/v1beta1", "PeerAuthentication"),
        ResourceType {
            group: "security.istio.io".into(),
            version: "v1beta1".into(),
            resource: "peerauthentications".into(),
        }
    );
    assert_eq!(ResourceType::of("v1", "Service").group, "");
}

#[test]
fn each_document_is_counted_by_type_and_reason() {
    let metrics = ValidationMetrics::default();
    let mut tally = DirectoryTally::new(metrics.clone());
    let text = [
        service("80"),
        virtual_service("-1"),
        "apiVersion: apps/v1\nkind: Frobnicator\nmetadata: {name: x}\n".to_string(),
        "kind: [unclosed\n".to_string(),
    ]
    .join("---\n");
    tally.observe(Path::new("mesh.yaml"), &text);
    assert_eq!(
        series(&metrics),
        [
            "galley_validation_failed{group=\"\",version=\"\",resource=\"\",reason=\"yaml_decode_error\"} 1".to_string(),
            VS_INVALID.to_string() + " 1",
            SERVICE_PASSED.to_string() + " 1",
        ]
    );
}

#[test]
fn a_file_counts_once_per_change_of_its_text() {
    let metrics = ValidationMetrics::default();
    let mut tally = DirectoryTally::new(metrics.clone());
    let mut read = |files: &[(&str, &str)]| {
        for (path, text) in files {
            tally.observe(Path::new(path), text);
        }
        tally.finish_reading(|path| path.starts_with("unlistable"));
    };
    read(&[("web.yaml", &virtual_service("50"))]);
    read(&[("web.yaml", &virtual_service("50"))]);
    assert_eq!(series(&metrics), [VS_PASSED.to_string() + " 1"]);

    // Broken, reloaded unchanged, fixed: one failure, one more pass.
    read(&[("web.yaml", &virtual_service("-1"))]);
    read(&[("web.yaml", &virtual_service("-1"))]);
    read(&[("web.yaml", &virtual_service("50"))]);
    assert_eq!(
        series(&metrics),
        [VS_INVALID.to_string() + " 1", VS_PASSED.to_string() + " 2"]
    );

    // Deleted then put back: a change. A file whose directory could not be
    // listed is unknown, not deleted: it is not counted again.
    read(&[("unlistable/svc.yaml", &service("80"))]);
    read(&[]);
    read(&[
        ("web.yaml", &virtual_service("50")),
        ("unlistable/svc.yaml", &service("80")),
    ]);
    assert_eq!(
        series(&metrics),
        [
            VS_INVALID.to_string() + " 1",
            SERVICE_PASSED.to_string() + " 1",
            VS_PASSED.to_string() + " 3",
        ]
    );
}
