//! The Kubernetes source against the testbed's fake API server: Bookinfo's
//! manifests and pods in, snapshots out, through deletions, invalid
//! updates, a relist after 410 Gone, an API server that comes up late,
//! Istio CRDs installed later, and endpoint readiness from EndpointSlices
//! (or from pods when the server has none).

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use trellis_config::{Snapshot, SnapshotReceiver};
use trellis_kube_source::{KubeSource, WatchSettings};
use trellis_testbed::kube_api::FakeKubeApi;

const BOOKINFO: &str = include_str!("../../../samples/bookinfo/platform/bookinfo.yaml");
const DEBOUNCE: Duration = Duration::from_millis(20);
const ISTIO_NETWORKING: &str = "networking.istio.io";
const ENDPOINT_SLICES: &str = "discovery.k8s.io";

struct Cluster {
    api: FakeKubeApi,
    _source: KubeSource,
    snapshots: SnapshotReceiver,
}

impl Cluster {
    /// The fake API server with Bookinfo applied in `default`, and the
    /// source watching it.
    async fn bookinfo() -> Cluster {
        Cluster::bookinfo_without(&[]).await
    }

    /// Bookinfo on a server that does not serve these API groups.
    async fn bookinfo_without(groups: &[&str]) -> Cluster {
        let api = FakeKubeApi::start_with(1000, Duration::from_millis(100))
            .await
            .unwrap();
        for group in groups {
            api.remove_api_group(group);
        }
        apply_bookinfo(&api);
        let (source, snapshots) = watch(&api.url());
        Cluster {
            api,
            _source: source,
            snapshots,
        }
    }

    /// Waits (at most 10s) for a snapshot satisfying `condition`.
    async fn until(&self, what: &str, condition: impl Fn(&Snapshot) -> bool) -> Arc<Snapshot> {
        let mut snapshots = self.snapshots.clone();
        let wait = snapshots.wait_for(|snapshot| snapshot.as_deref().is_some_and(&condition));
        match tokio::time::timeout(Duration::from_secs(10), wait).await {
            Ok(Ok(snapshot)) => snapshot.clone().unwrap(),
            Ok(Err(_)) => panic!("the source stopped before: {what}"),
            Err(_) => {
                let last = self.snapshots.borrow().clone();
                panic!("timed out waiting for: {what}; last snapshot: {last:#?}")
            }
        }
    }
}

fn apply_bookinfo(api: &FakeKubeApi) {
    let namespace =
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}});
    api.create(namespace).unwrap();
    api.apply_yaml(BOOKINFO, "default").unwrap();
}

/// The source watching `url`, rediscovering every 200 ms and retrying
/// failed discovery from 50 ms.
fn watch(url: &str) -> (KubeSource, SnapshotReceiver) {
    let client = kube::Client::try_from(kube::Config::new(url.parse().unwrap())).unwrap();
    let settings = WatchSettings {
        debounce: DEBOUNCE,
        rediscovery_interval: Duration::from_millis(200),
        first_retry: Duration::from_millis(50),
    };
    trellis_kube_source::watch(client, settings, Default::default())
}

/// Sets a reviews pod's conditions in the reviews EndpointSlice, as the
/// controller would while it terminates.
fn set_slice_conditions(api: &FakeKubeApi, pod: &str, conditions: Value) {
    let mut slice = api
        .get(
            "discovery.k8s.io/v1",
            "EndpointSlice",
            "default",
            "reviews-slice",
        )
        .unwrap();
    let endpoints = slice["endpoints"].as_array_mut().unwrap();
    let endpoint = endpoints
        .iter_mut()
        .find(|endpoint| endpoint["targetRef"]["name"] == pod)
        .unwrap();
    endpoint["conditions"] = conditions;
    api.apply(slice).unwrap();
}

fn reviews_endpoints(snapshot: &Snapshot) -> Vec<SocketAddr> {
    let Some(reviews) = snapshot.registry.service_by_host("reviews", "default") else {
        return Vec::new();
    };
    let port = reviews.port(9080).unwrap();
    snapshot
        .registry
        .endpoints(reviews, port)
        .into_iter()
        .map(|endpoint| endpoint.address)
        .collect()
}

fn virtual_service(destination: &str) -> Value {
    json!({
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": "reviews", "namespace": "default"},
        "spec": {"hosts": ["reviews"], "http": [{"route": [{"destination": {"host": destination}}]}]},
    })
}

fn route_host(snapshot: &Snapshot) -> Option<String> {
    let vs = snapshot.virtual_services().next()?;
    Some(vs.spec.http[0].route[0].destination.host.clone())
}

fn pod_ip(api: &FakeKubeApi, name: &str) -> SocketAddr {
    let pod = api.get("v1", "Pod", "default", name).unwrap();
    let ip = pod["status"]["podIP"].as_str().unwrap();
    SocketAddr::new(ip.parse().unwrap(), 9080)
}

#[tokio::test]
async fn bookinfo_services_pods_and_routes_become_a_snapshot() {
    let cluster = Cluster::bookinfo().await;
    let snapshot = cluster
        .until("three reviews endpoints", |s| {
            reviews_endpoints(s).len() == 3
        })
        .await;
    let hosts: Vec<&str> = snapshot
        .registry
        .services()
        .iter()
        .map(|s| s.hostname.as_str())
        .collect();
    assert_eq!(
        hosts,
        [
            "details.default.svc.cluster.local",
            "productpage.default.svc.cluster.local",
            "ratings.default.svc.cluster.local",
            "reviews.default.svc.cluster.local",
        ]
    );
    assert_eq!(snapshot.namespaces().count(), 1);
    assert_eq!(snapshot.service_accounts().count(), 4);
    let reviews = snapshot
        .registry
        .service_by_host("reviews", "default")
        .unwrap();
    let endpoints = snapshot
        .registry
        .endpoints(reviews, reviews.port(9080).unwrap());
    assert!(
        endpoints
            .iter()
            .all(|e| e.service_account == "bookinfo-reviews")
    );
    let versions: Vec<&str> = endpoints
        .iter()
        .map(|e| e.labels["version"].as_str())
        .collect();
    assert_eq!(versions, ["v1", "v2", "v3"]);

    cluster.api.create(virtual_service("reviews")).unwrap();
    cluster
        .until("the VirtualService", |s| {
            route_host(s).as_deref() == Some("reviews")
        })
        .await;

    let gone = pod_ip(&cluster.api, "reviews-v1-pod-0");
    cluster
        .api
        .delete("v1", "Pod", "default", "reviews-v1-pod-0")
        .unwrap();
    let snapshot = cluster
        .until("two reviews endpoints", |s| reviews_endpoints(s).len() == 2)
        .await;
    assert!(!reviews_endpoints(&snapshot).contains(&gone));

    // Not ready: no traffic; ready again: back.
    cluster
        .api
        .set_pod_ready("default", "reviews-v2-pod-0", false)
        .unwrap();
    cluster
        .until("one reviews endpoint", |s| reviews_endpoints(s).len() == 1)
        .await;
    cluster
        .api
        .set_pod_ready("default", "reviews-v2-pod-0", true)
        .unwrap();
    cluster
        .until("two reviews endpoints again", |s| {
            reviews_endpoints(s).len() == 2
        })
        .await;
}

#[tokio::test]
async fn an_invalid_update_keeps_the_last_good_version() {
    let cluster = Cluster::bookinfo().await;
    cluster.api.create(virtual_service("reviews")).unwrap();
    cluster
        .until("the VirtualService", |s| route_host(s).is_some())
        .await;

    // An empty destination host is refused by validation...
    cluster.api.apply(virtual_service("")).unwrap();
    // ...so after a later change lands, the first version is still in force.
    cluster
        .api
        .delete("v1", "Pod", "default", "ratings-v1-pod-0")
        .unwrap();
    let snapshot = cluster
        .until("ratings without endpoints", |s| {
            let ratings = s.registry.service_by_host("ratings", "default").unwrap();
            s.registry
                .endpoints(ratings, ratings.port(9080).unwrap())
                .is_empty()
        })
        .await;
    assert_eq!(route_host(&snapshot).as_deref(), Some("reviews"));

    cluster
        .api
        .apply(virtual_service("reviews.default.svc.cluster.local"))
        .unwrap();
    cluster
        .until("the fixed VirtualService", |s| {
            route_host(s).as_deref() == Some("reviews.default.svc.cluster.local")
        })
        .await;
}

#[tokio::test]
async fn a_relist_after_410_converges_without_losing_or_duplicating() {
    let cluster = Cluster::bookinfo().await;
    cluster
        .until("three reviews endpoints", |s| {
            reviews_endpoints(s).len() == 3
        })
        .await;
    let lists_before = cluster.api.list_requests();

    // The watches fall behind while things change, and the history they
    // would resume from is compacted away: resuming answers 410.
    cluster.api.partition_watches();
    let gone = pod_ip(&cluster.api, "reviews-v3-pod-0");
    cluster
        .api
        .delete("v1", "Pod", "default", "reviews-v3-pod-0")
        .unwrap();
    cluster.api.create(virtual_service("reviews")).unwrap();
    cluster.api.compact();
    cluster.api.restore_watches();

    let snapshot = cluster
        .until("the relisted state", |s| {
            reviews_endpoints(s).len() == 2 && route_host(s).is_some()
        })
        .await;
    assert!(!reviews_endpoints(&snapshot).contains(&gone));
    assert!(
        cluster.api.list_requests() > lists_before,
        "no relist happened"
    );
    // Exactly the cluster's objects: 4 services, 4 accounts, 1 namespace,
    // 5 remaining pods as workloads and the VirtualService.
    assert_eq!(snapshot.resources.len(), 15, "{:#?}", snapshot.resources);

    // Watching resumes normally after the relist.
    cluster
        .api
        .delete("v1", "Pod", "default", "reviews-v2-pod-0")
        .unwrap();
    cluster
        .until("one reviews endpoint", |s| reviews_endpoints(s).len() == 1)
        .await;
}

#[tokio::test]
async fn the_source_waits_for_an_api_server_that_is_not_up_yet() {
    // A free port nobody listens on yet.
    let address = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap();
    let (_source, snapshots) = watch(&format!("http://{address}"));
    // Several discovery attempts fail meanwhile; nothing is published.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(snapshots.borrow().is_none());

    let api = FakeKubeApi::start_at(address, 1000, Duration::from_millis(100))
        .await
        .unwrap();
    apply_bookinfo(&api);
    let cluster = Cluster {
        api,
        _source,
        snapshots,
    };
    cluster
        .until("three reviews endpoints", |s| {
            reviews_endpoints(s).len() == 3
        })
        .await;
}

#[tokio::test]
async fn istio_kinds_installed_later_are_watched() {
    let cluster = Cluster::bookinfo_without(&[ISTIO_NETWORKING]).await;
    cluster
        .until("three reviews endpoints", |s| {
            reviews_endpoints(s).len() == 3
        })
        .await;
    // Stored, but the group is not served: not watched yet.
    cluster.api.create(virtual_service("reviews")).unwrap();
    cluster
        .api
        .delete("v1", "Pod", "default", "reviews-v1-pod-0")
        .unwrap();
    let snapshot = cluster
        .until("two reviews endpoints", |s| reviews_endpoints(s).len() == 2)
        .await;
    assert_eq!(route_host(&snapshot), None);

    // The CRDs get installed: the next discovery watches them.
    cluster.api.add_api_group(ISTIO_NETWORKING);
    let snapshot = cluster
        .until("the VirtualService", |s| {
            route_host(s).as_deref() == Some("reviews")
        })
        .await;
    assert_eq!(reviews_endpoints(&snapshot).len(), 2);
}

#[tokio::test]
async fn endpoint_slices_decide_which_pods_are_endpoints() {
    let cluster = Cluster::bookinfo().await;
    cluster
        .until("three reviews endpoints", |s| {
            reviews_endpoints(s).len() == 3
        })
        .await;
    // Terminating in the slice while the pod object still reads Ready:
    // the slice wins, and terminating endpoints get no new traffic.
    let terminating = pod_ip(&cluster.api, "reviews-v1-pod-0");
    let conditions = json!({"ready": false, "serving": true, "terminating": true});
    set_slice_conditions(&cluster.api, "reviews-v1-pod-0", conditions);
    let snapshot = cluster
        .until("two reviews endpoints", |s| reviews_endpoints(s).len() == 2)
        .await;
    assert!(!reviews_endpoints(&snapshot).contains(&terminating));

    let conditions = json!({"ready": true, "serving": true, "terminating": false});
    set_slice_conditions(&cluster.api, "reviews-v1-pod-0", conditions);
    cluster
        .until("three reviews endpoints again", |s| {
            reviews_endpoints(s).len() == 3
        })
        .await;
}

#[tokio::test]
async fn without_endpoint_slices_the_pods_ready_condition_decides() {
    let cluster = Cluster::bookinfo_without(&[ENDPOINT_SLICES]).await;
    cluster
        .until("three reviews endpoints", |s| {
            reviews_endpoints(s).len() == 3
        })
        .await;
    cluster
        .api
        .set_pod_ready("default", "reviews-v2-pod-0", false)
        .unwrap();
    cluster
        .until("two reviews endpoints", |s| reviews_endpoints(s).len() == 2)
        .await;
    // The slices exist in storage but are not served, so not read: a slice
    // saying a ready pod is not ready changes nothing.
    let still_ready = pod_ip(&cluster.api, "reviews-v1-pod-0");
    let conditions = json!({"ready": false, "serving": false, "terminating": false});
    set_slice_conditions(&cluster.api, "reviews-v1-pod-0", conditions);
    cluster.api.create(virtual_service("reviews")).unwrap();
    let snapshot = cluster
        .until("the VirtualService", |s| route_host(s).is_some())
        .await;
    assert!(reviews_endpoints(&snapshot).contains(&still_ready));
    assert_eq!(reviews_endpoints(&snapshot).len(), 2);
}
