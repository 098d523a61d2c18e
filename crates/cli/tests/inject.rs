//! `trellis kube-inject` and `trellis inject-webhook` end to end with the
//! real binary: Bookinfo's platform manifest injected offline, and an
//! AdmissionReview answered over TLS on loopback whose JSON Patch must
//! produce exactly what kube-inject produces for the same pod.

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio_rustls::rustls;

const TRELLIS: &str = env!("CARGO_BIN_EXE_trellis");

fn documents(yaml: &str) -> Vec<Value> {
    serde_saphyr::from_str_multiple(yaml).expect("valid YAML")
}

fn kube_inject(input: &Path) -> String {
    let output = Command::new(TRELLIS)
        .args(["kube-inject", "--image-proxy", "trellis:test", "-f"])
        .arg(input)
        .output()
        .expect("running trellis kube-inject");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8 output")
}

fn container_names(pod_spec: &Value, list: &str) -> Vec<String> {
    pod_spec[list]
        .as_array()
        .into_iter()
        .flatten()
        .map(|container| container["name"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[test]
fn kube_inject_adds_the_sidecar_to_every_bookinfo_deployment() {
    let manifest =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../samples/bookinfo/platform/bookinfo.yaml");
    let before = documents(&std::fs::read_to_string(&manifest).unwrap());
    let after = documents(&kube_inject(&manifest));
    assert_eq!(
        before.len(),
        after.len(),
        "every document is printed, in order"
    );
    let mut deployments = 0;
    for (original, injected) in before.iter().zip(&after) {
        assert_eq!(original["kind"], injected["kind"]);
        assert_eq!(original["metadata"]["name"], injected["metadata"]["name"]);
        match original["kind"].as_str() {
            Some("Deployment") => {
                deployments += 1;
                let spec = &injected["spec"]["template"]["spec"];
                let app = container_names(&original["spec"]["template"]["spec"], "containers");
                let mut expected = vec!["istio-proxy".to_owned()];
                expected.extend(app);
                assert_eq!(container_names(spec, "containers"), expected);
                assert_eq!(container_names(spec, "initContainers"), ["istio-init"]);
                let annotations = &injected["spec"]["template"]["metadata"]["annotations"];
                assert!(annotations["sidecar.istio.io/status"].is_string());
                // Outside the pod template, nothing changed.
                let (mut original, mut injected) = (original.clone(), injected.clone());
                original["spec"]["template"] = Value::Null;
                injected["spec"]["template"] = Value::Null;
                assert_eq!(original, injected);
            }
            _ => assert_eq!(
                original, injected,
                "{} passes through unchanged",
                original["kind"]
            ),
        }
    }
    assert_eq!(
        deployments, 6,
        "details, ratings, reviews v1-v3, productpage"
    );
}

/// A pod as the ReplicaSet of a Deployment creates it (not yet named).
fn replica_pod() -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "generateName": "reviews-v2-7d5c9f8b6-",
            "labels": {"app": "reviews", "version": "v2", "pod-template-hash": "7d5c9f8b6"},
            "annotations": {"traffic.sidecar.istio.io/excludeOutboundPorts": "5432"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "reviews-v2-7d5c9f8b6",
                                 "uid": "3c1e", "controller": true, "blockOwnerDeletion": true}],
        },
        "spec": {
            "serviceAccountName": "bookinfo-reviews",
            "containers": [{"name": "reviews", "image": "docker.io/istio/examples-bookinfo-reviews-v2:1.20.3",
                            "ports": [{"containerPort": 9080}]}],
        },
    })
}

/// The subset of RFC 6902 the webhook emits (add, replace, remove on
/// object members and whole values).
fn apply_patch(document: &mut Value, patch: &[Value]) {
    for operation in patch {
        let path = operation["path"].as_str().unwrap();
        let (parent, key) = path.rsplit_once('/').unwrap();
        let key = key.replace("~1", "/").replace("~0", "~");
        let parent = document
            .pointer_mut(parent)
            .unwrap_or_else(|| panic!("no parent for {path}"));
        let parent = parent
            .as_object_mut()
            .expect("patches address object members");
        match operation["op"].as_str().unwrap() {
            "add" => {
                parent.insert(key, operation["value"].clone());
            }
            "replace" => {
                assert!(parent.contains_key(&key), "replace of missing {path}");
                parent.insert(key, operation["value"].clone());
            }
            "remove" => {
                parent
                    .remove(&key)
                    .unwrap_or_else(|| panic!("remove of missing {path}"));
            }
            other => panic!("unexpected op {other}"),
        }
    }
}

struct Webhook {
    child: Child,
    address: String,
}

impl Drop for Webhook {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_webhook(dir: &Path) -> (Webhook, String) {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cert_pem = certified.cert.pem();
    std::fs::write(dir.join("cert.pem"), &cert_pem).unwrap();
    std::fs::write(dir.join("key.pem"), certified.signing_key.serialize_pem()).unwrap();
    let mut child = Command::new(TRELLIS)
        .args([
            "inject-webhook",
            "--listen",
            "127.0.0.1:0",
            "--image-proxy",
            "trellis:test",
            "--tls-cert",
        ])
        .arg(dir.join("cert.pem"))
        .arg("--tls-key")
        .arg(dir.join("key.pem"))
        .stdout(Stdio::piped())
        .spawn()
        .expect("starting trellis inject-webhook");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let address = line
        .trim()
        .strip_prefix("inject webhook listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    (Webhook { child, address }, cert_pem)
}

async fn post_over_tls(address: &str, cert_pem: &str, body: Vec<u8>) -> Value {
    let mut roots = rustls::RootCertStore::empty();
    let cert = rustls_pki_types::pem::PemObject::from_pem_slice(cert_pem.as_bytes()).unwrap();
    roots.add(cert).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(address).await.unwrap();
    let server_name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(server_name, tcp)
        .await
        .unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(connection);
    let request = http::Request::post("/inject")
        .header("host", "localhost")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    serde_json::from_slice(&body).unwrap()
}

#[tokio::test]
async fn webhook_patch_matches_kube_inject() {
    let dir = tempfile::tempdir().unwrap();
    let (webhook, cert_pem) = start_webhook(dir.path());
    let pod = replica_pod();
    let review = json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "0df28fbd-5f5f-11e8-bc74-36e6bb280816",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": "default",
            "operation": "CREATE",
            "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller"},
            "object": pod,
            "dryRun": false,
        },
    });
    let answer = post_over_tls(
        &webhook.address,
        &cert_pem,
        serde_json::to_vec(&review).unwrap(),
    )
    .await;
    let response = &answer["response"];
    assert_eq!(answer["kind"], "AdmissionReview");
    assert_eq!(response["uid"], "0df28fbd-5f5f-11e8-bc74-36e6bb280816");
    assert_eq!(response["allowed"], true);
    assert_eq!(response["patchType"], "JSONPatch");
    let patch = base64::engine::general_purpose::STANDARD
        .decode(response["patch"].as_str().unwrap())
        .unwrap();
    let patch: Vec<Value> = serde_json::from_slice(&patch).unwrap();
    let mut patched = pod.clone();
    apply_patch(&mut patched, &patch);

    let pod_file = dir.path().join("pod.yaml");
    std::fs::File::create(&pod_file)
        .unwrap()
        .write_all(serde_json::to_string(&pod).unwrap().as_bytes())
        .unwrap();
    let offline = documents(&kube_inject(&pod_file));
    assert_eq!(offline.len(), 1);
    assert_eq!(patched, offline[0]);
    let args = patched["spec"]["containers"][0]["args"].as_array().unwrap();
    assert!(
        args.contains(&json!("reviews-v2")),
        "workload named after the Deployment: {args:?}"
    );
    drop(webhook);
}
