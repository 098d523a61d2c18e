//! Bridges config snapshots to the ADS server: each proxy's resources for
//! the latest snapshot, with what proxies have in common computed and
//! encoded once.
//!
//! A sidecar's config is a shared half, the same for every sidecar of one
//! [`SharingClass`] (namespace, address family, locality, ...: see
//! `trellis_translate::sharing`), and its workload's own small half. Each
//! generation (snapshot) keeps the shared halves it computed, by class, as
//! `Arc`ed encoded layers that every proxy's resources point to: 10,000
//! sidecars of one namespace cost one translation of the mesh and one copy
//! of it in memory. When a new snapshot changes only endpoints
//! (WorkloadEntries), the previous generation's listeners and routes are
//! reused and only clusters and endpoints are recomputed. Gateways get
//! their whole config translated for them alone.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use arc_swap::ArcSwapOption;
use trellis_config::Snapshot;
use trellis_translate::{MeshOptions, SharingClass};
use trellis_xds::server::ResourceGenerator;
use trellis_xds::{EncodedLayers, EncodedResources, NodeInfo};

#[derive(Default)]
pub struct SnapshotGenerator {
    current: ArcSwapOption<Generation>,
    mesh: MeshOptions,
}

/// One snapshot and the shared halves computed from it so far.
struct Generation {
    snapshot: Arc<Snapshot>,
    classes: Mutex<HashMap<SharingClass, Arc<ClassEntry>>>,
    /// The previous generation's listeners and routes, by class, when this
    /// snapshot changed only endpoints.
    reusable_listeners: HashMap<SharingClass, EncodedLayers>,
}

struct ClassEntry {
    /// The first proxy of the class seen: every member gives the same
    /// shared half, so any one of them computes it.
    node: NodeInfo,
    shared: OnceLock<SharedHalf>,
}

#[derive(Clone)]
struct SharedHalf {
    clusters: EncodedLayers,
    listeners: EncodedLayers,
}

impl SnapshotGenerator {
    pub fn new(mesh: MeshOptions) -> Self {
        SnapshotGenerator {
            current: ArcSwapOption::empty(),
            mesh,
        }
    }

    /// Makes `snapshot` current, with the shared halves of every class the
    /// previous snapshot served computed already (so the streams woken
    /// next only assemble). Blocks for that long: call it off the runtime.
    pub fn install(&self, snapshot: Arc<Snapshot>) {
        let previous = self.current.load_full();
        let known: Vec<(SharingClass, Arc<ClassEntry>)> = previous
            .as_ref()
            .map(|p| p.classes_so_far())
            .unwrap_or_default();
        let endpoints_only = previous
            .as_ref()
            .is_some_and(|p| trellis_translate::only_endpoints_changed(&p.snapshot, &snapshot));
        let reusable_listeners = if endpoints_only {
            known
                .iter()
                .filter_map(|(class, entry)| {
                    Some((class.clone(), entry.shared.get()?.listeners.clone()))
                })
                .collect()
        } else {
            HashMap::new()
        };
        let generation = Generation {
            snapshot,
            classes: Mutex::default(),
            reusable_listeners,
        };
        for (class, entry) in known {
            if SharingClass::of(&generation.snapshot, &entry.node, &self.mesh).as_ref()
                == Some(&class)
            {
                generation.shared(class, &entry.node, &self.mesh);
            }
        }
        self.current.store(Some(Arc::new(generation)));
    }
}

impl Generation {
    fn classes_so_far(&self) -> Vec<(SharingClass, Arc<ClassEntry>)> {
        let classes = self.classes.lock().unwrap_or_else(|e| e.into_inner());
        classes
            .iter()
            .map(|(c, e)| (c.clone(), e.clone()))
            .collect()
    }

    /// The class's shared half, computed by the first caller (others of
    /// the class wait for it rather than compute it again).
    fn shared(&self, class: SharingClass, node: &NodeInfo, mesh: &MeshOptions) -> SharedHalf {
        let entry = {
            let mut classes = self.classes.lock().unwrap_or_else(|e| e.into_inner());
            classes
                .entry(class.clone())
                .or_insert_with(|| {
                    Arc::new(ClassEntry {
                        node: node.clone(),
                        shared: OnceLock::new(),
                    })
                })
                .clone()
        };
        entry
            .shared
            .get_or_init(|| {
                let snapshot = &self.snapshot;
                let listeners = match self.reusable_listeners.get(&class) {
                    Some(layers) => layers.clone(),
                    None => trellis_translate::shared_listeners(snapshot, &entry.node, mesh)
                        .encode_layers(),
                };
                SharedHalf {
                    clusters: trellis_translate::shared_clusters(snapshot, &entry.node)
                        .encode_layers(),
                    listeners,
                }
            })
            .clone()
    }

    /// A sidecar's or gateway's resources.
    fn proxy(&self, node: &NodeInfo, mesh: &MeshOptions) -> EncodedResources {
        let Some(class) = SharingClass::of(&self.snapshot, node, mesh) else {
            return trellis_translate::translate_with(&self.snapshot, node, mesh).encode();
        };
        let shared = self.shared(class, node, mesh);
        let own = trellis_translate::workload_resources(&self.snapshot, node, mesh).encode_layers();
        EncodedLayers::compose(&[&shared.clusters, &shared.listeners, &own])
    }
}

impl ResourceGenerator for SnapshotGenerator {
    fn generate(&self, node: &NodeInfo) -> Result<Option<EncodedResources>, String> {
        let Some(generation) = self.current.load_full() else {
            return Ok(None); // nothing loaded yet: never push an empty config
        };
        // Proxyless gRPC clients (node metadata `GENERATOR: grpc`) get
        // gRPC's resources, as Istio's grpc generator makes them.
        if node.kind == trellis_xds::node::ProxyKind::ProxylessGrpc {
            let resources = trellis_translate::translate_proxyless_grpc(&generation.snapshot, node);
            return Ok(Some(resources.encode()));
        }
        Ok(Some(generation.proxy(node, &self.mesh)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use trellis_xds::node::{Interception, ProxyKind};

    fn snapshot(version: u64, yaml: &str) -> Arc<Snapshot> {
        let outcome = trellis_api::parse_yaml(std::path::Path::new("test.yaml"), yaml);
        assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
        Arc::new(Snapshot::new(
            version,
            outcome.resources.into_iter().map(Arc::new).collect(),
        ))
    }

    const SERVICES: &str = "apiVersion: v1\nkind: Service\nmetadata: {name: a, namespace: default}\nspec:\n  clusterIP: 10.96.0.1\n  selector: {app: a}\n  ports: [{name: http, port: 80, targetPort: 8080}]\n---\napiVersion: v1\nkind: Service\nmetadata: {name: b, namespace: default}\nspec:\n  clusterIP: 10.96.0.2\n  selector: {app: b}\n  ports: [{name: http, port: 80, targetPort: 8080}]\n";

    fn entry(name: &str, app: &str, address: &str) -> String {
        format!(
            "---\napiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {{name: {name}, namespace: default}}\nspec: {{address: {address}, labels: {{app: {app}}}, ports: {{http: 8080}}}}\n"
        )
    }

    fn sidecar(app: &str, ip: &str) -> NodeInfo {
        NodeInfo {
            kind: ProxyKind::Sidecar,
            ip: ip.parse().unwrap(),
            pod_name: format!("{app}-0"),
            namespace: "default".into(),
            service_account: "default".into(),
            workload_name: app.into(),
            labels: [("app".to_string(), app.to_string())].into(),
            interception: Interception::Redirect,
            app_ports: Default::default(),
            outbound_port: 15001,
            locality: String::new(),
        }
    }

    fn layer_ptr(resources: &EncodedResources, type_url: &str) -> usize {
        let typed = resources.get(type_url).unwrap();
        typed
            .by_name
            .values()
            .next()
            .map_or(0, |any| any as *const _ as usize)
    }

    #[test]
    fn proxies_of_a_class_share_one_copy_and_match_their_own_translation() {
        let config = format!(
            "{SERVICES}{}{}",
            entry("a-0", "a", "127.1.0.1"),
            entry("b-0", "b", "127.1.0.2")
        );
        let generator = SnapshotGenerator::new(MeshOptions::default());
        assert_eq!(generator.generate(&sidecar("a", "127.1.0.1")), Ok(None));
        let snapshot = snapshot(1, &config);
        generator.install(snapshot.clone());
        let a = generator
            .generate(&sidecar("a", "127.1.0.1"))
            .unwrap()
            .unwrap();
        let b = generator
            .generate(&sidecar("b", "127.1.0.2"))
            .unwrap()
            .unwrap();
        for type_url in [
            trellis_xds::type_url::ENDPOINT,
            trellis_xds::type_url::ROUTE,
        ] {
            assert_eq!(
                layer_ptr(&a, type_url),
                layer_ptr(&b, type_url),
                "{type_url} is shared"
            );
        }
        // Their listeners differ (inbound is the workload's own) and each
        // equals the proxy's own full translation.
        for (node, got) in [
            (sidecar("a", "127.1.0.1"), &a),
            (sidecar("b", "127.1.0.2"), &b),
        ] {
            let whole = trellis_translate::translate(&snapshot, &node).encode();
            for (url, typed) in &whole.by_type {
                assert!(
                    got.get(url).unwrap().by_name == typed.by_name,
                    "{url} of {}",
                    node.pod_name
                );
            }
        }
    }

    #[test]
    fn an_endpoint_change_keeps_listeners_and_routes_and_changes_endpoints() {
        let before = format!("{SERVICES}{}", entry("a-0", "a", "127.1.0.1"));
        let after = format!("{before}{}", entry("a-1", "a", "127.1.0.3"));
        let generator = SnapshotGenerator::new(MeshOptions::default());
        generator.install(snapshot(1, &before));
        let node = sidecar("b", "127.1.0.2");
        let first = generator.generate(&node).unwrap().unwrap();
        generator.install(snapshot(2, &after));
        let second = generator.generate(&node).unwrap().unwrap();
        use trellis_xds::type_url::{CLUSTER, ENDPOINT, LISTENER, ROUTE};
        for type_url in [LISTENER, ROUTE] {
            assert_eq!(
                layer_ptr(&first, type_url),
                layer_ptr(&second, type_url),
                "{type_url} reused"
            );
        }
        assert_eq!(
            first.get(CLUSTER).unwrap().version,
            second.get(CLUSTER).unwrap().version
        );
        assert_ne!(
            first.get(ENDPOINT).unwrap().version,
            second.get(ENDPOINT).unwrap().version
        );
        // And the result is what translating from scratch gives.
        let whole = trellis_translate::translate(&snapshot(2, &after), &node).encode();
        for (url, typed) in &whole.by_type {
            assert!(second.get(url).unwrap().by_name == typed.by_name, "{url}");
        }
    }

    #[test]
    fn a_config_change_recomputes_listeners_and_routes() {
        let before = format!("{SERVICES}{}", entry("a-0", "a", "127.1.0.1"));
        let vs = "---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: a, namespace: default}\nspec:\n  hosts: [a]\n  http:\n  - timeout: 3s\n    route: [{destination: {host: a}}]\n";
        let generator = SnapshotGenerator::new(MeshOptions::default());
        generator.install(snapshot(1, &before));
        let node = sidecar("b", "127.1.0.2");
        let first = generator.generate(&node).unwrap().unwrap();
        generator.install(snapshot(2, &format!("{before}{vs}")));
        let second = generator.generate(&node).unwrap().unwrap();
        use trellis_xds::type_url::{ENDPOINT, ROUTE};
        assert_ne!(
            first.get(ROUTE).unwrap().version,
            second.get(ROUTE).unwrap().version
        );
        assert_eq!(
            first.get(ENDPOINT).unwrap().version,
            second.get(ENDPOINT).unwrap().version
        );
    }
}
