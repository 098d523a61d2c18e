//! Protocol sniffing, as Istio does it for ports whose protocol nobody
//! declared (no `http-`/`tcp-` name prefix, no `appProtocol`): the
//! http_inspector listener filter tells plaintext HTTP apart, and a
//! sidecar's mTLS says what it carries in its ALPN; a chain for those
//! application protocols leads to the HTTP connection manager, and one
//! without to tcp_proxy.
//!
//! Decision where Istio leaves room: Istio's `protocolDetectionTimeout`
//! is off by default, so a server-first protocol (the client waits for the
//! server to speak) on such a port, or with PERMISSIVE mTLS, waits forever.
//! Here listeners that inspect give up after [`PROTOCOL_DETECTION_TIMEOUT`]
//! and serve the connection as opaque TCP. A slow HTTP client that lands on
//! the TCP chain meets the TCP form of AuthorizationPolicy, which is never
//! more permissive than the HTTP form.

use std::time::Duration;

use envoy_types::pb::envoy::config::listener::v3::{Listener, ListenerFilter, listener_filter};
use envoy_types::pb::envoy::extensions::filters::listener::http_inspector::v3::HttpInspector;
use envoy_types::util::pack_any;

use crate::build::duration;

/// What http_inspector reports for plaintext HTTP.
pub const PLAINTEXT_HTTP_ALPN: [&str; 3] = ["http/1.0", "http/1.1", "h2c"];
/// What a sidecar offers when it sends HTTP over mesh mTLS.
pub const MTLS_HTTP_ALPN: [&str; 3] = ["istio-http/1.0", "istio-http/1.1", "istio-h2"];
/// How long a listener waits for the first bytes before serving the
/// connection as opaque TCP.
pub const PROTOCOL_DETECTION_TIMEOUT: Duration = Duration::from_secs(5);

pub fn http_inspector() -> ListenerFilter {
    ListenerFilter {
        name: "envoy.filters.listener.http_inspector".into(),
        config_type: Some(listener_filter::ConfigType::TypedConfig(pack_any(
            HttpInspector::default(),
        ))),
        ..Default::default()
    }
}

/// `listener` waits for the first bytes at most the detection timeout,
/// then goes on without them.
pub fn detection_timeout(listener: Listener) -> Listener {
    Listener {
        listener_filters_timeout: Some(duration(PROTOCOL_DETECTION_TIMEOUT)),
        continue_on_listener_filters_timeout: true,
        ..listener
    }
}
