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

/// Envoy metadata naming the Istio resource behind an xDS resource, as
/// Istio writes it (`istio.config`:
/// `/apis/networking.istio.io/v1/namespaces/default/virtual-service/reviews`),
/// so that `proxy-config` and dashboards can say where a route or cluster
/// came from.
pub fn istio_config_metadata<T>(
    resource: &trellis_api::Resource<T>,
) -> envoy_types::pb::envoy::config::core::v3::Metadata {
    use envoy_types::pb::google::protobuf::{Struct, Value, value::Kind};
    let path = format!(
        "/apis/{}/namespaces/{}/{}/{}",
        resource.api_version,
        resource.namespace(),
        kebab_case(&resource.kind),
        resource.meta.name
    );
    let fields = [(
        "config".to_string(),
        Value {
            kind: Some(Kind::StringValue(path)),
        },
    )]
    .into();
    envoy_types::pb::envoy::config::core::v3::Metadata {
        filter_metadata: [("istio".to_string(), Struct { fields })].into(),
        ..Default::default()
    }
}

/// `VirtualService` -> `virtual-service`.
fn kebab_case(kind: &str) -> String {
    let mut out = String::with_capacity(kind.len() + 4);
    for (i, c) in kind.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('-');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn kinds_become_istios_path_segments() {
        assert_eq!(super::kebab_case("VirtualService"), "virtual-service");
        assert_eq!(super::kebab_case("DestinationRule"), "destination-rule");
    }
}
