//! Trellis local mode.
//!
//! - [`run_up`] (`trellis up`) runs a whole mesh on one machine without
//!   root or Kubernetes: the control plane, and each Deployment replica of
//!   a set of Kubernetes manifests as a demo app beside its own sidecar,
//!   each workload on its own loopback address, and Istio's ingress gateway. [`UpState`] is the
//!   `up.json` it writes for tests and tools. With `--netns` (root), each
//!   workload runs in a network namespace of its own with iptables
//!   capture, as in a Kubernetes pod.
//! - [`run_demo_app`] (`trellis demo-app`) is the workload those processes
//!   run in place of the containers' images: Bookinfo's call graph for
//!   Bookinfo's names, an echo otherwise, answering [`DemoReply`] JSON.
//! - [`die_with_parent`] makes a spawned process die with its parent.
#![deny(unsafe_code)]
#![deny(rust_2018_idioms)]

pub mod demo_app;
mod error_chain;
mod parent_death;
pub mod up;

pub use demo_app::{DemoAppArgs, DemoReply, run_demo_app};
pub use parent_death::die_with_parent;
pub use up::{
    ControlPlaneState, GatewayPort, GatewayState, NetworkState, ProxyRole, ServiceState, UpArgs,
    UpState, WorkloadState, run_up,
};
