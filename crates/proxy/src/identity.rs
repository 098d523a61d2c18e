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
use trellis_ca::{SpiffeId, TrustDomains, WorkloadCertificate};

/// ALPN values a sidecar accepts on its mTLS port: the mesh's own (which
/// also say which HTTP version follows) and plain HTTP ones.
pub const SERVER_ALPN: [&[u8]; 5] = [b"istio-h2", b"istio-http/1.1", b"istio", b"h2", b"http/1.1"];
pub const MESH_ALPN_H2: &[u8] = b"istio-h2";
pub const MESH_ALPN_HTTP11: &[u8] = b"istio-http/1.1";

const CERT_TTL: Duration = Duration::from_secs(24 * 3600);
const RETRY_DELAY: Duration = Duration::from_secs(1);
/// Renew at half the remaining lifetime, as Istio's agent does
/// (`SECRET_GRACE_PERIOD_RATIO` 0.5) ...
const RENEW_AT: f64 = 0.5;
/// ... give or take up to 1% of it (`SECRET_GRACE_PERIOD_RATIO_JITTER`
/// 0.01), so that workloads started together do not all hit the CA at once.
const RENEW_JITTER: f64 = 0.01;

/// Client configs by the peers they accept and the ALPN they offer.
type ClientConfigs = HashMap<(Vec<SpiffeId>, &'static [u8]), Arc<ClientConfig>>;

/// TLS material derived from one certificate.
pub struct Credentials {
    pub certificate: WorkloadCertificate,
    pub server: Arc<ServerConfig>,
    /// Peers of these trust domains are accepted, on both sides.
    trust: TrustDomains,
    clients: Mutex<ClientConfigs>,
}

impl Credentials {
    fn new(
        certificate: WorkloadCertificate,
        trust: TrustDomains,
    ) -> Result<Self, trellis_ca::CaError> {
        let alpn = SERVER_ALPN.iter().map(|p| p.to_vec()).collect();
        let server = trellis_ca::server_config_trusting(&certificate, &trust, alpn)?;
        Ok(Credentials {
            certificate,
            server,
            trust,
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
        let config = trellis_ca::client_config_trusting(
            &self.certificate,
            &self.trust,
            peers.to_vec(),
            vec![alpn.to_vec()],
        )?;
        cache.insert(key, config.clone());
        Ok(config)
    }
}

/// Holds the current credentials; `None` until the first certificate.
pub struct Identity {
    pub id: SpiffeId,
    trust: TrustDomains,
    current: ArcSwapOption<Credentials>,
    ready: watch::Sender<bool>,
}

impl Identity {
    /// An identity that accepts peers of its own trust domain only.
    pub fn new(id: SpiffeId) -> Arc<Self> {
        let trust = TrustDomains::only(&id.trust_domain);
        Self::trusting(id, trust)
    }

    /// An identity that accepts peers of every trust domain in `trust` (the
    /// mesh's and its aliases).
    pub fn trusting(id: SpiffeId, trust: TrustDomains) -> Arc<Self> {
        Arc::new(Identity {
            id,
            trust,
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
        self.current.store(Some(Arc::new(Credentials::new(
            certificate,
            self.trust.clone(),
        )?)));
        self.ready.send_replace(true);
        Ok(())
    }

    /// Fetches the certificate and renews it at about half its lifetime,
    /// forever. While the CA is unreachable the current certificate stays in
    /// use. A renewal only swaps the configs for new handshakes: open
    /// connections keep the session they negotiated.
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
    jittered_delay(remaining, rand::random_range(-RENEW_JITTER..=RENEW_JITTER))
}

/// When to renew a certificate with `remaining` lifetime, `jitter` being a
/// fraction of it in `[-RENEW_JITTER, RENEW_JITTER]`.
fn jittered_delay(remaining: Duration, jitter: f64) -> Duration {
    remaining.mul_f64(RENEW_AT + jitter).max(RETRY_DELAY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renews_at_half_the_lifetime_within_the_jitter() {
        let day = Duration::from_secs(24 * 3600);
        assert_eq!(jittered_delay(day, 0.0), Duration::from_secs(12 * 3600));
        let earliest = jittered_delay(day, -RENEW_JITTER);
        let latest = jittered_delay(day, RENEW_JITTER);
        assert_eq!(earliest, day.mul_f64(0.49));
        assert_eq!(latest, day.mul_f64(0.51));
        for _ in 0..100 {
            let delay = renewal_delay(SystemTime::now() + day);
            assert!(
                delay >= earliest - Duration::from_secs(1) && delay <= latest,
                "{delay:?}"
            );
        }
    }

    #[test]
    fn an_expired_certificate_is_renewed_after_the_retry_delay() {
        assert_eq!(
            renewal_delay(SystemTime::now() - Duration::from_secs(5)),
            RETRY_DELAY
        );
        assert_eq!(jittered_delay(Duration::ZERO, RENEW_JITTER), RETRY_DELAY);
    }
}
