//! The control plane shares a sidecar's outbound half across every proxy
//! of its `SharingClass`: for every golden input and every workload in it,
//! the shared half computed for the class's first member plus the
//! member's own half must equal what `translate_with` gives that member.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use trellis_config::Snapshot;
use trellis_translate::{
    MeshOptions, MeshTracing, OutboundTrafficPolicy, SharingClass, TracerKind, TracingProvider,
};
use trellis_xds::node::{Interception, ProxyKind};
use trellis_xds::{EncodedLayers, NodeInfo};

fn crate_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

fn load(files: &[PathBuf]) -> Snapshot {
    let mut resources = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(file).unwrap();
        let outcome = trellis_api::parse_yaml(file, &text);
        resources.extend(outcome.resources.into_iter().map(Arc::new));
    }
    Snapshot::new(1, resources)
}

/// Every golden input: each testdata file alone, and Bookinfo with each
/// networking sample.
fn inputs() -> Vec<(String, Snapshot)> {
    let testdata = crate_dir().join("testdata");
    let bookinfo = crate_dir().join("../../samples/bookinfo");
    let entries = testdata.join("workload-entries.yaml");
    let mut inputs = Vec::new();
    for file in std::fs::read_dir(&testdata).unwrap() {
        let path = file.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            inputs.push((path.display().to_string(), load(&[path])));
        }
    }
    for file in std::fs::read_dir(bookinfo.join("networking")).unwrap() {
        let path = file.unwrap().path();
        let files = [
            bookinfo.join("platform/bookinfo.yaml"),
            entries.clone(),
            path.clone(),
        ];
        inputs.push((path.display().to_string(), load(&files)));
    }
    // Telemetry that selects workloads: tracing splits classes.
    let traced = [
        bookinfo.join("platform/bookinfo.yaml"),
        entries.clone(),
        testdata.join("tracing.yaml"),
    ];
    inputs.push(("bookinfo with tracing.yaml".into(), load(&traced)));
    inputs
}

/// A sidecar for each WorkloadEntry, in both interception modes, and one
/// that reports its own locality.
fn sidecars(snapshot: &Snapshot) -> Vec<NodeInfo> {
    let mut nodes = Vec::new();
    for entry in snapshot.workload_entries() {
        let Ok(ip) = entry.spec.address.parse() else {
            continue;
        };
        let node = NodeInfo {
            kind: ProxyKind::Sidecar,
            ip,
            pod_name: format!("{}-0", entry.name()),
            namespace: entry.namespace().to_string(),
            service_account: entry.spec.service_account.clone().unwrap_or_default(),
            workload_name: entry.name().to_string(),
            labels: entry.spec.labels.clone(),
            interception: Interception::Redirect,
            app_ports: Default::default(),
            outbound_port: 15001,
            locality: String::new(),
        };
        let explicit = NodeInfo {
            interception: Interception::None,
            app_ports: [(9080, 20000), (8080, 20001)].into(),
            ..node.clone()
        };
        let located = NodeInfo {
            locality: "us-east/us-east-1a".into(),
            ..node.clone()
        };
        nodes.extend([node, explicit, located]);
    }
    nodes
}

/// Two tracing providers, the first the default, as the tracing golden's.
fn tracing() -> MeshTracing {
    let provider = |name: &str, port, kind| TracingProvider {
        name: name.into(),
        service: format!("{name}.istio-system.svc.cluster.local"),
        port,
        kind,
    };
    MeshTracing {
        providers: vec![
            provider("zipkin", 9411, TracerKind::Zipkin),
            provider("otel", 4317, TracerKind::OtlpGrpc),
        ],
        default_providers: vec!["zipkin".into()],
        ..MeshTracing::default()
    }
}

#[test]
fn shared_and_own_halves_equal_the_whole_translation() {
    let meshes = [
        MeshOptions::default(),
        MeshOptions {
            access_log_file: Some("/dev/stdout".into()),
            outbound_traffic_policy: OutboundTrafficPolicy::RegistryOnly,
            ..MeshOptions::default()
        },
        MeshOptions {
            tracing: tracing(),
            ..MeshOptions::default()
        },
    ];
    let mut compared = 0;
    let mut shared_by_many = 0;
    for (name, snapshot) in inputs() {
        for mesh in &meshes {
            let mut classes: HashMap<SharingClass, (EncodedLayers, EncodedLayers)> = HashMap::new();
            for node in sidecars(&snapshot) {
                let class = SharingClass::of(&snapshot, &node, mesh).expect("sidecars share");
                let reused = classes.contains_key(&class);
                let (clusters, listeners) = classes.entry(class).or_insert_with(|| {
                    (
                        trellis_translate::shared_clusters(&snapshot, &node).encode_layers(),
                        trellis_translate::shared_listeners(&snapshot, &node, mesh).encode_layers(),
                    )
                });
                let own =
                    trellis_translate::workload_resources(&snapshot, &node, mesh).encode_layers();
                let composed = EncodedLayers::compose(&[clusters, listeners, &own]);
                let whole = trellis_translate::translate_with(&snapshot, &node, mesh).encode();
                // Versions differ by design (a hash of the layers' versions).
                let content = |e: &trellis_xds::EncodedResources| {
                    e.by_type
                        .iter()
                        .map(|(url, t)| (*url, t.by_name.clone()))
                        .collect::<Vec<_>>()
                };
                assert!(
                    content(&composed) == content(&whole),
                    "{name}: {} ({:?}) differs when shared",
                    node.pod_name,
                    node.interception
                );
                compared += 1;
                shared_by_many += usize::from(reused);
            }
        }
    }
    assert!(compared > 100, "only {compared} proxies compared");
    assert!(
        shared_by_many > compared / 2,
        "classes are too fine: {shared_by_many} of {compared} shared"
    );
}

#[test]
fn gateways_share_nothing() {
    let snapshot = load(&[crate_dir().join("testdata/egress-gateway.yaml")]);
    let mut node = sidecars(&snapshot).remove(0);
    node.kind = ProxyKind::Router;
    assert_eq!(
        SharingClass::of(&snapshot, &node, &MeshOptions::default()),
        None
    );
}

#[test]
fn only_workload_entry_changes_are_endpoint_changes() {
    let bookinfo = crate_dir().join("../../samples/bookinfo");
    let entries = crate_dir().join("testdata/workload-entries.yaml");
    let base = [bookinfo.join("platform/bookinfo.yaml"), entries.clone()];
    let before = load(&base);
    let fewer = load(&[bookinfo.join("platform/bookinfo.yaml")]);
    let more = load(&[
        base[0].clone(),
        entries,
        bookinfo.join("networking/virtual-service-all-v1.yaml"),
    ]);
    assert!(trellis_translate::only_endpoints_changed(
        &before,
        &load(&base)
    ));
    assert!(trellis_translate::only_endpoints_changed(&before, &fewer));
    assert!(!trellis_translate::only_endpoints_changed(&before, &more));
}
