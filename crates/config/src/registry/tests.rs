use std::path::Path;

use trellis_api::{AnyResource, parse_yaml};

use super::*;

const BOOKINFO: &str = include_str!("../../../../samples/bookinfo/platform/bookinfo.yaml");

/// WorkloadEntries standing in for Bookinfo's reviews pods, plus decoys that
/// must not be selected.
const WORKLOADS: &str = "\
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-v3}
spec:
  address: 127.0.0.13
  labels: {app: reviews, version: v3}
  serviceAccount: bookinfo-reviews
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-v1}
spec:
  address: 127.0.0.11
  ports: {http: 19080}
  labels: {app: reviews, version: v1}
  serviceAccount: bookinfo-reviews
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-v2}
spec:
  address: 127.0.0.12
  labels: {app: reviews, version: v2}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-elsewhere, namespace: other}
spec:
  address: 127.0.0.20
  labels: {app: reviews, version: v1}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-by-dns}
spec:
  address: reviews.example.com
  labels: {app: reviews, version: v1}
";

fn bookinfo_registry() -> Registry {
    let mut resources = Vec::new();
    for (name, text) in [("bookinfo.yaml", BOOKINFO), ("workloads.yaml", WORKLOADS)] {
        let outcome = parse_yaml(Path::new(name), text);
        assert!(outcome.errors.is_empty(), "{:#?}", outcome.errors);
        resources.extend(outcome.resources);
    }
    let services = resources.iter().filter_map(|r| match r {
        AnyResource::Service(service) => Some(service),
        _ => None,
    });
    let entries = resources.iter().filter_map(|r| match r {
        AnyResource::WorkloadEntry(entry) => Some(entry),
        _ => None,
    });
    Registry::new(services, entries)
}

#[test]
fn bookinfo_services_are_registered_with_http_ports() {
    let registry = bookinfo_registry();
    let hostnames: Vec<_> = registry
        .services()
        .iter()
        .map(|s| s.hostname.as_str())
        .collect();
    assert_eq!(
        hostnames,
        [
            "details.default.svc.cluster.local",
            "productpage.default.svc.cluster.local",
            "ratings.default.svc.cluster.local",
            "reviews.default.svc.cluster.local",
        ]
    );
    let reviews = &registry.services()[3];
    assert_eq!(
        reviews.ports,
        [MeshServicePort {
            name: Some("http".into()),
            port: 9080,
            target_port: TargetPort::Number(9080),
            protocol: Protocol::Http,
        }]
    );
}

#[test]
fn reviews_endpoints_come_from_matching_workload_entries() {
    let registry = bookinfo_registry();
    let reviews = registry.service_by_host("reviews", "default").unwrap();
    let endpoints = registry.endpoints(reviews, &reviews.ports[0]);
    let seen: Vec<_> = endpoints
        .iter()
        .map(|e| {
            (
                e.address.to_string(),
                e.labels["version"].as_str(),
                e.service_account.as_str(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("127.0.0.11:19080".to_string(), "v1", "bookinfo-reviews"),
            ("127.0.0.12:9080".to_string(), "v2", "default"),
            ("127.0.0.13:9080".to_string(), "v3", "bookinfo-reviews"),
        ]
    );
    assert_eq!(endpoints[0].workload_name, "reviews-v1");
    assert_eq!(endpoints[0].namespace, "default");

    let ratings = registry.service_by_host("ratings", "default").unwrap();
    assert!(registry.endpoints(ratings, &ratings.ports[0]).is_empty());
}

#[test]
fn short_and_long_names_resolve_relative_to_the_namespace() {
    let registry = bookinfo_registry();
    let full = "reviews.default.svc.cluster.local";
    for host in [
        "reviews",
        "reviews.default",
        "reviews.default.svc",
        full,
        "reviews.default.svc.cluster.local.",
        "Reviews.Default",
    ] {
        let found = registry
            .service_by_host(host, "default")
            .map(|s| s.hostname.as_str());
        assert_eq!(found, Some(full), "{host}");
    }
    assert!(registry.service_by_host("reviews", "other").is_none());
    assert!(
        registry
            .service_by_host("reviews.default", "other")
            .is_some()
    );
    assert!(
        registry
            .service_by_host("www.google.com", "default")
            .is_none()
    );
    assert!(registry.service_by_host("", "default").is_none());
}

#[test]
fn target_ports_resolve_by_number_name_and_entry_port() {
    let text = "\
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  selector: {app: web}
  ports:
  - {name: http, port: 80, targetPort: 8080}
  - {name: grpc-api, port: 90, targetPort: api}
  - {name: admin, port: 95, targetPort: admin}
---
apiVersion: v1
kind: Service
metadata: {name: selects-nothing, namespace: shop}
spec:
  ports: [{port: 80}]
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: web-1, namespace: shop}
spec:
  address: 10.0.0.1
  ports: {api: 9090}
  labels: {app: web, extra: label}
";
    let outcome = parse_yaml(Path::new("web.yaml"), text);
    assert!(outcome.errors.is_empty(), "{:#?}", outcome.errors);
    let services = outcome.resources.iter().filter_map(|r| match r {
        AnyResource::Service(s) => Some(s),
        _ => None,
    });
    let entries = outcome.resources.iter().filter_map(|r| match r {
        AnyResource::WorkloadEntry(e) => Some(e),
        _ => None,
    });
    let registry = Registry::new(services, entries);
    let web = registry.service_by_host("web", "shop").unwrap();
    let addresses: Vec<_> = web
        .ports
        .iter()
        .map(|port| registry.endpoints(web, port)[0].address.port())
        .collect();
    // By number; by a name the entry maps; by a name it does not (port).
    assert_eq!(addresses, [8080, 9090, 95]);
    assert_eq!(web.ports[1].protocol, Protocol::Grpc);
    assert_eq!(web.ports[1].target_port, TargetPort::Named("api".into()));
    assert_eq!(web.ports[2].protocol, Protocol::Unknown);

    let nothing = registry.service_by_host("selects-nothing", "shop").unwrap();
    assert!(registry.endpoints(nothing, &nothing.ports[0]).is_empty());
}

#[test]
fn cluster_ips_are_carried_and_headless_services_have_none() {
    let text = "\
apiVersion: v1
kind: Service
metadata: {name: reviews}
spec: {clusterIP: 10.96.0.20, ports: [{port: 9080}]}
---
apiVersion: v1
kind: Service
metadata: {name: headless}
spec: {clusterIP: None, ports: [{port: 9080}]}
---
apiVersion: v1
kind: Service
metadata: {name: unset}
spec: {ports: [{port: 9080}]}
";
    let outcome = parse_yaml(Path::new("services.yaml"), text);
    assert!(outcome.errors.is_empty(), "{:#?}", outcome.errors);
    let services = outcome.resources.iter().filter_map(|r| match r {
        AnyResource::Service(service) => Some(service),
        _ => None,
    });
    let registry = Registry::new(services, []);
    let ip_of = |name: &str| {
        registry
            .service_by_host(name, "default")
            .unwrap()
            .cluster_ip
    };
    assert_eq!(ip_of("reviews"), Some("10.96.0.20".parse().unwrap()));
    assert_eq!(ip_of("headless"), None);
    assert_eq!(ip_of("unset"), None);
}

#[test]
fn locality_comes_from_the_entry_else_from_topology_labels() {
    let entry = |locality: Option<&str>, labels: &[(&str, &str)]| WorkloadEntry {
        locality: locality.map(str::to_string),
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Default::default()
    };
    let labelled = [(REGION_LABEL, "us-east"), (ZONE_LABEL, "us-east-1a")];
    assert_eq!(
        workload_locality(&entry(Some("eu/west/rack1"), &labelled)),
        "eu/west/rack1"
    );
    assert_eq!(
        workload_locality(&entry(None, &labelled)),
        "us-east/us-east-1a"
    );
    assert_eq!(workload_locality(&entry(None, &[])), "");
    let registry = bookinfo_registry();
    assert_eq!(registry.locality_of("127.0.0.11".parse().unwrap()), None);
}
