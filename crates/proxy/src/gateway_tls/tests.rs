use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    CertificateValidationContext, SdsSecretConfig, TlsParameters,
    common_tls_context::CombinedCertificateValidationContext, tls_parameters::TlsProtocol,
};
use envoy_types::pb::google::protobuf::BoolValue;
use envoy_types::util::pack_any;

use super::*;

fn context(secret: &str, require_client_certificate: bool) -> DownstreamTlsContext {
    DownstreamTlsContext {
        common_tls_context: Some(CommonTlsContext {
            tls_certificate_sds_secret_configs: vec![SdsSecretConfig {
                name: secret.into(),
                ..Default::default()
            }],
            alpn_protocols: vec!["h2".into(), "http/1.1".into()],
            ..Default::default()
        }),
        require_client_certificate: Some(BoolValue {
            value: require_client_certificate,
        }),
        ..Default::default()
    }
}

fn socket(context: DownstreamTlsContext) -> TransportSocket {
    TransportSocket {
        name: "envoy.transport_sockets.tls".into(),
        config_type: Some(ConfigType::TypedConfig(pack_any(context))),
    }
}

/// `context` verifying clients against `ca`, with `inline` settings.
fn with_client_ca(
    mut context: DownstreamTlsContext,
    ca: &str,
    inline: CertificateValidationContext,
) -> DownstreamTlsContext {
    let common = context.common_tls_context.as_mut().unwrap();
    common.validation_context_type = Some(ValidationContextType::CombinedValidationContext(
        CombinedCertificateValidationContext {
            default_validation_context: Some(inline),
            validation_context_sds_secret_config: Some(SdsSecretConfig {
                name: ca.into(),
                ..Default::default()
            }),
            ..Default::default()
        },
    ));
    context
}

#[test]
fn reads_the_credential_a_socket_presents() {
    let credential = server_credential(&socket(context("kubernetes://bookinfo", false)))
        .unwrap()
        .unwrap();
    assert_eq!(credential.name, "bookinfo");
    assert_eq!(credential.alpn, [b"h2".to_vec(), b"http/1.1".to_vec()]);
    assert_eq!(credential.client_auth, None);
    assert_eq!(credential.params, TlsParams::default());
    // The mesh certificate is tls_context.rs's business.
    assert_eq!(
        server_credential(&socket(context("default", true))).unwrap(),
        None
    );
}

#[test]
fn reads_client_validation_and_tls_params() {
    let ca = "kubernetes://bookinfo-cacert";
    for required in [true, false] {
        let mutual = with_client_ca(
            context("kubernetes://bookinfo", required),
            ca,
            Default::default(),
        );
        let credential = server_credential(&socket(mutual)).unwrap().unwrap();
        assert_eq!(
            credential.client_auth,
            Some(ClientAuth {
                ca: "bookinfo-cacert".into(),
                required
            })
        );
    }
    let mut only13 = context("kubernetes://bookinfo", false);
    only13.common_tls_context.as_mut().unwrap().tls_params = Some(TlsParameters {
        tls_minimum_protocol_version: TlsProtocol::TlSv13 as i32,
        ..Default::default()
    });
    let credential = server_credential(&socket(only13)).unwrap().unwrap();
    assert_eq!(credential.params.versions(), [&rustls::version::TLS13]);
}

#[test]
fn refuses_what_it_cannot_serve() {
    let no_ca = server_credential(&socket(context("kubernetes://bookinfo", true)));
    assert_eq!(
        no_ca,
        Err(Unsupported("client certificates required without a CA"))
    );
    let sans = CertificateValidationContext {
        trusted_ca: Some(Default::default()),
        ..Default::default()
    };
    let inline = with_client_ca(
        context("kubernetes://b", true),
        "kubernetes://b-cacert",
        sans,
    );
    assert!(server_credential(&socket(inline)).is_err());
    let mesh_root = with_client_ca(
        context("kubernetes://b", true),
        "ROOTCA",
        Default::default(),
    );
    assert!(server_credential(&socket(mesh_root)).is_err());
    let mut tls10 = context("kubernetes://bookinfo", false);
    tls10.common_tls_context.as_mut().unwrap().tls_params = Some(TlsParameters {
        tls_minimum_protocol_version: TlsProtocol::TlSv10 as i32,
        ..Default::default()
    });
    assert!(server_credential(&socket(tls10)).is_err());
    for bad in ["kubernetes://", "kubernetes://../etc", "kubernetes://a/b"] {
        assert_eq!(
            server_credential(&socket(context(bad, false))),
            Err(Unsupported("credential name that is not a plain name")),
            "{bad}"
        );
    }
}
