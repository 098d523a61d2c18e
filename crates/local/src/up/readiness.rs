//! When is the mesh ready? Every proxy (sidecars and gateways) reports
//! ready (it holds a certificate and its first config), then every Service
//! answers through its sidecar with a reply from a demo app whose calls all
//! reached an app, and so does Bookinfo's product page through the ingress
//! gateway. (Other gateway URLs are not probed: whether `/` has a route is
//! up to the user's VirtualServices.)

use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::time::Instant;

use super::state::UpState;
use crate::demo_app::DemoReply;
use crate::error_chain::error_chain;

const POLL_INTERVAL: Duration = Duration::from_millis(200);
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);
/// Replies from a demo app are small; anything bigger is not one.
const MAX_PROBE_BYTES: usize = 1 << 20;

/// The probes still failing when the deadline passed.
#[derive(Debug, thiserror::Error)]
pub struct NotReady {
    waited: Duration,
    failing: Vec<Probe>,
}

impl fmt::Display for NotReady {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the mesh was not ready after {:?}:", self.waited)?;
        for probe in &self.failing {
            write!(
                f,
                "\n  {} ({}): {}",
                probe.what, probe.url, probe.last_failure
            )?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone)]
struct Probe {
    /// e.g. `proxy of reviews-v2-0` or `service productpage`.
    what: String,
    url: String,
    expects: Expectation,
    last_failure: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expectation {
    /// HTTP 200.
    Ok,
    /// A demo app's reply with every call delivered.
    AppAnswer,
}

/// Waits until every proxy of `state` is ready (holds a certificate and
/// its first config), until `deadline`: apps start only then, as with
/// Istio's `holdApplicationUntilProxyStarts`.
pub(crate) async fn wait_for_proxies(state: &UpState, deadline: Instant) -> Result<(), NotReady> {
    let client = Client::builder(TokioExecutor::new()).build_http();
    let waited = deadline.saturating_duration_since(Instant::now());
    probe_until_passing(&client, proxy_probes(state), deadline)
        .await
        .map_err(|failing| NotReady { waited, failing })
}

fn proxy_probes(state: &UpState) -> Vec<Probe> {
    let probe = |workload: &super::state::WorkloadState| Probe {
        what: format!("proxy of {}", workload.pod),
        url: format!(
            "http://{}:{}/healthz/ready",
            workload.address, workload.health_port
        ),
        expects: Expectation::Ok,
        last_failure: "not probed yet".to_owned(),
    };
    state.workloads.iter().map(probe).collect()
}

/// Every sidecar's app, through that sidecar's first inbound port.
fn workload_probes(state: &UpState) -> impl Iterator<Item = Probe> + '_ {
    state.workloads.iter().filter_map(|workload| {
        let port = workload.inbound_ports.first()?;
        Some(Probe {
            what: format!("app of {}", workload.pod),
            url: format!("http://{}:{port}/", workload.address),
            expects: Expectation::AppAnswer,
            last_failure: "waiting for the app".to_owned(),
        })
    })
}

/// Waits until every probe of `state` passes, for at most `timeout`.
pub(crate) async fn wait_until_ready(state: &UpState, timeout: Duration) -> Result<(), NotReady> {
    let deadline = Instant::now() + timeout;
    let client = Client::builder(TokioExecutor::new()).build_http();
    let services = state.services.iter().map(|service| Probe {
        what: format!("service {}", service.name),
        url: service.url.clone(),
        expects: Expectation::AppAnswer,
        last_failure: "waiting for the sidecars".to_owned(),
    });
    let gateways = state
        .gateways
        .iter()
        .filter_map(|gateway| Some((gateway, gateway.url.as_ref()?)))
        .filter(|(_, url)| url.ends_with("/productpage"))
        .map(|(gateway, url)| Probe {
            what: format!("gateway {}", gateway.name),
            url: url.clone(),
            expects: Expectation::AppAnswer,
            last_failure: "waiting for the sidecars".to_owned(),
        });
    // Services are probed once every sidecar is ready, so that their calls
    // go through sidecars that already route. Each workload is probed too:
    // a Service's URL reaches only its first workload, and the others' apps
    // may still be starting.
    let answers = services
        .chain(workload_probes(state))
        .chain(gateways)
        .collect();
    for phase in [proxy_probes(state), answers] {
        probe_until_passing(&client, phase, deadline)
            .await
            .map_err(|failing| NotReady {
                waited: timeout,
                failing,
            })?;
    }
    Ok(())
}

async fn probe_until_passing(
    client: &Client<HttpConnector, Empty<Bytes>>,
    mut pending: Vec<Probe>,
    deadline: Instant,
) -> Result<(), Vec<Probe>> {
    loop {
        let results =
            futures::future::join_all(pending.iter().map(|probe| run(client, probe))).await;
        pending = pending
            .into_iter()
            .zip(results)
            .filter_map(|(mut probe, result)| {
                let failure = result.err()?;
                probe.last_failure = failure;
                Some(probe)
            })
            .collect();
        if pending.is_empty() {
            return Ok(());
        }
        if Instant::now() + POLL_INTERVAL > deadline {
            return Err(pending);
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

async fn run(client: &Client<HttpConnector, Empty<Bytes>>, probe: &Probe) -> Result<(), String> {
    let (status, headers, body) = tokio::time::timeout(PROBE_TIMEOUT, get(client, &probe.url))
        .await
        .map_err(|_| format!("no answer within {PROBE_TIMEOUT:?}"))??;
    match probe.expects {
        Expectation::Ok if status == StatusCode::OK => Ok(()),
        Expectation::Ok => Err(format!("HTTP {status}")),
        // The ext-authz stand-in answers with a verdict, not a reply.
        Expectation::AppAnswer if crate::demo_app::ext_authz::is_verdict(&headers) => Ok(()),
        Expectation::AppAnswer => check_app_answer(status, &body),
    }
}

/// A demo app answered (any status: an injected fault is an answer too),
/// and every call it made reached an app.
fn check_app_answer(status: StatusCode, body: &[u8]) -> Result<(), String> {
    let reply = serde_json::from_slice::<DemoReply>(body)
        .ok()
        .filter(DemoReply::answered_by_app)
        .ok_or_else(|| {
            let snippet = String::from_utf8_lossy(&body[..body.len().min(200)]);
            format!("HTTP {status}: {}", snippet.trim())
        })?;
    match reply.undelivered_calls().first() {
        None => Ok(()),
        Some(call) => Err(format!(
            "its call to {} failed: {}",
            call.service,
            call.error.as_deref().unwrap_or("no answer")
        )),
    }
}

async fn get(
    client: &Client<HttpConnector, Empty<Bytes>>,
    url: &str,
) -> Result<(StatusCode, http::HeaderMap, Bytes), String> {
    let request = Request::get(url)
        .body(Empty::new())
        .map_err(|e| e.to_string())?;
    let response = client.request(request).await.map_err(|e| error_chain(&e))?;
    let status = response.status();
    let (parts, body) = response.into_parts();
    let body = http_body_util::Limited::new(body, MAX_PROBE_BYTES)
        .collect()
        .await
        .map_err(|e| format!("reading the answer: {e}"))?
        .to_bytes();
    Ok((status, parts.headers, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_app_answers_even_injected_faults() {
        let fault =
            br#"{"service":"ratings","pod":"ratings-v1-0","status":500,"error":"injected fault"}"#;
        assert_eq!(
            check_app_answer(StatusCode::INTERNAL_SERVER_ERROR, fault),
            Ok(())
        );
    }

    #[test]
    fn rejects_proxy_errors_and_undelivered_calls() {
        let proxy = check_app_answer(StatusCode::SERVICE_UNAVAILABLE, b"no healthy upstream");
        assert_eq!(
            proxy,
            Err("HTTP 503 Service Unavailable: no healthy upstream".to_owned())
        );
        let undelivered = br#"{"service":"productpage","pod":"p-0","calls":[{"service":"reviews","error":"timed out after 3s"}]}"#;
        assert_eq!(
            check_app_answer(StatusCode::OK, undelivered),
            Err("its call to reviews failed: timed out after 3s".to_owned())
        );
    }

    #[tokio::test]
    async fn names_what_is_not_ready() {
        // A port that was just free: connecting to it is refused.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("http://127.0.0.1:{port}/healthz/ready");
        let client = Client::builder(TokioExecutor::new()).build_http();
        let probe = Probe {
            what: "proxy of web-0".into(),
            url: url.clone(),
            expects: Expectation::Ok,
            last_failure: String::new(),
        };
        let deadline = Instant::now() + Duration::from_millis(300);
        let failing = probe_until_passing(&client, vec![probe], deadline)
            .await
            .unwrap_err();
        let error = NotReady {
            waited: Duration::from_millis(300),
            failing,
        };
        let text = error.to_string();
        assert!(
            text.contains(&format!("proxy of web-0 ({url}): ")),
            "{text}"
        );
        assert!(text.contains("onnect"), "{text}");
    }
}
