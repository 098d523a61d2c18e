use std::path::Path;
use std::sync::Arc;

use trellis_api::parse_yaml;

use super::*;
use crate::Snapshot;

const ENTRIES: &str = "\
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: default}
spec:
  ports: [{port: 9080, name: http}]
  selector: {app: reviews}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: external-api, namespace: default}
spec:
  hosts: [api.example.com, '*.wild.example.com']
  addresses: [240.0.0.1]
  ports:
  - {number: 80, name: http, protocol: HTTP}
  - {number: 443, name: tls, protocol: TLS, targetPort: 8443}
  resolution: STATIC
  exportTo: [.]
  endpoints:
  - {address: 127.0.0.30, ports: {http: 18080}, labels: {version: v1}}
  - {address: 127.0.0.31}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: by-dns, namespace: other}
spec:
  hosts: [dns.example.com, api.example.com]
  ports: [{number: 8080, name: http-alt, protocol: HTTP}]
  location: MESH_INTERNAL
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: selected, namespace: default}
spec:
  hosts: [vm.internal]
  ports: [{number: 9090, name: grpc, protocol: GRPC}]
  location: MESH_INTERNAL
  resolution: STATIC
  workloadSelector: {labels: {app: vm}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: vm-1, namespace: default}
spec: {address: 127.0.0.40, labels: {app: vm}, serviceAccount: vm-sa}
";

fn snapshot() -> Snapshot {
    let outcome = parse_yaml(Path::new("entries.yaml"), ENTRIES);
    assert!(outcome.errors.is_empty(), "{:#?}", outcome.errors);
    Snapshot::new(1, outcome.resources.into_iter().map(Arc::new).collect())
}

#[test]
fn each_host_is_a_service_named_by_the_host() {
    let snapshot = snapshot();
    let registry = &snapshot.registry;
    let api = registry.service_by_host("api.example.com", "any").unwrap();
    let entry = api.entry.as_ref().unwrap();
    assert_eq!(
        entry.entry_name, "external-api",
        "the first entry claims a host"
    );
    assert_eq!(entry.location, ServiceEntryLocation::MeshExternal);
    assert_eq!(api.cluster_ip, Some("240.0.0.1".parse().unwrap()));
    assert_eq!(api.port(80).unwrap().protocol, Protocol::Http);
    assert_eq!(api.port(443).unwrap().protocol, Protocol::Tcp);
    assert_eq!(api.port(443).unwrap().target_port, TargetPort::Number(8443));
    let dns = registry.service_by_host("dns.example.com.", "any").unwrap();
    assert_eq!(dns.port(8080).unwrap().protocol, Protocol::Http);
    assert_eq!(
        dns.entry.as_ref().unwrap().resolution,
        ServiceEntryResolution::Dns
    );
    assert!(
        registry
            .service_by_host("a.wild.example.com", "any")
            .is_none()
    );
    // Kubernetes short names still resolve as before.
    assert!(
        registry
            .service_by_host("reviews", "default")
            .unwrap()
            .entry
            .is_none()
    );
}

#[test]
fn inline_endpoints_use_their_port_mapping_else_the_target_port() {
    let snapshot = snapshot();
    let api = snapshot
        .registry
        .service_by_host("api.example.com", "default")
        .unwrap();
    let addresses = |port: u16| -> Vec<String> {
        let port = api.port(port).unwrap();
        let endpoints = snapshot.registry.endpoints(api, port);
        endpoints.iter().map(|e| e.address.to_string()).collect()
    };
    assert_eq!(addresses(80), ["127.0.0.30:18080", "127.0.0.31:80"]);
    assert_eq!(addresses(443), ["127.0.0.30:8443", "127.0.0.31:8443"]);
}

#[test]
fn a_workload_selector_selects_workload_entries() {
    let snapshot = snapshot();
    let vm = snapshot
        .registry
        .service_by_host("vm.internal", "default")
        .unwrap();
    let endpoints = snapshot.registry.endpoints(vm, vm.port(9090).unwrap());
    assert_eq!(endpoints.len(), 1);
    assert_eq!(endpoints[0].address.to_string(), "127.0.0.40:9090");
    assert_eq!(endpoints[0].service_account, "vm-sa");
}

#[test]
fn export_to_limits_the_namespaces_that_see_an_entry() {
    let snapshot = snapshot();
    let api = snapshot
        .registry
        .service_by_host("api.example.com", "x")
        .unwrap();
    assert!(api.visible_from("default"));
    assert!(!api.visible_from("other"));
    let dns = snapshot
        .registry
        .service_by_host("dns.example.com", "x")
        .unwrap();
    assert!(dns.visible_from("default") && dns.visible_from("other"));
    let reviews = snapshot
        .registry
        .service_by_host("reviews", "default")
        .unwrap();
    assert!(reviews.visible_from("other"));
}
