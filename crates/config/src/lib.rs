#![deny(unsafe_code)]
#![deny(rust_2018_idioms)]
//! Trellis's config store: sources of resources (a watched directory),
//! immutable versioned [`Snapshot`]s of everything in force, and the service
//! [`Registry`] built with each snapshot.
//!
//! For a one-off reading (e.g. `trellis analyze`):
//! `ConfigStore::new().apply(load_directory(dir))` gives the snapshot and
//! every problem, including resources defined in two files.
//!
//! Decisions where Istio or Kubernetes leave room:
//! - Hidden entries (names starting with `.`) are not read: editors' swap
//!   files, and the `..data` directories of mounted ConfigMaps (whose files
//!   are reached through the mount's top-level symlinks). Symlinks are
//!   followed; loops end.
//! - A directory that cannot be listed is "unknown", not empty: what was
//!   loaded from it stays in force.
//! - A file's problems are printed when they change, not on every reload;
//!   its resources are counted in [`validation`]'s metrics the same way.
//! - Snapshot resources are sorted by kind, namespace and name.
//! - Endpoints come from WorkloadEntries with IP addresses; an entry
//!   without a service account runs as `default`.
//! - Port protocols follow Istio's naming rule; TLS, HTTPS and databases
//!   are [`Protocol::Tcp`]; non-TCP ports are [`Protocol::Unknown`].

pub mod directory;
mod error;
pub mod registry;
mod snapshot;
mod store;
pub mod validation;

pub use directory::{
    Debounce, DirectoryLoad, DirectoryWatcher, LoadedFile, SnapshotReceiver, load_directory,
    load_directory_observed, watch, watch_debounced,
};
pub use error::ConfigStoreError;
pub use registry::{
    CLUSTER_DOMAIN, EntryDetails, EntryEndpoint, MeshEndpoint, MeshService, MeshServicePort,
    Protocol, Registry, TargetPort, service_hostname,
};
pub use snapshot::Snapshot;
pub use store::{ConfigStore, Problem, Report, Severity, Update};
pub use validation::ValidationMetrics;
