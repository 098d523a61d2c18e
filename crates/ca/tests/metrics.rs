//! The CA's Citadel metrics after real requests over gRPC: one certificate
//! issued, and one request failing at each step (authentication, identity,
//! CSR parsing), each counted where it failed.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tonic::Code;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use trellis_ca::proto::IstioCertificateRequest;
use trellis_ca::proto::istio_certificate_service_client::IstioCertificateServiceClient;
use trellis_ca::{Authenticator, CertificateRequest, CertificateService, MeshCa, SpiffeId};

const TD: &str = "cluster.local";

/// `reviews` authenticates as reviews; `stranger` as an identity of
/// another trust domain, which this CA may not sign.
struct Tokens;

impl Authenticator for Tokens {
    fn authenticate(&self, token: &str) -> Option<SpiffeId> {
        match token {
            "reviews" => Some(SpiffeId::new(TD, "default", "bookinfo-reviews")),
            "stranger" => Some(SpiffeId::new("other.example", "default", "stranger")),
            _ => None,
        }
    }
}

type Client = IstioCertificateServiceClient<tonic::transport::Channel>;

async fn serve(service: CertificateService) -> Client {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(
        Server::builder()
            .add_service(service.into_server())
            .serve_with_incoming(TcpIncoming::from(listener)),
    );
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{address}"))
        .unwrap()
        .connect_lazy();
    IstioCertificateServiceClient::new(channel)
}

async fn ask(client: &mut Client, token: &str, csr: &str) -> Result<(), Code> {
    let mut request = tonic::Request::new(IstioCertificateRequest {
        csr: csr.to_string(),
        validity_duration: 3600,
        metadata: None,
    });
    let bearer = format!("Bearer {token}").parse().unwrap();
    request.metadata_mut().insert("authorization", bearer);
    client
        .create_certificate(request)
        .await
        .map(drop)
        .map_err(|status| status.code())
}

/// `series value` lines of the exposition, by series.
fn exposition(service_metrics: &trellis_ca::CaMetrics) -> String {
    let mut registry = Registry::default();
    service_metrics.register(&mut registry);
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    text
}

fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            (name == series).then(|| value.parse().ok())?
        })
        .unwrap_or_else(|| panic!("no {series} in\n{text}"))
}

#[tokio::test]
async fn each_request_is_counted_where_it_ends() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Arc::new(MeshCa::load_or_create(dir.path(), TD).unwrap());
    let service = CertificateService::new(ca.clone(), Arc::new(Tokens));
    let metrics = service.metrics().clone();
    let mut client = serve(service).await;

    let before = exposition(&metrics);
    assert_eq!(value(&before, "citadel_server_csr_count"), 0.0);

    let reviews = SpiffeId::new(TD, "default", "bookinfo-reviews");
    let csr = CertificateRequest::new(&reviews).unwrap();
    assert_eq!(ask(&mut client, "reviews", csr.csr_pem()).await, Ok(()));
    let garbage = "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n";
    assert_eq!(
        ask(&mut client, "reviews", garbage).await,
        Err(Code::InvalidArgument)
    );
    assert_eq!(
        ask(&mut client, "nobody", csr.csr_pem()).await,
        Err(Code::Unauthenticated)
    );
    assert_eq!(
        ask(&mut client, "stranger", csr.csr_pem()).await,
        Err(Code::PermissionDenied)
    );

    let text = exposition(&metrics);
    for (series, expected) in [
        ("citadel_server_csr_count", 4.0),
        ("citadel_server_success_cert_issuance_count", 1.0),
        ("citadel_server_csr_parsing_err_count", 1.0),
        (
            "citadel_server_csr_sign_err_count{error=\"CSR_ERROR\"}",
            1.0,
        ),
        ("citadel_server_authentication_failure_count", 1.0),
        ("citadel_server_id_extraction_err_count", 1.0),
    ] {
        assert_eq!(value(&text, series), expected, "{series} in\n{text}");
    }
    assert!(
        text.contains("# TYPE citadel_server_csr_count counter"),
        "{text}"
    );

    let root_expiry = ca.root_cert_expiry();
    let unix = root_expiry.duration_since(UNIX_EPOCH).unwrap().as_secs() as f64;
    assert_eq!(
        value(&text, "citadel_server_root_cert_expiry_timestamp"),
        unix
    );
    let left = value(&text, "citadel_server_root_cert_expiry_seconds");
    let expected = root_expiry
        .duration_since(SystemTime::now())
        .unwrap()
        .as_secs_f64();
    assert!((left - expected).abs() < 60.0, "{left} vs {expected}");
    assert!(left > Duration::from_secs(9 * 365 * 24 * 3600).as_secs_f64());
    // A self-signed root signs directly: no chain, as in Istio.
    assert!(!text.contains("cert_chain_expiry"), "{text}");
}
