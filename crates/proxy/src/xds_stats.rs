//! Counts of accepted and rejected xDS updates, under Envoy's stat names
//! (`cluster_manager.cds.update_success`, ...) that Istio's agent and
//! users' scripts read to tell whether a proxy took its config.

use std::sync::atomic::{AtomicU64, Ordering};

use trellis_xds::type_url;

#[derive(Debug, Default)]
pub struct XdsUpdateStats {
    clusters: Outcomes,
    listeners: Outcomes,
}

#[derive(Debug, Default)]
struct Outcomes {
    success: AtomicU64,
    rejected: AtomicU64,
}

impl XdsUpdateStats {
    pub fn record(&self, type_url: &str, accepted: bool) {
        let outcomes = match type_url {
            type_url::CLUSTER => &self.clusters,
            type_url::LISTENER => &self.listeners,
            _ => return,
        };
        let counter = if accepted {
            &outcomes.success
        } else {
            &outcomes.rejected
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// `(stat name, value)` in Envoy's names.
    pub fn stats(&self) -> [(&'static str, u64); 4] {
        let read = |c: &AtomicU64| c.load(Ordering::Relaxed);
        [
            (
                "cluster_manager.cds.update_success",
                read(&self.clusters.success),
            ),
            (
                "cluster_manager.cds.update_rejected",
                read(&self.clusters.rejected),
            ),
            (
                "listener_manager.lds.update_success",
                read(&self.listeners.success),
            ),
            (
                "listener_manager.lds.update_rejected",
                read(&self.listeners.rejected),
            ),
        ]
    }
}
