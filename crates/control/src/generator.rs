//! Bridges config snapshots to the ADS server: per-proxy translation of the
//! latest snapshot.

use std::sync::Arc;

use arc_swap::ArcSwapOption;
use trellis_config::Snapshot;
use trellis_xds::server::ResourceGenerator;
use trellis_xds::{EncodedResources, NodeInfo};

#[derive(Default)]
pub struct SnapshotGenerator {
    snapshot: ArcSwapOption<Snapshot>,
}

impl SnapshotGenerator {
    pub fn install(&self, snapshot: Arc<Snapshot>) {
        self.snapshot.store(Some(snapshot));
    }
}

impl ResourceGenerator for SnapshotGenerator {
    fn generate(&self, node: &NodeInfo) -> Result<Option<EncodedResources>, String> {
        let Some(snapshot) = self.snapshot.load_full() else {
            return Ok(None); // nothing loaded yet: never push an empty config
        };
        Ok(Some(trellis_translate::translate(&snapshot, node).encode()))
    }
}
