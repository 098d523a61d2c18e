// TEMPORARY: exercises UpMesh against the fake binary; deleted after use.
use std::time::Duration;
use trellis_testbed::UpMesh;

const BIN: &str = "/work/main/target/debug/examples/fake_trellis";

#[tokio::test(flavor = "multi_thread")]
async fn scenario_one() {
    let mut mesh = UpMesh::start(BIN, "scenario_one").await;
    let page = mesh.url("productpage");
    let reply = mesh
        .get_with_headers(&page, &[("end-user", "jason")])
        .await
        .unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(reply.version_of("reviews").as_deref(), Some("v1"));
    assert_eq!(mesh.workload("reviews-v2").pod, "reviews-v2-0");
    assert_eq!(mesh.workloads_of("reviews").len(), 3);
    assert!(
        mesh.wait_for_output("spec: fake error", Duration::from_secs(5))
            .await
            .unwrap()
            .starts_with("error: ")
    );
    mesh.kill_control_plane();
    assert!(
        mesh.wait_for_output("control plane exited", Duration::from_secs(5))
            .await
            .is_some()
    );
    assert_eq!(mesh.get(&page).await.unwrap().status, 200);
    mesh.restart_control_plane().await;
    mesh.write_config("vs.yaml", "x: 1\n");
    assert!(mesh.config_dir().join("vs.yaml").exists());
    println!("{}", mesh.state().state_dir.display());
}

#[tokio::test(flavor = "multi_thread")]
async fn scenario_two() {
    let mesh = UpMesh::start(BIN, "scenario_two").await;
    assert_eq!(mesh.get(&mesh.url("ratings")).await.unwrap().status, 200);
}

#[tokio::test]
#[should_panic(expected = "did not become ready")]
async fn bad_manifest() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bad.yaml"), "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: x}\nspec:\n  http:\n  - route:\n    - destination: {host: a}\n      weight: -1\n").unwrap();
    let _mesh = UpMesh::builder(BIN, "bad_manifest")
        .file(dir.path())
        .start()
        .await;
}
