//! IST0161: a Gateway server whose `credentialName` names no credential
//! (or, for MUTUAL and OPTIONAL_MUTUAL, whose client CA is missing), so the
//! gateway refuses its TLS handshakes. Local mode's credentials are files
//! (see credentials.rs); they are checked when a directory is analyzed.

use trellis_api::{ServerTlsMode, ServerTlsSettings};

use crate::credentials::LocalCredentials;
use crate::message::{INVALID_GATEWAY_CREDENTIAL, Message, quoted};
use crate::model::Model;

pub(crate) fn analyze(model: &Model<'_>, messages: &mut Vec<Message>) {
    let Some(credentials) = model.credentials else {
        return;
    };
    for gateway in &model.gateways {
        for server in &gateway.spec.servers {
            let Some(tls) = &server.tls else { continue };
            for problem in problems(tls, credentials) {
                let text = format!(
                    "The credential provided for Gateway {}/{} is invalid: {problem}",
                    gateway.namespace(),
                    gateway.name()
                );
                messages.push(Message::new(&INVALID_GATEWAY_CREDENTIAL, gateway, text));
            }
        }
    }
}

fn problems(tls: &ServerTlsSettings, credentials: &LocalCredentials) -> Vec<String> {
    let names = tls
        .credential_name
        .iter()
        .chain(&tls.credential_names)
        .filter(|name| !name.is_empty());
    let mutual = matches!(
        tls.mode,
        ServerTlsMode::Mutual | ServerTlsMode::OptionalMutual
    );
    let mut problems = Vec::new();
    for name in names {
        if !credentials.has_certificate(name) {
            problems.push(format!(
                "credential {} not found (credentials/{name}/tls.crt and tls.key)",
                quoted(name)
            ));
        } else if mutual && !credentials.has_client_ca(name) {
            problems.push(format!(
                "credential {} has no client CA (ca.crt in credentials/{name}/ or credentials/{name}-cacert/)",
                quoted(name)
            ));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::super::testing::resources;
    use super::*;

    fn gateway(tls: &str) -> String {
        format!(
            "apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: edge}}
spec:
  selector: {{istio: ingressgateway}}
  servers:
  - port: {{number: 443, name: https, protocol: HTTPS}}
    hosts: [a.example.com]
    tls: {tls}
"
        )
    }

    fn analyzed(yaml: &str, config: Option<&std::path::Path>) -> Vec<String> {
        let resources = resources(yaml);
        let mut model = Model::new(&resources);
        let credentials = config.and_then(|dir| LocalCredentials::find(&[PathBuf::from(dir)]));
        model.credentials = credentials.as_ref();
        let mut messages = Vec::new();
        analyze(&model, &mut messages);
        messages.iter().map(Message::to_string).collect()
    }

    #[test]
    fn credentials_must_exist_with_their_client_ca() {
        let config = tempfile::tempdir().unwrap();
        let web = config.path().join("credentials/web");
        std::fs::create_dir_all(&web).unwrap();
        for file in ["tls.crt", "tls.key"] {
            std::fs::write(web.join(file), "pem").unwrap();
        }
        let cases: [(&str, &[&str]); 3] = [
            ("{mode: SIMPLE, credentialName: web}", &[]),
            (
                "{mode: SIMPLE, credentialName: api}",
                &[
                    "Error [IST0161] (Gateway default/edge) The credential provided for Gateway default/edge is invalid: credential \"api\" not found (credentials/api/tls.crt and tls.key)",
                ],
            ),
            (
                "{mode: MUTUAL, credentialName: web}",
                &[
                    "Error [IST0161] (Gateway default/edge) The credential provided for Gateway default/edge is invalid: credential \"web\" has no client CA (ca.crt in credentials/web/ or credentials/web-cacert/)",
                ],
            ),
        ];
        for (tls, expected) in cases {
            assert_eq!(
                analyzed(&gateway(tls), Some(config.path())),
                expected,
                "{tls}"
            );
        }
        std::fs::create_dir_all(config.path().join("credentials/web-cacert")).unwrap();
        std::fs::write(config.path().join("credentials/web-cacert/ca.crt"), "pem").unwrap();
        let mutual = gateway("{mode: MUTUAL, credentialName: web}");
        assert!(analyzed(&mutual, Some(config.path())).is_empty());
        // Without a directory input there is nothing to check against.
        assert!(analyzed(&gateway("{mode: SIMPLE, credentialName: api}"), None).is_empty());
    }
}
