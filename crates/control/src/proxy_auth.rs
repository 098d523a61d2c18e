//! How the TLS xDS port (15012) knows which workload is calling: the mesh
//! certificate the proxy presents in the handshake (already verified
//! against the mesh root by the TLS server), else the bootstrap token it
//! sends as `authorization: Bearer`, the same token the CA accepts.

use std::sync::Arc;

use tonic::Status;
use tonic::codegen::http;
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
use trellis_ca::{Authenticator, SpiffeId, TrustDomains};
use trellis_xds::{AuthenticateCaller, Caller};

pub(crate) struct MeshCallers {
    tokens: Arc<dyn Authenticator>,
    trust: TrustDomains,
}

impl MeshCallers {
    pub(crate) fn new(tokens: Arc<dyn Authenticator>, trust: TrustDomains) -> Self {
        MeshCallers { tokens, trust }
    }

    fn certificate_identity(
        &self,
        extensions: &http::Extensions,
    ) -> Option<Result<SpiffeId, Status>> {
        let connection = extensions.get::<TlsConnectInfo<TcpConnectInfo>>()?;
        let chain = connection.peer_certs()?;
        let identity = trellis_ca::peer_identity(&chain).ok_or_else(|| {
            Status::unauthenticated("the client certificate carries no SPIFFE identity")
        });
        Some(identity.and_then(|id| {
            if self.trust.contains(&id.trust_domain) {
                Ok(id)
            } else {
                Err(Status::unauthenticated(format!(
                    "{id} is not of this mesh's trust domain"
                )))
            }
        }))
    }
}

impl AuthenticateCaller for MeshCallers {
    fn authenticate(
        &self,
        headers: &http::HeaderMap,
        extensions: &http::Extensions,
    ) -> Result<Caller, Status> {
        let identity = match self.certificate_identity(extensions) {
            Some(identity) => identity?,
            None => {
                let token = trellis_ca::bearer_token_in(headers).ok_or_else(|| {
                    Status::unauthenticated(
                        "no mesh client certificate and no \"authorization: Bearer\" token",
                    )
                })?;
                self.tokens
                    .authenticate(token)
                    .ok_or_else(|| Status::unauthenticated("unknown token"))?
            }
        };
        Ok(Caller {
            namespace: identity.namespace,
            service_account: identity.service_account,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use trellis_ca::{StaticTokens, TokenEntry};

    fn callers(token: &str) -> MeshCallers {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.json");
        let entry = TokenEntry {
            token: token.into(),
            namespace: "default".into(),
            service_account: "bookinfo-reviews".into(),
        };
        trellis_ca::write_tokens_file(&path, &[entry]).unwrap();
        let tokens = StaticTokens::load(&path, "cluster.local").unwrap();
        MeshCallers::new(Arc::new(tokens), TrustDomains::only("cluster.local"))
    }

    fn bearer(token: &str) -> http::HeaderMap {
        let mut headers = http::HeaderMap::new();
        headers.insert("authorization", format!("Bearer {token}").parse().unwrap());
        headers
    }

    #[test]
    fn a_known_token_names_its_workload() {
        let token = trellis_ca::generate_token();
        let caller = callers(&token)
            .authenticate(&bearer(&token), &http::Extensions::new())
            .unwrap();
        assert_eq!(caller.namespace, "default");
        assert_eq!(caller.service_account, "bookinfo-reviews");
    }

    #[test]
    fn no_credential_or_an_unknown_token_is_unauthenticated() {
        let callers = callers(&trellis_ca::generate_token());
        let none = http::HeaderMap::new();
        let unknown = bearer(&trellis_ca::generate_token());
        for headers in [none, unknown] {
            let status = callers
                .authenticate(&headers, &http::Extensions::new())
                .unwrap_err();
            assert_eq!(status.code(), tonic::Code::Unauthenticated);
        }
    }
}
