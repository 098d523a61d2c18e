//! The label and annotation names Istio users already put on their
//! namespaces and pods, and the names the injector writes.

/// Namespace label: `enabled` or `disabled` injection by the default revision.
pub const NAMESPACE_INJECTION_LABEL: &str = "istio-injection";
/// Namespace or pod label naming the revision (control plane) to inject.
pub const REVISION_LABEL: &str = "istio.io/rev";
/// Pod label (or, deprecated, annotation) opting a pod in or out.
pub const POD_INJECT: &str = "sidecar.istio.io/inject";
/// Pod annotation recording what was injected; its presence means "done".
pub const STATUS_ANNOTATION: &str = "sidecar.istio.io/status";

/// Pod labels the injector adds.
pub const TLS_MODE_LABEL: &str = "security.istio.io/tlsMode";
pub const CANONICAL_NAME_LABEL: &str = "service.istio.io/canonical-name";
pub const CANONICAL_REVISION_LABEL: &str = "service.istio.io/canonical-revision";

/// Per-pod capture overrides, read into `trellis iptables` flags.
pub const INCLUDE_OUTBOUND_IP_RANGES: &str = "traffic.sidecar.istio.io/includeOutboundIPRanges";
pub const EXCLUDE_OUTBOUND_IP_RANGES: &str = "traffic.sidecar.istio.io/excludeOutboundIPRanges";
pub const INCLUDE_INBOUND_PORTS: &str = "traffic.sidecar.istio.io/includeInboundPorts";
pub const EXCLUDE_INBOUND_PORTS: &str = "traffic.sidecar.istio.io/excludeInboundPorts";
pub const INCLUDE_OUTBOUND_PORTS: &str = "traffic.sidecar.istio.io/includeOutboundPorts";
pub const EXCLUDE_OUTBOUND_PORTS: &str = "traffic.sidecar.istio.io/excludeOutboundPorts";
pub const INTERCEPTION_MODE: &str = "sidecar.istio.io/interceptionMode";

/// Per-pod proxy overrides.
pub const PROXY_IMAGE: &str = "sidecar.istio.io/proxyImage";
pub const PROXY_CPU: &str = "sidecar.istio.io/proxyCPU";
pub const PROXY_MEMORY: &str = "sidecar.istio.io/proxyMemory";
pub const PROXY_CPU_LIMIT: &str = "sidecar.istio.io/proxyCPULimit";
pub const PROXY_MEMORY_LIMIT: &str = "sidecar.istio.io/proxyMemoryLimit";
/// ProxyConfig overrides as YAML; `holdApplicationUntilProxyStarts` is read.
pub const PROXY_CONFIG: &str = "proxy.istio.io/config";

/// Prometheus scrape annotations, pointed at the merged metrics port.
pub const PROMETHEUS_SCRAPE: &str = "prometheus.io/scrape";
pub const PROMETHEUS_PORT: &str = "prometheus.io/port";
pub const PROMETHEUS_PATH: &str = "prometheus.io/path";

/// Which container `kubectl logs`/`exec` pick when none is named.
pub const DEFAULT_CONTAINER: &str = "kubectl.kubernetes.io/default-container";
pub const DEFAULT_LOGS_CONTAINER: &str = "kubectl.kubernetes.io/default-logs-container";

/// Names of what the injector adds to the pod.
pub const INIT_CONTAINER: &str = "istio-init";
pub const PROXY_CONTAINER: &str = "istio-proxy";
