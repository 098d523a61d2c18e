//! Istio's resource naming, which tools and dashboards parse.

/// `outbound|9080|v1|reviews.default.svc.cluster.local` (empty subset: `||`).
pub fn outbound_cluster_name(port: u16, subset: &str, host: &str) -> String {
    format!("outbound|{port}|{subset}|{host}")
}

/// `inbound|9080||reviews.default.svc.cluster.local`.
pub fn inbound_cluster_name(port: u16, host: &str) -> String {
    format!("inbound|{port}||{host}")
}

/// SNI of mesh mTLS connections: `outbound_.9080_.v1_.reviews.default.svc.cluster.local`.
pub fn outbound_sni(port: u16, subset: &str, host: &str) -> String {
    format!("outbound_.{port}_.{subset}_.{host}")
}

/// Route configuration of the explicit HTTP proxy listener (local mode).
pub const HTTP_PROXY_ROUTE: &str = "http_proxy";
/// Listener the app's outbound calls reach.
pub const VIRTUAL_OUTBOUND: &str = "virtualOutbound";
