//! PeerAuthentication: the mTLS mode of each inbound port, after Istio's
//! precedence (workload selector, then namespace, then mesh in the root
//! namespace) and inheritance (UNSET takes the enclosing mode; PERMISSIVE
//! when nothing sets one).

use trellis_api::{MtlsMode, PeerAuthentication, Resource};
use trellis_config::Snapshot;
use trellis_xds::NodeInfo;

use super::{has_selector, is_root, selects};

/// What an inbound port accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InboundMtls {
    /// mTLS only: the plaintext filter chain is dropped.
    Strict,
    /// mTLS and plaintext, told apart by the first byte.
    Permissive,
    /// Plaintext only: the TLS filter chain is dropped.
    Disable,
}

impl InboundMtls {
    pub fn accepts_tls(self) -> bool {
        self != InboundMtls::Disable
    }

    pub fn accepts_plaintext(self) -> bool {
        self != InboundMtls::Strict
    }
}

/// The mode of `port` (the workload's port) on `node`.
pub fn inbound_mtls(snapshot: &Snapshot, node: &NodeInfo, port: u16) -> InboundMtls {
    let policies: Vec<_> = snapshot.peer_authentications().collect();
    compose(&policies, node, port)
}

fn compose(policies: &[&Resource<PeerAuthentication>], node: &NodeInfo, port: u16) -> InboundMtls {
    let namespace_wide = |namespace: &str| {
        policies
            .iter()
            .find(|p| p.namespace() == namespace && !has_selector(p.spec.selector.as_ref()))
    };
    let mesh = namespace_wide(trellis_api::ROOT_NAMESPACE);
    let namespace = (!is_root(&node.namespace))
        .then(|| namespace_wide(&node.namespace))
        .flatten();
    let workload = policies.iter().find(|p| {
        p.namespace() == node.namespace
            && has_selector(p.spec.selector.as_ref())
            && selects(p.spec.selector.as_ref(), node)
    });
    let mut mode = MtlsMode::Permissive;
    for policy in [mesh, namespace, workload].into_iter().flatten() {
        mode = inherit(mode, policy.spec.mtls.map(|m| m.mode));
    }
    if let Some(policy) = workload {
        let port_mode = policy.spec.port_level_mtls.get(&u32::from(port));
        mode = inherit(mode, port_mode.map(|m| m.mode));
    }
    match mode {
        MtlsMode::Strict => InboundMtls::Strict,
        MtlsMode::Disable => InboundMtls::Disable,
        MtlsMode::Permissive | MtlsMode::Unset => InboundMtls::Permissive,
    }
}

fn inherit(parent: MtlsMode, own: Option<MtlsMode>) -> MtlsMode {
    match own {
        None | Some(MtlsMode::Unset) => parent,
        Some(mode) => mode,
    }
}

#[cfg(test)]
mod tests;
