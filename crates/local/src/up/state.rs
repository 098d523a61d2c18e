//! `up.json`: what `trellis up` started and where, for tests and tools.
//! Tests read this file; they never scrape logs for addresses.

use std::collections::BTreeMap;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The file name of the state document inside the state directory.
pub const UP_JSON: &str = "up.json";

/// The current `schemaVersion`; bumped on incompatible changes.
pub const SCHEMA_VERSION: u32 = 1;

/// The document `trellis up` writes to `STATE/up.json` once every process
/// is started (before readiness, so a slow start can be inspected). All
/// keys are camelCase; paths are absolute.
///
/// ```json
/// {
///   "schemaVersion": 1,
///   "pid": 4242,                              // the `trellis up` process
///   "stateDir": "/tmp/trellis-up-x1y2",
///   "configDir": "/tmp/trellis-up-x1y2/config", // watched: edit to reroute
///   "rootCert": "/tmp/trellis-up-x1y2/root-cert.pem",
///   "addressRange": "127.42.0.0/16",
///   "controlPlane": {
///     "pid": 4243,
///     "address": "127.42.0.1",
///     "xdsAddress": "127.42.0.1:15010",        // plaintext xDS
///     "secureAddress": "127.42.0.1:15012",     // xDS + CA over TLS
///     "monitoringAddress": "127.42.0.1:15014",
///     "caDir": "/home/me/.local/share/trellis/ca",
///     "workloadTokens": "/tmp/trellis-up-x1y2/workload-tokens.json",
///     "command": ["/path/to/trellis", "control-plane", "--config-dir", "..."]
///   },
///   "services": [
///     {"name": "productpage", "namespace": "default",
///      "url": "http://127.42.0.7:9080/productpage"}
///   ],
///   "network": null,                         // with --netns: {"bridge": "trellis-k3x9q2",
///                                             //   "bridgeAddress": "10.42.0.1", "serviceRange": "10.96.0.0/16"}
///   "gateways": [{                            // Istio's ingress gateway
///     "name": "istio-ingressgateway",
///     "namespace": "istio-system",
///     "pod": "istio-ingressgateway-0",
///     "address": "127.42.0.8",
///     "ports": [{"port": 80, "listenPort": 10080,  // Gateway port -> where it listens
///                "protocol": "HTTP"}],              // or "HTTPS"
///     "url": "http://127.42.0.8:10080/productpage"  // null without HTTP servers
///   }],
///   "workloads": [{
///     "name": "reviews-v2",                   // the Deployment
///     "namespace": "default",
///     "serviceAccount": "bookinfo-reviews",
///     "pod": "reviews-v2-0",
///     "labels": {"app": "reviews", "version": "v2"},
///     "services": ["reviews"],
///     "address": "127.42.0.5",
///     "inboundPorts": [9080],                 // owned by the sidecar
///     "appPorts": {"9080": 38211},            // container port -> app's private port
///     "outboundPort": 15001,                  // the app's HTTP proxy
///     "adminPort": 15000,
///     "statsPort": 15090,                     // Prometheus /stats/prometheus
///     "healthPort": 15021,                    // /healthz/ready
///     "proxyType": "sidecar",                 // "router" for a gateway
///     "tokenFile": "/tmp/trellis-up-x1y2/tokens/default.reviews-v2-0.token",
///     "workloadEntry": "/tmp/trellis-up-x1y2/config/workload-default.reviews-v2-0.yaml",
///     "netns": null,                          // with --netns: "trellis-k3x9q2-reviews-v2-0"
///     "proxyPid": 4250,
///     "appPids": [4249]                       // one demo app per container
///   }]
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpState {
    pub schema_version: u32,
    pub pid: u32,
    pub state_dir: PathBuf,
    pub config_dir: PathBuf,
    pub root_cert: PathBuf,
    pub address_range: String,
    pub control_plane: ControlPlaneState,
    pub services: Vec<ServiceState>,
    /// The bridge joining the pods' namespaces, with `--netns`.
    #[serde(default)]
    pub network: Option<NetworkState>,
    #[serde(default)]
    pub gateways: Vec<GatewayState>,
    pub workloads: Vec<WorkloadState>,
}

/// `up --netns`'s network: a bridge in the host's namespace (the control
/// plane listens on its address) and the range of Services' cluster IPs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkState {
    pub bridge: String,
    pub bridge_address: Ipv4Addr,
    pub service_range: String,
}

/// A gateway workload (also listed in `workloads`) and where it serves
/// its Gateways' HTTP servers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GatewayState {
    pub name: String,
    pub namespace: String,
    pub pod: String,
    pub address: Ipv4Addr,
    /// The HTTP and HTTPS server ports of the Gateways selecting it when
    /// `up` started.
    pub ports: Vec<GatewayPort>,
    /// Its first HTTP port (Bookinfo's product page when Bookinfo runs).
    pub url: Option<String>,
    /// Where it reads the certificates HTTPS servers name
    /// (`credentialName`): `DIR/NAME/tls.crt` and `DIR/NAME/tls.key`.
    pub credentials_dir: PathBuf,
}

/// A Gateway server port, and the port the gateway binds for it (the same
/// unless below 1024, which needs root: then port + 10000).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GatewayPort {
    pub port: u16,
    pub listen_port: u16,
    pub protocol: GatewayProtocol,
}

/// What a gateway port serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum GatewayProtocol {
    Http,
    /// TLS terminated with the server's `credentialName`.
    Https,
}

/// Which proxy runs for a workload (`trellis proxy --type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProxyRole {
    /// Beside the workload's apps.
    #[default]
    Sidecar,
    /// A gateway: the proxy alone, serving Gateway servers.
    Router,
}

/// The control plane process and its listeners.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ControlPlaneState {
    pub pid: u32,
    pub address: Ipv4Addr,
    pub xds_address: SocketAddr,
    pub secure_address: SocketAddr,
    pub monitoring_address: SocketAddr,
    pub ca_dir: PathBuf,
    pub workload_tokens: PathBuf,
    /// The full argv (program first), to restart it exactly as `up` did.
    pub command: Vec<String>,
}

impl ControlPlaneState {
    /// The mesh dashboard, served on the monitoring port.
    pub fn dashboard_url(&self) -> String {
        format!("http://{}/dashboard/", self.monitoring_address)
    }
}

/// Where to reach one Service: its first workload's sidecar.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceState {
    pub name: String,
    pub namespace: String,
    pub url: String,
}

/// One workload replica: its identity, address, ports and processes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadState {
    /// The Deployment's name.
    pub name: String,
    pub namespace: String,
    pub service_account: String,
    pub pod: String,
    pub labels: BTreeMap<String, String>,
    pub services: Vec<String>,
    pub address: Ipv4Addr,
    pub inbound_ports: Vec<u16>,
    pub app_ports: BTreeMap<u16, u16>,
    pub outbound_port: u16,
    pub admin_port: u16,
    pub stats_port: u16,
    pub health_port: u16,
    #[serde(default)]
    pub proxy_type: ProxyRole,
    pub token_file: PathBuf,
    pub workload_entry: PathBuf,
    /// The network namespace it runs in (`--netns`); its hosts file is
    /// `/etc/netns/NETNS/hosts`.
    #[serde(default)]
    pub netns: Option<String>,
    pub proxy_pid: u32,
    pub app_pids: Vec<u32>,
}

impl WorkloadState {
    /// The sidecar's outbound HTTP proxy, as the app's `HTTP_PROXY`.
    pub fn outbound_proxy_url(&self) -> String {
        format!("http://{}:{}", self.address, self.outbound_port)
    }
}

impl UpState {
    /// Reads `up.json` from a state directory.
    pub fn read(state_dir: &Path) -> io::Result<UpState> {
        let text = std::fs::read(state_dir.join(UP_JSON))?;
        serde_json::from_slice(&text).map_err(io::Error::other)
    }

    /// Writes `up.json` atomically (a reader sees the old or the new one).
    pub fn write(&self) -> io::Result<()> {
        let path = self.state_dir.join(UP_JSON);
        let temporary = self.state_dir.join(format!(".{UP_JSON}.tmp"));
        let mut json = serde_json::to_vec_pretty(self).map_err(io::Error::other)?;
        json.push(b'\n');
        std::fs::write(&temporary, json)?;
        std::fs::rename(&temporary, path)
    }

    pub fn workload(&self, pod: &str) -> Option<&WorkloadState> {
        self.workloads.iter().find(|w| w.pod == pod)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(state_dir: &Path) -> UpState {
        let address = Ipv4Addr::new(127, 42, 0, 1);
        UpState {
            schema_version: SCHEMA_VERSION,
            pid: 10,
            state_dir: state_dir.to_path_buf(),
            config_dir: state_dir.join("config"),
            root_cert: state_dir.join("root-cert.pem"),
            address_range: "127.42.0.0/16".into(),
            control_plane: ControlPlaneState {
                pid: 11,
                address,
                xds_address: SocketAddr::new(address.into(), 15010),
                secure_address: SocketAddr::new(address.into(), 15012),
                monitoring_address: SocketAddr::new(address.into(), 15014),
                ca_dir: state_dir.join("ca"),
                workload_tokens: state_dir.join("workload-tokens.json"),
                command: vec!["trellis".into(), "control-plane".into()],
            },
            services: vec![ServiceState {
                name: "productpage".into(),
                namespace: "default".into(),
                url: "http://127.42.0.2:9080/productpage".into(),
            }],
            network: None,
            gateways: vec![GatewayState {
                name: "istio-ingressgateway".into(),
                namespace: "istio-system".into(),
                pod: "istio-ingressgateway-0".into(),
                address: Ipv4Addr::new(127, 42, 0, 3),
                ports: vec![GatewayPort {
                    port: 80,
                    listen_port: 10080,
                    protocol: GatewayProtocol::Http,
                }],
                url: Some("http://127.42.0.3:10080/".into()),
                credentials_dir: state_dir.join("config/credentials"),
            }],
            workloads: vec![WorkloadState {
                name: "productpage-v1".into(),
                namespace: "default".into(),
                service_account: "bookinfo-productpage".into(),
                pod: "productpage-v1-0".into(),
                labels: BTreeMap::from([("app".into(), "productpage".into())]),
                services: vec!["productpage".into()],
                address: Ipv4Addr::new(127, 42, 0, 2),
                inbound_ports: vec![9080],
                app_ports: BTreeMap::from([(9080, 40001)]),
                outbound_port: 15001,
                admin_port: 15000,
                stats_port: 15090,
                health_port: 15021,
                proxy_type: ProxyRole::Sidecar,
                token_file: state_dir.join("tokens/default.productpage-v1-0.token"),
                workload_entry: state_dir.join("config/workload-default.productpage-v1-0.yaml"),
                netns: None,
                proxy_pid: 13,
                app_pids: vec![12],
            }],
        }
    }

    #[test]
    fn round_trips_through_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let state = sample(dir.path());
        state.write().unwrap();
        assert_eq!(UpState::read(dir.path()).unwrap(), state);
        assert!(!dir.path().join(".up.json.tmp").exists());
    }

    #[test]
    fn uses_the_documented_keys() {
        let json = serde_json::to_value(sample(Path::new("/s"))).unwrap();
        assert_eq!(json["controlPlane"]["secureAddress"], "127.42.0.1:15012");
        assert_eq!(json["workloads"][0]["appPorts"]["9080"], 40001);
        assert_eq!(
            json["workloads"][0]["serviceAccount"],
            "bookinfo-productpage"
        );
        assert_eq!(json["configDir"], "/s/config");
        assert_eq!(json["gateways"][0]["ports"][0]["listenPort"], 10080);
        assert_eq!(json["workloads"][0]["proxyType"], "sidecar");
        let workload = &sample(Path::new("/s")).workloads[0];
        assert_eq!(workload.outbound_proxy_url(), "http://127.42.0.2:15001");
    }
}
