use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use envoy_types::pb::envoy::config::cluster::v3::Cluster as XdsCluster;
use envoy_types::pb::envoy::config::cluster::v3::cluster::{ClusterDiscoveryType, DiscoveryType};
use envoy_types::pb::envoy::config::core::v3::{Address, SocketAddress, address, socket_address};
use envoy_types::pb::envoy::config::core::v3::{
    GrpcService, HttpService, HttpUri, grpc_service, http_uri,
};
use envoy_types::pb::envoy::config::endpoint::v3::{
    ClusterLoadAssignment, Endpoint as XdsEndpoint, LbEndpoint, LocalityLbEndpoints, lb_endpoint,
};
use envoy_types::pb::envoy::config::trace::v3::tracing::Http as Provider;
use envoy_types::pb::envoy::config::trace::v3::tracing::http::ConfigType;
use envoy_types::pb::envoy::r#type::tracing::v3::CustomTag as XdsCustomTag;
use envoy_types::pb::envoy::r#type::v3::Percent;
use envoy_types::pb::google::protobuf::Any;
use http::{HeaderValue, Request, Response};
use http_body_util::{BodyExt, Full};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;

use super::*;
use crate::cluster::{Cluster, ClusterSpec};
use crate::identity::Identity;
use crate::state::ProxyState;

fn zipkin(cluster: &str) -> Provider {
    let config = ZipkinConfig {
        collector_cluster: cluster.into(),
        collector_endpoint: "/api/v2/spans".into(),
        collector_endpoint_version: CollectorEndpointVersion::HttpJson as i32,
        trace_id_128bit: true,
        ..Default::default()
    };
    provider(ZIPKIN, ZipkinConfig::type_url(), config.encode_to_vec())
}

fn otel_http(cluster: &str, uri: &str) -> Provider {
    let config = OpenTelemetryConfig {
        http_service: Some(HttpService {
            http_uri: Some(HttpUri {
                uri: uri.into(),
                http_upstream_type: Some(http_uri::HttpUpstreamType::Cluster(cluster.into())),
                ..Default::default()
            }),
            ..Default::default()
        }),
        service_name: "reviews.default".into(),
        ..Default::default()
    };
    provider(
        OPENTELEMETRY,
        OpenTelemetryConfig::type_url(),
        config.encode_to_vec(),
    )
}

fn otel_grpc(cluster: &str) -> Provider {
    let config = OpenTelemetryConfig {
        grpc_service: Some(GrpcService {
            target_specifier: Some(grpc_service::TargetSpecifier::EnvoyGrpc(
                grpc_service::EnvoyGrpc {
                    cluster_name: cluster.into(),
                    ..Default::default()
                },
            )),
            ..Default::default()
        }),
        ..Default::default()
    };
    provider(
        OPENTELEMETRY,
        OpenTelemetryConfig::type_url(),
        config.encode_to_vec(),
    )
}

fn provider(name: &str, type_url: String, value: Vec<u8>) -> Provider {
    Provider {
        name: name.into(),
        config_type: Some(ConfigType::TypedConfig(Any { type_url, value })),
    }
}

fn tracing_with(provider: Provider, percent: Option<f64>) -> Tracing {
    Tracing {
        provider: Some(provider),
        random_sampling: percent.map(|value| Percent { value }),
        ..Default::default()
    }
}

#[test]
fn compiles_each_provider() {
    let spec =
        TracingSpec::compile(&tracing_with(zipkin("outbound|9411||zipkin"), Some(1.0))).unwrap();
    assert_eq!(
        spec.sink.collector,
        Collector::Zipkin {
            cluster: "outbound|9411||zipkin".into(),
            path: "/api/v2/spans".into()
        }
    );
    assert_eq!(spec.sampling_percent, 1.0);
    let spec =
        TracingSpec::compile(&tracing_with(otel_http("otel", "http://otel:4318"), None)).unwrap();
    assert_eq!(
        spec.sink.collector,
        Collector::OtlpHttp {
            cluster: "otel".into(),
            path: "/v1/traces".into()
        }
    );
    assert_eq!(spec.sampling_percent, 100.0, "Envoy's default");
    let spec = TracingSpec::compile(&tracing_with(
        otel_http("otel", "http://otel:4318/custom"),
        None,
    ))
    .unwrap();
    assert_eq!(
        spec.sink.collector,
        Collector::OtlpHttp {
            cluster: "otel".into(),
            path: "/custom".into()
        }
    );
    let spec = TracingSpec::compile(&tracing_with(otel_grpc("otel"), None)).unwrap();
    assert_eq!(
        spec.sink.collector,
        Collector::OtlpGrpc {
            cluster: "otel".into()
        }
    );
}

#[test]
fn refuses_what_it_cannot_do_by_name() {
    let refused = |tracing: Tracing| TracingSpec::compile(&tracing).unwrap_err().0;
    assert_eq!(
        refused(Tracing {
            provider: None,
            ..Default::default()
        }),
        "tracing without a provider"
    );
    assert_eq!(
        refused(tracing_with(zipkin("z"), Some(150.0))),
        "tracing.random_sampling outside 0..=100"
    );
    let mut datadog = zipkin("z");
    datadog.name = "envoy.tracers.datadog".into();
    assert!(refused(tracing_with(datadog, None)).contains("other than envoy.tracers.zipkin"));
    let mut verbose = tracing_with(zipkin("z"), None);
    verbose.verbose = true;
    assert_eq!(refused(verbose), "tracing.verbose");
    let mut metadata_tag = tracing_with(zipkin("z"), None);
    metadata_tag.custom_tags.push(XdsCustomTag {
        tag: "m".into(),
        r#type: Some(custom_tag::Type::Metadata(Default::default())),
    });
    assert!(refused(metadata_tag).starts_with("custom tag other than"));
    let garbage = provider(ZIPKIN, ZipkinConfig::type_url(), vec![0xff, 0xff]);
    assert_eq!(
        refused(tracing_with(garbage, None)),
        "undecodable zipkin config"
    );
}

fn test_state() -> Arc<ProxyState> {
    let node = trellis_xds::NodeInfo {
        kind: trellis_xds::node::ProxyKind::Sidecar,
        ip: "127.0.0.1".parse().unwrap(),
        pod_name: "reviews-0".into(),
        namespace: "default".into(),
        service_account: "reviews".into(),
        workload_name: "reviews".into(),
        labels: [("app".to_string(), "reviews".to_string())].into(),
        interception: trellis_xds::node::Interception::Redirect,
        app_ports: Default::default(),
        outbound_port: 15001,
        locality: String::new(),
    };
    let id = "spiffe://cluster.local/ns/default/sa/reviews"
        .parse()
        .unwrap();
    ProxyState::new(Identity::new(id), node, Arc::default())
}

fn hop<'a>(state: &'a ProxyState, kind: SpanKind) -> HopStart<'a> {
    HopStart {
        kind,
        method: "GET",
        scheme: "http",
        authority: "ratings:9080",
        path: "/ratings/0",
        protocol: "HTTP/1.1",
        peer: "127.0.0.9:5000".parse().unwrap(),
        state,
    }
}

#[test]
fn an_incoming_decision_is_honoured_and_the_rate_decides_the_rest() {
    let state = test_state();
    let never = Arc::new(TracingSpec::compile(&tracing_with(zipkin("z"), Some(0.0))).unwrap());
    let always = Arc::new(TracingSpec::compile(&tracing_with(zipkin("z"), Some(100.0))).unwrap());
    let mut headers = HeaderMap::new();
    assert!(start_hop(&never, &mut headers, &hop(&state, SpanKind::Client)).is_none());
    assert!(
        headers
            .get("traceparent")
            .unwrap()
            .to_str()
            .unwrap()
            .ends_with("-00")
    );
    assert_eq!(headers.get("x-b3-sampled").unwrap(), "0");
    // The next hop follows the decision, whatever its own rate.
    assert!(start_hop(&always, &mut headers, &hop(&state, SpanKind::Server)).is_none());
    let mut sampled = HeaderMap::new();
    sampled.insert(
        "x-b3-traceid",
        HeaderValue::from_static("80f198ee56343ba864fe8b2a57d3eff7"),
    );
    sampled.insert("x-b3-spanid", HeaderValue::from_static("e457b5a2e4d86bd1"));
    sampled.insert("x-b3-sampled", HeaderValue::from_static("1"));
    sampled.insert("x-request-id", HeaderValue::from_static("rid-1"));
    let span = start_hop(&never, &mut sampled, &hop(&state, SpanKind::Server))
        .unwrap()
        .span;
    assert_eq!(span.trace_id, 0x80f198ee56343ba864fe8b2a57d3eff7);
    assert_eq!(span.parent_span_id, Some(0xe457b5a2e4d86bd1));
    assert_eq!(
        sampled.get("x-b3-spanid").unwrap(),
        &format!("{:016x}", span.span_id)
    );
    assert_eq!(
        sampled.get("x-b3-parentspanid").unwrap(),
        "e457b5a2e4d86bd1"
    );
    assert!(
        !sampled.contains_key("traceparent"),
        "answered in the format it came in"
    );
    let tags: HashMap<_, _> = span.tags.iter().cloned().collect();
    assert_eq!(tags["guid:x-request-id"], "rid-1");
    assert_eq!(tags["http.url"], "http://ratings:9080/ratings/0");
    assert_eq!(tags["component"], "proxy");
    assert_eq!(tags["istio.namespace"], "default");
    assert_eq!(tags["peer.address"], "127.0.0.9");
    assert_eq!(span.name, "ratings:9080/*");
}

#[test]
fn custom_tags_come_from_literals_headers_and_the_environment() {
    let state = test_state();
    let mut tracing = tracing_with(zipkin("z"), Some(100.0));
    let tag = |name: &str, kind| XdsCustomTag {
        tag: name.into(),
        r#type: Some(kind),
    };
    tracing.custom_tags = vec![
        tag(
            "team",
            custom_tag::Type::Literal(custom_tag::Literal {
                value: "search".into(),
            }),
        ),
        tag(
            "agent",
            custom_tag::Type::RequestHeader(custom_tag::Header {
                name: "user-agent".into(),
                default_value: "none".into(),
            }),
        ),
        tag(
            "missing",
            custom_tag::Type::RequestHeader(custom_tag::Header {
                name: "x-absent".into(),
                default_value: "fallback".into(),
            }),
        ),
        tag(
            "env",
            custom_tag::Type::Environment(custom_tag::Environment {
                name: "TRELLIS_TEST_SURELY_UNSET_VARIABLE".into(),
                default_value: "dflt".into(),
            }),
        ),
    ];
    let spec = Arc::new(TracingSpec::compile(&tracing).unwrap());
    let mut headers = HeaderMap::new();
    headers.insert("user-agent", HeaderValue::from_static("curl/8"));
    let span = start_hop(&spec, &mut headers, &hop(&state, SpanKind::Client))
        .unwrap()
        .span;
    let tags: HashMap<_, _> = span.custom_tags.into_iter().collect();
    assert_eq!(tags["team"], "search");
    assert_eq!(tags["agent"], "curl/8");
    assert_eq!(tags["missing"], "fallback");
    assert_eq!(tags["env"], "dflt");
    assert!(span.parent_span_id.is_none(), "a new trace");
}

/// What a loopback collector received: path, content type, body.
type Received = Arc<Mutex<Vec<(String, String, Bytes)>>>;

async fn collector(http2: bool) -> (SocketAddr, Received) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let received = Received::default();
    let store = received.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let store = store.clone();
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
                        let store = store.clone();
                        async move {
                            let path = request.uri().path().to_string();
                            let kind = request
                                .headers()
                                .get("content-type")
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or("")
                                .to_string();
                            let body = request.into_body().collect().await.unwrap().to_bytes();
                            store.lock().unwrap().push((path, kind, body));
                            let mut response = Response::new(Full::new(Bytes::new()));
                            response
                                .headers_mut()
                                .insert("grpc-status", HeaderValue::from_static("0"));
                            Ok::<_, Infallible>(response)
                        }
                    });
                let io = hyper_util::rt::TokioIo::new(stream);
                if http2 {
                    let builder = hyper::server::conn::http2::Builder::new(
                        hyper_util::rt::TokioExecutor::new(),
                    );
                    let _ = builder.serve_connection(io, service).await;
                } else {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(io, service)
                        .await;
                }
            });
        }
    });
    (address, received)
}

fn add_cluster(state: &ProxyState, name: &str, address: SocketAddr, http2: bool) {
    let xds = XdsCluster {
        name: name.into(),
        cluster_discovery_type: Some(ClusterDiscoveryType::Type(DiscoveryType::Static as i32)),
        load_assignment: Some(ClusterLoadAssignment {
            cluster_name: name.into(),
            endpoints: vec![locality(address)],
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut spec = ClusterSpec::compile(&xds).unwrap();
    spec.http2 = http2;
    let cluster = Cluster::start(Cluster::new(spec, state.identity.clone()));
    let mut map = (**state.clusters.load()).clone();
    map.insert(name.into(), cluster);
    state.clusters.store(Arc::new(map));
}

fn locality(address: SocketAddr) -> LocalityLbEndpoints {
    let endpoint = LbEndpoint {
        host_identifier: Some(lb_endpoint::HostIdentifier::Endpoint(XdsEndpoint {
            address: Some(Address {
                address: Some(address::Address::SocketAddress(SocketAddress {
                    address: address.ip().to_string(),
                    port_specifier: Some(socket_address::PortSpecifier::PortValue(
                        address.port().into(),
                    )),
                    ..Default::default()
                })),
            }),
            ..Default::default()
        })),
        ..Default::default()
    };
    LocalityLbEndpoints {
        lb_endpoints: vec![endpoint],
        ..Default::default()
    }
}

async fn wait_for(received: &Received, count: usize) -> Vec<(String, String, Bytes)> {
    for _ in 0..200 {
        if received.lock().unwrap().len() >= count {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    received.lock().unwrap().clone()
}

fn finished_span(spec: &Arc<TracingSpec>, state: &Arc<ProxyState>, status: u16) {
    let mut headers = HeaderMap::new();
    let active = start_hop(spec, &mut headers, &hop(state, SpanKind::Client)).unwrap();
    let end = HopEnd {
        status,
        response_flags: "-",
        upstream_cluster: Some("outbound|9080||ratings".into()),
        request_size: 3,
    };
    let response = traced(
        active,
        end,
        Response::new(crate::body::full("hello")),
        state.clone(),
    );
    drop(futures::executor::block_on(response.into_body().collect()));
}

#[tokio::test]
async fn exports_zipkin_json_with_the_hop_tags() {
    let state = test_state();
    let (address, received) = collector(false).await;
    add_cluster(&state, "zipkin", address, false);
    let spec =
        Arc::new(TracingSpec::compile(&tracing_with(zipkin("zipkin"), Some(100.0))).unwrap());
    finished_span(&spec, &state, 503);
    let got = wait_for(&received, 1).await;
    assert_eq!(got.len(), 1);
    let (path, kind, body) = &got[0];
    assert_eq!(
        (path.as_str(), kind.as_str()),
        ("/api/v2/spans", "application/json")
    );
    let spans: serde_json::Value = serde_json::from_slice(body).unwrap();
    let span = &spans[0];
    assert_eq!(span["kind"], "CLIENT");
    assert_eq!(span["traceId"].as_str().unwrap().len(), 32);
    assert_eq!(span["localEndpoint"]["serviceName"], "reviews.default");
    assert_eq!(span["tags"]["http.status_code"], "503");
    assert_eq!(span["tags"]["error"], "true");
    assert_eq!(span["tags"]["response_size"], "5");
    assert_eq!(span["tags"]["upstream_cluster"], "outbound|9080||ratings");
    assert!(span.get("parentId").is_none());
}

fn decode_otlp(body: &[u8]) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest::decode(body).expect("an OTLP ExportTraceServiceRequest")
}

#[tokio::test]
async fn exports_otlp_over_http_and_grpc() {
    let state = test_state();
    let (http_address, http_received) = collector(false).await;
    let (grpc_address, grpc_received) = collector(true).await;
    add_cluster(&state, "otel-http", http_address, false);
    add_cluster(&state, "otel-grpc", grpc_address, true);
    let over_http = Arc::new(
        TracingSpec::compile(&tracing_with(
            otel_http("otel-http", "http://otel:4318/v1/traces"),
            None,
        ))
        .unwrap(),
    );
    let over_grpc =
        Arc::new(TracingSpec::compile(&tracing_with(otel_grpc("otel-grpc"), None)).unwrap());
    for _ in 0..3 {
        finished_span(&over_http, &state, 200);
    }
    finished_span(&over_grpc, &state, 200);
    let got = wait_for(&http_received, 1).await;
    let (path, kind, body) = &got[0];
    assert_eq!(
        (path.as_str(), kind.as_str()),
        ("/v1/traces", "application/x-protobuf")
    );
    let request = decode_otlp(body);
    let resource = &request.resource_spans[0];
    let service = &resource.resource.as_ref().unwrap().attributes[0];
    assert_eq!(service.key, "service.name");
    let spans = &resource.scope_spans[0].spans;
    assert_eq!(spans.len(), 3, "one batch");
    assert_eq!(
        spans[0].kind,
        opentelemetry_proto::tonic::trace::v1::span::SpanKind::Client as i32
    );
    assert_eq!(spans[0].trace_id.len(), 16);
    assert!(
        spans[0]
            .attributes
            .iter()
            .any(|kv| kv.key == "http.status_code")
    );
    let got = wait_for(&grpc_received, 1).await;
    let (path, kind, body) = &got[0];
    assert_eq!(
        path,
        "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
    );
    assert_eq!(kind, "application/grpc");
    assert_eq!(body[0], 0, "uncompressed");
    let length = u32::from_be_bytes(body[1..5].try_into().unwrap()) as usize;
    assert_eq!(length, body.len() - 5);
    assert_eq!(
        decode_otlp(&body[5..]).resource_spans[0].scope_spans[0]
            .spans
            .len(),
        1
    );
}

#[tokio::test]
async fn a_full_queue_drops_and_counts_without_blocking() {
    let state = test_state();
    // No such cluster: every batch fails, and the queue fills past its size.
    let spec = Arc::new(TracingSpec::compile(&tracing_with(zipkin("absent"), None)).unwrap());
    for _ in 0..(export::QUEUE_CAPACITY + 10) {
        finished_span(&spec, &state, 200);
    }
    assert!(spec.sink.dropped.load(std::sync::atomic::Ordering::Relaxed) >= 10);
}
