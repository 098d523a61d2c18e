//! Who is on the other end of an ADS stream. On the TLS port the control
//! plane authenticates every caller (a mesh certificate or a bootstrap
//! token, decided by an [`AuthenticateCaller`]) and then serves a stream
//! only for a proxy of that identity: a workload cannot ask for another
//! namespace's config by claiming its node metadata, as Istio's
//! `PILOT_ENABLE_XDS_IDENTITY_CHECK` ensures.

use std::fmt;

use tonic::Status;
use tonic::codegen::http;

use crate::node::NodeInfo;

/// An authenticated workload identity, as a SPIFFE ID's namespace and
/// service account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    pub namespace: String,
    pub service_account: String,
}

impl fmt::Display for Caller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ns/{}/sa/{}", self.namespace, self.service_account)
    }
}

/// Decides who made a call from its headers and its connection (the
/// request extensions carry the TLS peer's certificates).
pub trait AuthenticateCaller: Send + Sync + 'static {
    /// The caller's identity, or `Unauthenticated` saying what is missing.
    fn authenticate(
        &self,
        headers: &http::HeaderMap,
        extensions: &http::Extensions,
    ) -> Result<Caller, Status>;
}

/// A proxy may only be served as itself: its node's namespace must be the
/// caller's, and so must its service account when it names one (proxyless
/// gRPC bootstraps often leave it out).
pub(crate) fn check_node(caller: &Caller, node: &NodeInfo) -> Result<(), Status> {
    let namespace_matches = node.namespace == caller.namespace;
    let account_matches =
        node.service_account.is_empty() || node.service_account == caller.service_account;
    if namespace_matches && account_matches {
        return Ok(());
    }
    Err(Status::permission_denied(format!(
        "authenticated as {caller}, but the node claims namespace {:?} and service account {:?}",
        node.namespace, node.service_account
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::{Interception, ProxyKind};

    fn node(namespace: &str, service_account: &str) -> NodeInfo {
        NodeInfo {
            kind: ProxyKind::Sidecar,
            ip: [10, 0, 0, 1].into(),
            pod_name: "reviews-v1-0".into(),
            namespace: namespace.into(),
            service_account: service_account.into(),
            workload_name: "reviews-v1".into(),
            labels: Default::default(),
            interception: Interception::None,
            app_ports: Default::default(),
            outbound_port: 15001,
            locality: Default::default(),
        }
    }

    fn caller() -> Caller {
        Caller {
            namespace: "default".into(),
            service_account: "bookinfo-reviews".into(),
        }
    }

    #[test]
    fn a_node_of_the_callers_identity_is_served() {
        assert!(check_node(&caller(), &node("default", "bookinfo-reviews")).is_ok());
        assert!(check_node(&caller(), &node("default", "")).is_ok());
    }

    #[test]
    fn a_node_claiming_another_namespace_or_account_is_refused() {
        for claimed in [node("prod", "bookinfo-reviews"), node("default", "admin")] {
            let status = check_node(&caller(), &claimed).unwrap_err();
            assert_eq!(status.code(), tonic::Code::PermissionDenied);
            assert!(status.message().contains("ns/default/sa/bookinfo-reviews"));
        }
    }
}
