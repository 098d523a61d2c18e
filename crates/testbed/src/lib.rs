//! Test support for Trellis's end-to-end tests (never shipped).
//!
//! [`UpMesh`] runs `trellis up` for one test, on an address range and in a
//! temporary directory of its own, and reads its `up.json`; scenarios then
//! read like this:
//!
//! ```no_run
//! # async fn scenario() {
//! use trellis_testbed::UpMesh;
//!
//! // In a test of the `trellis` package: env!("CARGO_BIN_EXE_trellis").
//! let trellis = "target/debug/trellis";
//! let mut mesh = UpMesh::start(trellis, "keeps_routing").await;
//! let page = mesh.url("productpage");
//! mesh.kill_control_plane();
//! assert_eq!(mesh.get(&page).await.unwrap().status, 200);
//! mesh.restart_control_plane().await;
//! # }
//! ```
//!
//! Dropping the mesh stops `up` and everything it started, even when the
//! test fails. Everything a test spawns also dies with the thread that
//! spawned it, so start meshes from the test's own thread (the body of a
//! `#[tokio::test]`), not from `spawn_blocking`.
#![deny(unsafe_code)]
#![deny(rust_2018_idioms)]

mod address_range;
mod http;
pub mod kube_api;
mod mesh;
mod metrics;
pub mod netns;
mod output;
mod trace_collector;

pub use address_range::address_range_for;
pub use http::{HttpClient, Reply, send_raw};
pub use mesh::{UpMesh, UpMeshBuilder};
pub use metrics::requests_counted;
pub use trace_collector::{CollectedSpan, Received, TraceCollector};
pub use trellis_local::{
    ControlPlaneState, DemoReply, GatewayPort, GatewayState, ServiceState, UpState, WorkloadState,
};
