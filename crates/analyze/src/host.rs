//! Host names as Istio resolves and compares them, and `exportTo`: shared
//! with the translator through `trellis_api`.

pub use trellis_api::host::{overlaps, resolve, service_fqdn};

/// Whether a resource exported with `export_to` (from `owner_namespace`) is
/// visible in `namespace`.
pub fn visible(export_to: &[String], owner_namespace: &str, namespace: &str) -> bool {
    trellis_api::exported_to(export_to, owner_namespace, namespace)
}
