//! The containers and volumes injection adds, as Istio's sidecar template
//! builds them, with `trellis iptables` and `trellis proxy` in place of
//! istio-iptables and pilot-agent.

use serde_json::{Map, Value, json};

use crate::config::InjectConfig;
use crate::names::*;
use crate::selection::text;

/// The proxy's UID and GID; capture exempts its traffic.
pub const PROXY_UID: u32 = 1337;
pub const OUTBOUND_CAPTURE_PORT: u16 = 15001;
pub const INBOUND_CAPTURE_PORT: u16 = 15006;
pub const STATUS_PORT: u16 = 15020;
pub const HEALTH_PORT: u16 = 15021;
pub const PROMETHEUS_PORT_NUMBER: u16 = 15090;

/// Where the proxy finds its token and the mesh root certificate.
const TOKEN_DIR: &str = "/var/run/secrets/tokens";
const ROOT_CERT_DIR: &str = "/var/run/secrets/istio";
/// The token's audience the CA expects, and its lifetime (Istio's values).
const TOKEN_AUDIENCE: &str = "istio-ca";
const TOKEN_SECONDS: u32 = 43_200;

/// The volumes injection adds, in order: (name, volume source, mount path).
pub fn volumes() -> Vec<(&'static str, Value, &'static str)> {
    vec![
        (
            "istio-envoy",
            json!({"emptyDir": {"medium": "Memory"}}),
            "/etc/istio/proxy",
        ),
        ("istio-data", json!({"emptyDir": {}}), "/var/lib/istio/data"),
        (
            "istio-podinfo",
            json!({"downwardAPI": {"items": [
                {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
                {"path": "annotations", "fieldRef": {"fieldPath": "metadata.annotations"}},
            ]}}),
            "/etc/istio/pod",
        ),
        (
            "istio-token",
            json!({"projected": {"sources": [{"serviceAccountToken": {
                "audience": TOKEN_AUDIENCE,
                "expirationSeconds": TOKEN_SECONDS,
                "path": "istio-token",
            }}]}}),
            TOKEN_DIR,
        ),
        (
            "istiod-ca-cert",
            json!({"configMap": {"name": "istio-ca-root-cert"}}),
            ROOT_CERT_DIR,
        ),
    ]
}

/// Pod volume objects (`{"name": ..., <source>}`).
pub fn volume_objects() -> Vec<Value> {
    volumes()
        .into_iter()
        .map(|(name, mut source, _)| {
            source["name"] = Value::from(name);
            source
        })
        .collect()
}

/// The `istio-init` container: `trellis iptables` with Istio's arguments,
/// adjusted by the pod's `traffic.sidecar.istio.io/*` annotations.
pub fn init_container(annotations: &Map<String, Value>, image: &str) -> Value {
    json!({
        "name": INIT_CONTAINER,
        "image": image,
        "command": ["trellis"],
        "args": iptables_args(annotations),
        "resources": {
            "requests": {"cpu": "10m", "memory": "10Mi"},
            "limits": {"cpu": "2000m", "memory": "1024Mi"},
        },
        "securityContext": {
            "allowPrivilegeEscalation": false,
            "capabilities": {"add": ["NET_ADMIN", "NET_RAW"], "drop": ["ALL"]},
            "privileged": false,
            "readOnlyRootFilesystem": false,
            "runAsGroup": 0,
            "runAsNonRoot": false,
            "runAsUser": 0,
        },
    })
}

fn iptables_args(annotations: &Map<String, Value>) -> Vec<String> {
    let annotation =
        |key: &str, default: &str| text(annotations, key).unwrap_or(default).to_owned();
    let mut local_exclude = format!("{PROMETHEUS_PORT_NUMBER},{HEALTH_PORT},{STATUS_PORT}");
    if let Some(excluded) = text(annotations, EXCLUDE_INBOUND_PORTS).filter(|p| !p.is_empty()) {
        local_exclude = format!("{local_exclude},{excluded}");
    }
    let mut args = vec![
        "iptables".to_owned(),
        "-p".to_owned(),
        OUTBOUND_CAPTURE_PORT.to_string(),
        "-z".to_owned(),
        INBOUND_CAPTURE_PORT.to_string(),
        "-u".to_owned(),
        PROXY_UID.to_string(),
        "-m".to_owned(),
        interception_mode(annotations).to_owned(),
        "-i".to_owned(),
        annotation(INCLUDE_OUTBOUND_IP_RANGES, "*"),
        "-x".to_owned(),
        annotation(EXCLUDE_OUTBOUND_IP_RANGES, ""),
        "-b".to_owned(),
        annotation(INCLUDE_INBOUND_PORTS, "*"),
        "-d".to_owned(),
        local_exclude,
    ];
    // Istio passes these only when the pod sets them.
    for (flag, key) in [
        ("-q", INCLUDE_OUTBOUND_PORTS),
        ("-o", EXCLUDE_OUTBOUND_PORTS),
    ] {
        if let Some(ports) = text(annotations, key).filter(|p| !p.is_empty()) {
            args.extend([flag.to_owned(), ports.to_owned()]);
        }
    }
    args
}

fn interception_mode(annotations: &Map<String, Value>) -> &str {
    text(annotations, INTERCEPTION_MODE).unwrap_or("REDIRECT")
}

/// Istio's defaults for the proxy (requests 100m/128Mi, limits 2/1Gi),
/// each overridable per pod. The short-lived init container keeps its own
/// fixed small request.
fn proxy_resources(annotations: &Map<String, Value>) -> Value {
    let pick = |key: &str, default: &str| text(annotations, key).unwrap_or(default).to_owned();
    json!({
        "requests": {"cpu": pick(PROXY_CPU, "100m"), "memory": pick(PROXY_MEMORY, "128Mi")},
        "limits": {"cpu": pick(PROXY_CPU_LIMIT, "2000m"), "memory": pick(PROXY_MEMORY_LIMIT, "1024Mi")},
    })
}

/// What the proxy container is told about the pod it serves.
pub struct ProxyContext<'a> {
    pub annotations: &'a Map<String, Value>,
    /// The pod's labels once injection has added its own.
    pub labels: &'a Map<String, Value>,
    pub workload_name: &'a str,
    pub app_containers: &'a [String],
    /// The app's own Prometheus annotations, which the merged metrics port
    /// (15020) scrapes in their place.
    pub app_prometheus: Option<Value>,
}

/// The `istio-proxy` container running `trellis proxy` as UID/GID 1337.
pub fn proxy_container(context: &ProxyContext<'_>, config: &InjectConfig, image: &str) -> Value {
    let health = json!({"httpGet": {"path": "/healthz/ready", "port": HEALTH_PORT}});
    let mut readiness = health.clone();
    merge(
        &mut readiness,
        json!({"initialDelaySeconds": 0, "periodSeconds": 15, "timeoutSeconds": 3, "failureThreshold": 4}),
    );
    let mut startup = health;
    merge(
        &mut startup,
        json!({"initialDelaySeconds": 0, "periodSeconds": 1, "timeoutSeconds": 3, "failureThreshold": 600}),
    );
    json!({
        "name": PROXY_CONTAINER,
        "image": image,
        "command": ["trellis"],
        "args": proxy_args(context, config),
        "env": proxy_env(context, config),
        "ports": [{"containerPort": PROMETHEUS_PORT_NUMBER, "name": "http-envoy-prom", "protocol": "TCP"}],
        "readinessProbe": readiness,
        "startupProbe": startup,
        "resources": proxy_resources(context.annotations),
        "securityContext": {
            "allowPrivilegeEscalation": false,
            "capabilities": {"drop": ["ALL"]},
            "privileged": false,
            "readOnlyRootFilesystem": true,
            "runAsGroup": PROXY_UID,
            "runAsNonRoot": true,
            "runAsUser": PROXY_UID,
        },
        "volumeMounts": volumes()
            .into_iter()
            .map(|(name, _, path)| json!({"name": name, "mountPath": path}))
            .collect::<Vec<_>>(),
    })
}

fn merge(target: &mut Value, fields: Value) {
    if let (Value::Object(target), Value::Object(fields)) = (target, fields) {
        target.extend(fields);
    }
}

/// `trellis proxy` flags; `$(VAR)` is expanded by the kubelet from the
/// container's environment (the downward API values below).
fn proxy_args(context: &ProxyContext<'_>, config: &InjectConfig) -> Vec<String> {
    let mut args: Vec<String> = [
        "proxy",
        "--discovery-address",
        &config.discovery_address,
        "--root-cert",
        &format!("{ROOT_CERT_DIR}/root-cert.pem"),
        "--token-file",
        &format!("{TOKEN_DIR}/istio-token"),
        "--ip",
        "$(INSTANCE_IP)",
        "--namespace",
        "$(POD_NAMESPACE)",
        "--service-account",
        "$(SERVICE_ACCOUNT)",
        "--pod-name",
        "$(POD_NAME)",
        "--workload-name",
        context.workload_name,
        "--trust-domain",
        &config.trust_domain,
    ]
    .map(str::to_owned)
    .into();
    for (key, value) in context.labels {
        if let Some(value) = value.as_str() {
            args.extend(["--label".to_owned(), format!("{key}={value}")]);
        }
    }
    args
}

fn proxy_env(context: &ProxyContext<'_>, config: &InjectConfig) -> Vec<Value> {
    let field = |name: &str, path: &str| json!({"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}});
    let value = |name: &str, value: &str| json!({"name": name, "value": value});
    let mut env = vec![
        field("POD_NAME", "metadata.name"),
        field("POD_NAMESPACE", "metadata.namespace"),
        field("INSTANCE_IP", "status.podIP"),
        field("SERVICE_ACCOUNT", "spec.serviceAccountName"),
        field("HOST_IP", "status.hostIP"),
        json!({"name": "ISTIO_CPU_LIMIT", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}}),
        value("CA_ADDR", &config.discovery_address),
        value("TRUST_DOMAIN", &config.trust_domain),
        value("ISTIO_META_WORKLOAD_NAME", context.workload_name),
        value(
            "ISTIO_META_APP_CONTAINERS",
            &context.app_containers.join(","),
        ),
        value(
            "ISTIO_META_INTERCEPTION_MODE",
            interception_mode(context.annotations),
        ),
    ];
    if let Some(prometheus) = &context.app_prometheus {
        env.push(value(
            "ISTIO_PROMETHEUS_ANNOTATIONS",
            &prometheus.to_string(),
        ));
    }
    env
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::selection::tests::labels;

    #[test]
    fn default_capture_arguments_are_istios() {
        assert_eq!(
            iptables_args(&Map::new()).join(" "),
            "iptables -p 15001 -z 15006 -u 1337 -m REDIRECT -i * -x  -b * -d 15090,15021,15020"
        );
    }

    #[test]
    fn traffic_annotations_adjust_capture() {
        let annotations = labels(&[
            (EXCLUDE_OUTBOUND_IP_RANGES, "10.0.0.0/8"),
            (INCLUDE_INBOUND_PORTS, "9080"),
            (EXCLUDE_INBOUND_PORTS, "8081"),
            (EXCLUDE_OUTBOUND_PORTS, "3306"),
            (INCLUDE_OUTBOUND_PORTS, "443"),
            (INTERCEPTION_MODE, "TPROXY"),
        ]);
        assert_eq!(
            iptables_args(&annotations).join(" "),
            "iptables -p 15001 -z 15006 -u 1337 -m TPROXY -i * -x 10.0.0.0/8 -b 9080 \
             -d 15090,15021,15020,8081 -q 443 -o 3306"
        );
    }

    #[test]
    fn resource_annotations_override_defaults() {
        let annotations = labels(&[(PROXY_CPU, "250m"), (PROXY_MEMORY_LIMIT, "512Mi")]);
        assert_eq!(
            proxy_resources(&annotations),
            json!({"requests": {"cpu": "250m", "memory": "128Mi"}, "limits": {"cpu": "2000m", "memory": "512Mi"}})
        );
    }
}
