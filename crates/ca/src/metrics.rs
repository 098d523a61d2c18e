//! The CA's metrics, with istiod's (Citadel's) names: certificate requests
//! and how each ended, and when the root and a plug-in CA's signing
//! certificate expire.

use std::time::SystemTime;

use prometheus_client::encoding::{EncodeLabelSet, EncodeMetric, LabelSetEncoder, MetricEncoder};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use trellis_metrics::IstioCounter;

use crate::authority::MeshCa;
use crate::error::CaError;

/// Istio's `error` label of `citadel_server_csr_sign_err_count`.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
struct SignError(&'static str);

impl EncodeLabelSet for SignError {
    fn encode(&self, encoder: &mut LabelSetEncoder<'_>) -> Result<(), std::fmt::Error> {
        [("error", self.0)].encode(encoder)
    }
}

/// Seconds from the moment of the scrape until `0`; negative once passed.
#[derive(Clone, Debug)]
struct SecondsUntil(SystemTime);

impl EncodeMetric for SecondsUntil {
    fn encode(&self, mut encoder: MetricEncoder<'_>) -> Result<(), std::fmt::Error> {
        let seconds = match self.0.duration_since(SystemTime::now()) {
            Ok(left) => left.as_secs_f64(),
            Err(passed) => -passed.duration().as_secs_f64(),
        };
        encoder.encode_gauge(&seconds)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Gauge
    }
}

/// When a certificate expires, as Istio's `..._expiry_timestamp` (Unix
/// seconds) and `..._expiry_seconds` (time left) gauges.
#[derive(Clone, Debug)]
struct Expiry {
    timestamp: Gauge,
    left: SecondsUntil,
}

impl Expiry {
    fn at(not_after: SystemTime) -> Expiry {
        let timestamp = Gauge::default();
        let unix = not_after
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |since| since.as_secs());
        timestamp.set(i64::try_from(unix).unwrap_or(i64::MAX));
        Expiry {
            timestamp,
            left: SecondsUntil(not_after),
        }
    }

    fn register(&self, registry: &mut Registry, name: &str, what: &str) {
        registry.register(
            format!("{name}_timestamp"),
            format!("Unix time, in seconds, at which the {what} expires"),
            self.timestamp.clone(),
        );
        registry.register(
            format!("{name}_seconds"),
            format!("Seconds until the {what} expires; negative once it has"),
            self.left.clone(),
        );
    }
}

/// Counts every certificate request where its fate is decided. Clones
/// share the counts.
#[derive(Clone, Debug)]
pub struct CaMetrics {
    csrs: IstioCounter,
    authentication_failures: IstioCounter,
    csr_parsing_errors: IstioCounter,
    id_extraction_errors: IstioCounter,
    sign_errors: Family<SignError, IstioCounter>,
    issued: IstioCounter,
    root: Expiry,
    /// Only a plug-in CA has a chain of its own, as in Istio.
    chain: Option<Expiry>,
}

impl CaMetrics {
    /// Counts from zero, with `ca`'s certificates' expiry.
    pub fn for_ca(ca: &MeshCa) -> CaMetrics {
        CaMetrics {
            csrs: IstioCounter::default(),
            authentication_failures: IstioCounter::default(),
            csr_parsing_errors: IstioCounter::default(),
            id_extraction_errors: IstioCounter::default(),
            sign_errors: Family::default(),
            issued: IstioCounter::default(),
            root: Expiry::at(ca.root_cert_expiry()),
            chain: ca.cert_chain_expiry().map(Expiry::at),
        }
    }

    pub fn register(&self, registry: &mut Registry) {
        let counters = [
            (
                "citadel_server_csr_count",
                "Certificate signing requests received",
                &self.csrs,
            ),
            (
                "citadel_server_authentication_failure_count",
                "Certificate requests whose caller could not be authenticated",
                &self.authentication_failures,
            ),
            (
                "citadel_server_csr_parsing_err_count",
                "Certificate signing requests that could not be parsed or whose signature is wrong",
                &self.csr_parsing_errors,
            ),
            (
                "citadel_server_id_extraction_err_count",
                "Certificate requests whose authenticated caller has no identity this CA may sign",
                &self.id_extraction_errors,
            ),
            (
                "citadel_server_success_cert_issuance_count",
                "Certificates issued",
                &self.issued,
            ),
        ];
        for (name, help, counter) in counters {
            registry.register(name, help, counter.clone());
        }
        registry.register(
            "citadel_server_csr_sign_err_count",
            "Certificate signing requests the CA failed to sign, by error type",
            self.sign_errors.clone(),
        );
        self.root.register(
            registry,
            "citadel_server_root_cert_expiry",
            "root certificate",
        );
        if let Some(chain) = &self.chain {
            chain.register(
                registry,
                "citadel_server_cert_chain_expiry",
                "CA's signing certificate",
            );
        }
    }

    pub(crate) fn csr_received(&self) {
        self.csrs.inc();
    }

    pub(crate) fn authentication_failed(&self) {
        self.authentication_failures.inc();
    }

    pub(crate) fn issued(&self) {
        self.issued.inc();
    }

    /// Signing `error`ed: counted as what went wrong, with Istio's error
    /// types for what is the CA's signing failure.
    pub(crate) fn signing_failed(&self, error: &CaError) {
        let error_type = match error {
            CaError::InvalidCsr(_) => {
                self.csr_parsing_errors.inc();
                "CSR_ERROR"
            }
            // The caller authenticated, as an identity that is no valid
            // SPIFFE ID of this trust domain: nothing to sign for.
            CaError::InvalidIdentity(_) | CaError::ForeignTrustDomain { .. } => {
                self.id_extraction_errors.inc();
                return;
            }
            CaError::ZeroTtl => "TTL_ERROR",
            CaError::Generation(_) => "CERT_GEN_ERROR",
            _ => "UNKNOWN",
        };
        self.sign_errors.get_or_create(&SignError(error_type)).inc();
    }
}
