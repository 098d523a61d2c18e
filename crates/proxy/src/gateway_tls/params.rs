//! `tls_params` of a gateway server: the TLS versions and TLS 1.2 cipher
//! suites it offers, limited to what rustls implements (TLS 1.2 and 1.3,
//! AEAD suites with ECDHE). Anything else is refused when the listener is
//! compiled, so a config asking for TLS 1.0 or a CBC suite is NACKed
//! instead of silently served with other settings.

use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    TlsParameters, tls_parameters::TlsProtocol,
};
use rustls::crypto::CryptoProvider;
use rustls::{CipherSuite, SupportedCipherSuite, SupportedProtocolVersion};

use crate::unsupported::{Unsupported, reject_if};

/// Envoy's (OpenSSL's) names of the TLS 1.2 suites rustls implements.
const TLS12_SUITES: [(&str, CipherSuite); 6] = [
    (
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    ),
    (
        "ECDHE-RSA-AES128-GCM-SHA256",
        CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    ),
    (
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    ),
    (
        "ECDHE-RSA-AES256-GCM-SHA384",
        CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    ),
    (
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
    (
        "ECDHE-RSA-CHACHA20-POLY1305",
        CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
];

/// A supported TLS version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Version {
    Tls12,
    Tls13,
}

/// What a server offers; the default is what rustls offers by default.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TlsParams {
    pub min: Version,
    pub max: Version,
    /// TLS 1.2 suites allowed, in Envoy's names; empty: all. TLS 1.3
    /// suites are not configurable (as in Envoy).
    pub tls12_suites: Vec<String>,
}

impl Default for TlsParams {
    fn default() -> Self {
        TlsParams {
            min: Version::Tls12,
            max: Version::Tls13,
            tls12_suites: Vec::new(),
        }
    }
}

impl TlsParams {
    pub fn compile(params: Option<&TlsParameters>) -> Result<TlsParams, Unsupported> {
        let Some(params) = params else {
            return Ok(TlsParams::default());
        };
        reject_if(
            !params.ecdh_curves.is_empty() || !params.signature_algorithms.is_empty(),
            "tls_params.ecdh_curves or signature_algorithms",
        )?;
        let min = version(params.tls_minimum_protocol_version)?.unwrap_or(Version::Tls12);
        let max = version(params.tls_maximum_protocol_version)?.unwrap_or(Version::Tls13);
        reject_if(min > max, "tls_params: minimum version above maximum")?;
        for suite in &params.cipher_suites {
            reject_if(
                !TLS12_SUITES.iter().any(|(name, _)| name == suite),
                "tls_params.cipher_suites: a suite rustls does not implement",
            )?;
        }
        Ok(TlsParams {
            min,
            max,
            tls12_suites: params.cipher_suites.clone(),
        })
    }

    pub fn versions(&self) -> Vec<&'static SupportedProtocolVersion> {
        [
            (Version::Tls12, &rustls::version::TLS12),
            (Version::Tls13, &rustls::version::TLS13),
        ]
        .into_iter()
        .filter(|(v, _)| (self.min..=self.max).contains(v))
        .map(|(_, version)| version)
        .collect()
    }

    /// The crypto provider with only the allowed suites.
    pub fn provider(&self) -> CryptoProvider {
        let mut provider = rustls::crypto::aws_lc_rs::default_provider();
        if !self.tls12_suites.is_empty() {
            provider.cipher_suites.retain(|suite| self.allows(suite));
        }
        provider
    }

    fn allows(&self, suite: &SupportedCipherSuite) -> bool {
        match suite {
            SupportedCipherSuite::Tls13(_) => true,
            SupportedCipherSuite::Tls12(_) => TLS12_SUITES.iter().any(|(name, id)| {
                *id == suite.suite() && self.tls12_suites.iter().any(|s| s == name)
            }),
        }
    }
}

/// `None` for TLS_AUTO (the default).
fn version(raw: i32) -> Result<Option<Version>, Unsupported> {
    match TlsProtocol::try_from(raw) {
        Ok(TlsProtocol::TlsAuto) => Ok(None),
        Ok(TlsProtocol::TlSv12) => Ok(Some(Version::Tls12)),
        Ok(TlsProtocol::TlSv13) => Ok(Some(Version::Tls13)),
        Ok(TlsProtocol::TlSv10 | TlsProtocol::TlSv11) => Err(Unsupported(
            "tls_params: TLS 1.0 and 1.1 (rustls offers TLS 1.2 and 1.3)",
        )),
        Err(_) => Err(Unsupported("tls_params: unknown TLS version")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(min: TlsProtocol, max: TlsProtocol, suites: &[&str]) -> TlsParameters {
        TlsParameters {
            tls_minimum_protocol_version: min as i32,
            tls_maximum_protocol_version: max as i32,
            cipher_suites: suites.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn honours_versions_and_tls12_suites() {
        let only13 = TlsParams::compile(Some(&params(
            TlsProtocol::TlSv13,
            TlsProtocol::TlsAuto,
            &[],
        )))
        .unwrap();
        assert_eq!(only13.versions(), [&rustls::version::TLS13]);
        let default = TlsParams::compile(None).unwrap();
        assert_eq!(default.versions().len(), 2);

        let one_suite = TlsParams::compile(Some(&params(
            TlsProtocol::TlsAuto,
            TlsProtocol::TlSv12,
            &["ECDHE-RSA-AES256-GCM-SHA384"],
        )))
        .unwrap();
        assert_eq!(one_suite.versions(), [&rustls::version::TLS12]);
        let provider = one_suite.provider();
        let tls12: Vec<CipherSuite> = provider
            .cipher_suites
            .iter()
            .filter(|s| matches!(s, SupportedCipherSuite::Tls12(_)))
            .map(|s| s.suite())
            .collect();
        assert_eq!(tls12, [CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384]);
        assert!(
            provider
                .cipher_suites
                .iter()
                .any(|s| matches!(s, SupportedCipherSuite::Tls13(_)))
        );
    }

    #[test]
    fn refuses_what_rustls_cannot_do() {
        let old = params(TlsProtocol::TlSv10, TlsProtocol::TlsAuto, &[]);
        assert!(TlsParams::compile(Some(&old)).is_err());
        let cbc = params(
            TlsProtocol::TlsAuto,
            TlsProtocol::TlsAuto,
            &["ECDHE-RSA-AES128-SHA"],
        );
        assert!(TlsParams::compile(Some(&cbc)).is_err());
        let inverted = params(TlsProtocol::TlSv13, TlsProtocol::TlSv12, &[]);
        assert!(TlsParams::compile(Some(&inverted)).is_err());
    }
}
