//! Envoy xDS v3 plumbing shared by the control plane and the proxy: type URLs,
//! per-proxy resource sets, node identity, proto3 JSON dumps, and the
//! aggregated discovery service (ADS) server and client.
#![deny(unsafe_code)]
#![deny(rust_2018_idioms)]

pub mod auth;
pub mod client;
mod delta;
pub mod json;
pub mod metrics;
pub mod node;
mod proxy_meta;
pub mod resources;
pub mod server;
mod service;
pub mod stats_config;
mod throttle;
pub mod type_url;

pub use auth::{AuthenticateCaller, Caller};
pub use envoy_types::pb;
pub use envoy_types::pb::google::protobuf::Any;
pub use node::{NodeInfo, ProxyKind};
pub use resources::{EncodedLayers, EncodedResources, ProxyResources, ResourceLayer};
pub use service::AdsService;
pub use throttle::DEFAULT_PUSH_THROTTLE;
