//! Bridges config snapshots to the ADS server: per-proxy translation of the
//! latest snapshot.

use std::sync::Arc;

use arc_swap::ArcSwapOption;
use trellis_config::Snapshot;
use trellis_translate::MeshOptions;
use trellis_xds::node::ProxyKind;
use trellis_xds::server::ResourceGenerator;
use trellis_xds::{EncodedResources, NodeInfo};

#[derive(Default)]
pub struct SnapshotGenerator {
    snapshot: ArcSwapOption<Snapshot>,
    mesh: MeshOptions,
}

impl SnapshotGenerator {
    pub fn new(mesh: MeshOptions) -> Self {
        SnapshotGenerator {
            snapshot: ArcSwapOption::empty(),
            mesh,
        }
    }

    pub fn install(&self, snapshot: Arc<Snapshot>) {
        self.snapshot.store(Some(snapshot));
    }
}

impl ResourceGenerator for SnapshotGenerator {
    fn generate(&self, node: &NodeInfo) -> Result<Option<EncodedResources>, String> {
        let Some(snapshot) = self.snapshot.load_full() else {
            return Ok(None); // nothing loaded yet: never push an empty config
        };
        let resources = match node.kind {
            // Proxyless gRPC clients (node metadata `GENERATOR: grpc`) get
            // gRPC's resources, as Istio's grpc generator makes them.
            ProxyKind::ProxylessGrpc => {
                trellis_translate::translate_proxyless_grpc(&snapshot, node)
            }
            ProxyKind::Sidecar | ProxyKind::Router => {
                trellis_translate::translate_with(&snapshot, node, &self.mesh)
            }
        };
        Ok(Some(resources.encode()))
    }
}
