//! The workload's mesh identity: obtains its certificate from the CA,
//! renews it before it expires, and hands out TLS configs built from the
//! current certificate (cached, so handshakes never rebuild them).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwapOption;
use rustls::{ClientConfig, ServerConfig};
use tokio::sync::watch;
use tonic::transport::Channel;
use trellis_ca::{SpiffeId, WorkloadCertificate};

/// ALPN values a sidecar accepts on its mTLS port: the mesh's own (which
/// also say which HTTP version follows) and plain HTTP ones.
pub const SERVER_ALPN: [&[u8]; 5] = [b"istio-h2", b"istio-http/1.1", b"istio", b"h2", b"http/1.1"];
pub const MESH_ALPN_H2: &[u8] = b"istio-h2";
pub const MESH_ALPN_HTTP11: &[u8] = b"istio-http/1.1";

const CERT_TTL: Duration = Duration::from_secs(24 * 3600);
const RETRY_DELAY: Duration = Duration::from_secs(1);

/// Client configs by the peers they accept and the ALPN they offer.
type ClientConfigs = HashMap<(Vec<SpiffeId>, &'static [u8]), Arc<ClientConfig>>;

/// TLS material derived from one certificate.
pub struct Credentials {
    pub certificate: WorkloadCertificate,
    pub server: Arc<ServerConfig>,
    clients: Mutex<ClientConfigs>,
}

impl Credentials {
    fn new(certificate: WorkloadCertificate) -> Result<Self, trellis_ca::CaError> {
        let alpn = SERVER_ALPN.iter().map(|p| p.to_vec()).collect();
        let server = trellis_ca::server_config(&certificate, alpn)?;
        Ok(Credentials {
            certificate,
            server,
            clients: Mutex::default(),
        })
    }

    /// A client config that accepts only `peers` and offers `alpn`.
    pub fn client(
        &self,
        peers: &[SpiffeId],
        alpn: &'static [u8],
    ) -> Result<Arc<ClientConfig>, trellis_ca::CaError> {
        let mut cache = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        let key = (peers.to_vec(), alpn);
        if let Some(config) = cache.get(&key) {
            return Ok(config.clone());
        }
        let config =
            trellis_ca::client_config(&self.certificate, peers.to_vec(), vec![alpn.to_vec()])?;
        cache.insert(key, config.clone());
        Ok(config)
    }
}

/// Holds the current credentials; `None` until the first certificate.
pub struct Identity {
    pub id: SpiffeId,
    current: ArcSwapOption<Credentials>,
    ready: watch::Sender<bool>,
}

impl Identity {
    pub fn new(id: SpiffeId) -> Arc<Self> {
        Arc::new(Identity {
            id,
            current: ArcSwapOption::empty(),
            ready: watch::Sender::new(false),
        })
    }

    pub fn credentials(&self) -> Option<Arc<Credentials>> {
        self.current.load_full()
    }

    pub fn is_ready(&self) -> bool {
        *self.ready.borrow()
    }

    /// Installs a certificate (the CA loop calls this; tests may too).
    pub fn install(&self, certificate: WorkloadCertificate) -> Result<(), trellis_ca::CaError> {
        self.current
            .store(Some(Arc::new(Credentials::new(certificate)?)));
        self.ready.send_replace(true);
        Ok(())
    }

    /// Fetches the certificate and renews it at 80% of its lifetime, forever.
    /// While the CA is unreachable the current certificate stays in use.
    pub async fn run(self: Arc<Self>, ca: Channel, token: String, root_pem: String) {
        loop {
            let next = match trellis_ca::request_certificate(
                ca.clone(),
                &token,
                &self.id,
                &root_pem,
                CERT_TTL,
            )
            .await
            .and_then(|cert| {
                let renew_in = renewal_delay(cert.not_after);
                self.install(cert).map(|()| renew_in)
            }) {
                Ok(renew_in) => renew_in,
                Err(error) => {
                    tracing::warn!(%error, identity = %self.id, "cannot obtain a certificate; retrying");
                    RETRY_DELAY
                }
            };
            tokio::time::sleep(next).await;
        }
    }
}

fn renewal_delay(not_after: SystemTime) -> Duration {
    let remaining = not_after
        .duration_since(SystemTime::now())
        .unwrap_or(Duration::ZERO);
    (remaining * 4 / 5).max(RETRY_DELAY)
}
