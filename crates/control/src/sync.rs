//! What `/debug/syncz` reports: the control plane's view of every
//! connected proxy (the wire shape shared by the server and the CLI).

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncReport {
    /// Which control plane instance answered (istioctl's ISTIOD column).
    pub control_plane: String,
    pub proxies: Vec<SyncedProxy>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncedProxy {
    pub node_id: String,
    pub cluster_id: String,
    /// Istio's version of an Istio proxy, else its xDS user agent.
    pub proxy_version: String,
    /// The revision that injected it (`istio.io/rev`); older control
    /// planes did not say.
    #[serde(default)]
    pub revision: String,
    /// By type URL.
    pub types: BTreeMap<String, TypeSync>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TypeSync {
    pub sent_version: String,
    pub acked_version: String,
    pub last_nack: Option<String>,
}

impl SyncedProxy {
    /// `POD.NAMESPACE`, the third field of Istio's node id.
    pub fn name(&self) -> String {
        self.node_id
            .split('~')
            .nth(2)
            .unwrap_or(&self.node_id)
            .to_string()
    }

    pub fn ip(&self) -> Option<IpAddr> {
        self.node_id.split('~').nth(1)?.parse().ok()
    }
}

impl From<&trellis_xds::server::ProxyStatus> for SyncedProxy {
    fn from(status: &trellis_xds::server::ProxyStatus) -> Self {
        SyncedProxy {
            node_id: status.node_id.clone(),
            cluster_id: status.cluster_id.clone(),
            proxy_version: status.proxy_version.clone(),
            revision: status.revision.clone(),
            types: status
                .types
                .iter()
                .map(|(url, t)| {
                    let sync = TypeSync {
                        sent_version: t.sent_version.clone(),
                        acked_version: t.acked_version.clone(),
                        last_nack: t.last_nack.clone(),
                    };
                    (url.to_string(), sync)
                })
                .collect(),
        }
    }
}
