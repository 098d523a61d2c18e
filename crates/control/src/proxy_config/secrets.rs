//! `proxy-config secret`: the workload certificate and the roots the proxy
//! holds, with each certificate's serial number and validity, as istioctl
//! prints them.

use std::time::SystemTime;

use base64::Engine;
use serde_json::Value;
use x509_parser::pem::Pem;

use super::dump::{field, text};

pub fn table(secrets: &[&Value], now: SystemTime) -> Vec<Vec<String>> {
    let mut out = vec![
        [
            "RESOURCE NAME",
            "TYPE",
            "STATUS",
            "VALID CERT",
            "SERIAL NUMBER",
            "NOT AFTER",
            "NOT BEFORE",
        ]
        .map(String::from)
        .to_vec(),
    ];
    for secret in secrets {
        let name = text(secret, "name").unwrap_or_default().to_string();
        let (kind, pem) = if let Some(tls) = field(secret, "tls_certificate") {
            (
                "Cert Chain",
                field(tls, "certificate_chain").and_then(inline_pem),
            )
        } else if let Some(validation) = field(secret, "validation_context") {
            ("CA", field(validation, "trusted_ca").and_then(inline_pem))
        } else {
            continue;
        };
        let row = match pem.as_deref().and_then(first_certificate) {
            Some(cert) => vec![
                name,
                kind.into(),
                "ACTIVE".into(),
                (cert.not_before <= now && now < cert.not_after).to_string(),
                cert.serial,
                rfc3339(cert.not_after),
                rfc3339(cert.not_before),
            ],
            None => vec![
                name,
                kind.into(),
                "ACTIVE".into(),
                "false".into(),
                "-".into(),
                "-".into(),
                "-".into(),
            ],
        };
        out.push(row);
    }
    out
}

/// `inline_bytes` (base64, as proto3 JSON writes bytes) or `inline_string`.
fn inline_pem(source: &Value) -> Option<String> {
    if let Some(bytes) = text(source, "inline_bytes") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(bytes)
            .ok()?;
        return String::from_utf8(decoded).ok();
    }
    text(source, "inline_string").map(str::to_string)
}

struct CertificateFacts {
    serial: String,
    not_before: SystemTime,
    not_after: SystemTime,
}

fn first_certificate(pem: &str) -> Option<CertificateFacts> {
    let block = Pem::iter_from_buffer(pem.as_bytes()).next()?.ok()?;
    let cert = block.parse_x509().ok()?;
    let when = |t: x509_parser::time::ASN1Time| {
        SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(t.timestamp().max(0) as u64)
    };
    Some(CertificateFacts {
        serial: cert.raw_serial_as_string().replace(':', ""),
        not_before: when(cert.validity().not_before),
        not_after: when(cert.validity().not_after),
    })
}

fn rfc3339(at: SystemTime) -> String {
    let seconds = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    time::OffsetDateTime::from_unix_timestamp(seconds)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| "-".into())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use super::*;

    #[test]
    fn shows_serial_and_validity_of_each_secret() {
        let mut params = rcgen::CertificateParams::new(vec!["w".to_string()]).unwrap();
        params.serial_number = Some(rcgen::SerialNumber::from_slice(&[0x0a, 0xbc]));
        params.not_before = time::OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        params.not_after = time::OffsetDateTime::from_unix_timestamp(1_800_086_400).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let pem = params.self_signed(&key).unwrap().pem();
        let encoded = base64::engine::general_purpose::STANDARD.encode(&pem);
        let secrets = [
            json!({"name": "default", "tls_certificate": {"certificate_chain": {"inline_bytes": encoded}}}),
            json!({"name": "ROOTCA", "validation_context": {"trusted_ca": {"inline_string": pem}}}),
            json!({"name": "broken", "tls_certificate": {"certificate_chain": {"inline_bytes": "!!"}}}),
        ];
        let refs: Vec<&Value> = secrets.iter().collect();
        let during = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_100);
        let rows = table(&refs, during);
        assert_eq!(
            rows[1],
            [
                "default",
                "Cert Chain",
                "ACTIVE",
                "true",
                "0abc",
                "2027-01-16T08:00:00Z",
                "2027-01-15T08:00:00Z"
            ]
        );
        assert_eq!(rows[2][1], "CA");
        assert_eq!(rows[3][3..5], ["false", "-"]);
        let after = SystemTime::UNIX_EPOCH + Duration::from_secs(1_900_000_000);
        assert_eq!(table(&refs, after)[1][3], "false");
    }
}
