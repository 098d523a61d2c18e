//! The files `up` writes before starting the control plane: the watched
//! config directory (the manifests' networking documents, Services, and one
//! WorkloadEntry per workload) and the workloads' credentials.

use std::collections::{BTreeMap, HashSet};
use std::ffi::OsStr;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use trellis_api::AnyResource;
use trellis_ca::{TokenEntry, generate_token, write_tokens_file};

use super::manifests::{ManifestFile, Manifests, watched_text_with};
use super::netns::{RewriteError, with_cluster_ip};
use super::plan::MeshPlan;
use super::state::WorkloadState;
use super::state_dir::write_secret;
use super::workload_entry::workload_entry_yaml;

/// Copies each manifest's watched documents into `config_dir` under the
/// manifest's own file name (so `virtual-service-reviews-90-10.yaml` can be
/// replaced by name), then writes every workload's WorkloadEntry.
/// Services named in `cluster_ips` (by namespace and name) are written
/// with that `clusterIP`, as the API server would record them.
pub(crate) fn write_config(
    config_dir: &Path,
    manifests: &Manifests,
    plan: &MeshPlan,
    workloads: &[WorkloadState],
    cluster_ips: &BTreeMap<(String, String), Ipv4Addr>,
) -> anyhow::Result<()> {
    let mut used: HashSet<PathBuf> = workloads.iter().map(|w| w.workload_entry.clone()).collect();
    for file in &manifests.files {
        let Some(text) = config_text(file, cluster_ips)? else {
            continue;
        };
        let name = file.path.file_name().unwrap_or(OsStr::new("manifest.yaml"));
        let path = unique_path(config_dir, name, &mut used);
        let header = format!(
            "# Copied by `trellis up` from {}: edit this file to change the running mesh.\n",
            file.path.display()
        );
        std::fs::write(&path, header + &text)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    for (planned, placed) in plan.workloads.iter().zip(workloads) {
        let yaml = workload_entry_yaml(planned, placed.address);
        std::fs::write(&placed.workload_entry, yaml)
            .with_context(|| format!("writing {}", placed.workload_entry.display()))?;
    }
    Ok(())
}

fn config_text(
    file: &ManifestFile,
    cluster_ips: &BTreeMap<(String, String), Ipv4Addr>,
) -> Result<Option<String>, RewriteError> {
    watched_text_with(file, |resource, document| {
        let AnyResource::Service(service) = resource else {
            return Ok(None);
        };
        let key = (service.namespace().to_owned(), service.name().to_owned());
        match cluster_ips.get(&key) {
            Some(vip) => with_cluster_ip(service.name(), document, *vip).map(Some),
            None => Ok(None),
        }
    })
}

/// `dir/name`, or `dir/STEM-2.EXT` (then -3, ...) when two inputs share a
/// file name.
fn unique_path(dir: &Path, name: &OsStr, used: &mut HashSet<PathBuf>) -> PathBuf {
    let original = Path::new(name);
    let stem = original.file_stem().unwrap_or(name).to_string_lossy();
    let extension = original
        .extension()
        .map(|ext| format!(".{}", ext.to_string_lossy()))
        .unwrap_or_default();
    let mut candidate = dir.join(name);
    let mut counter = 2;
    while !used.insert(candidate.clone()) {
        candidate = dir.join(format!("{stem}-{counter}{extension}"));
        counter += 1;
    }
    candidate
}

/// One token per workload replica: its own file for its sidecar (mode
/// 0600), and the control plane's table mapping each token to the identity
/// the CA may sign for it.
pub(crate) fn write_tokens(
    workload_tokens: &Path,
    workloads: &[WorkloadState],
) -> anyhow::Result<()> {
    let mut entries = Vec::with_capacity(workloads.len());
    for workload in workloads {
        let token = generate_token();
        write_secret(&workload.token_file, &token)
            .with_context(|| format!("writing {}", workload.token_file.display()))?;
        entries.push(TokenEntry {
            token,
            namespace: workload.namespace.clone(),
            service_account: workload.service_account.clone(),
        });
    }
    write_tokens_file(workload_tokens, &entries)
        .with_context(|| format!("writing {}", workload_tokens.display()))
}

#[cfg(test)]
mod tests {
    use trellis_api::{AnyResource, parse_yaml};

    use super::*;
    use crate::up::addresses::AddressRange;
    use crate::up::launch::{Isolation, Paths, place_workloads};
    use crate::up::{manifests, plan};

    /// The bundled Bookinfo, placed in `root`'s config and tokens dirs.
    fn bookinfo_in(root: &Path) -> (Manifests, MeshPlan, Vec<WorkloadState>) {
        let (config_dir, tokens_dir) = (root.join("config"), root.join("tokens"));
        std::fs::create_dir_all(&config_dir).unwrap();
        std::fs::create_dir_all(&tokens_dir).unwrap();
        let unused = root.join("unused");
        let paths = Paths {
            exe: "trellis".to_owned(),
            config_dir,
            root_cert: unused.clone(),
            workload_tokens: unused.clone(),
            tokens_dir,
            ca_dir: unused,
        };
        let manifests = manifests::load(&[]).unwrap();
        let plan = plan::plan(manifests.resources()).unwrap();
        let mut addresses = "127.77.8.0/24".parse::<AddressRange>().unwrap().allocator();
        let workloads =
            place_workloads(&plan, &mut addresses, &paths, Isolation::Loopback).unwrap();
        (manifests, plan, workloads)
    }

    #[test]
    fn config_dir_holds_what_the_control_plane_needs() {
        let root = tempfile::tempdir().unwrap();
        let (manifests, plan, workloads) = bookinfo_in(root.path());
        let config_dir = root.path().join("config");
        write_config(&config_dir, &manifests, &plan, &workloads, &BTreeMap::new()).unwrap();

        assert!(
            config_dir
                .join("virtual-service-reviews-90-10.yaml")
                .is_file()
        );
        let mut kinds = Vec::new();
        for entry in std::fs::read_dir(&config_dir).unwrap() {
            let path = entry.unwrap().path();
            let outcome = parse_yaml(&path, &std::fs::read_to_string(&path).unwrap());
            assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
            kinds.extend(outcome.resources.iter().map(|r| r.kind().to_owned()));
            for resource in &outcome.resources {
                if let AnyResource::WorkloadEntry(entry) = resource {
                    let placed = workloads.iter().find(|w| w.pod == entry.meta.name).unwrap();
                    assert_eq!(entry.spec.address, placed.address.to_string());
                }
            }
        }
        let count = |kind: &str| kinds.iter().filter(|k| *k == kind).count();
        assert_eq!(count("Service"), 4);
        assert_eq!(count("WorkloadEntry"), 6);
        assert_eq!(count("DestinationRule"), 4);
        assert_eq!(count("VirtualService"), 2);
        assert_eq!(count("Gateway"), 1);
        assert_eq!(count("Deployment") + count("ServiceAccount"), 0);
    }

    #[test]
    fn services_carry_the_cluster_ips_up_allocated() {
        let root = tempfile::tempdir().unwrap();
        let (manifests, plan, workloads) = bookinfo_in(root.path());
        let config_dir = root.path().join("config");
        let vip = Ipv4Addr::new(10, 96, 0, 3);
        let cluster_ips = BTreeMap::from([(("default".to_owned(), "reviews".to_owned()), vip)]);
        write_config(&config_dir, &manifests, &plan, &workloads, &cluster_ips).unwrap();
        let path = config_dir.join("bookinfo.yaml");
        let outcome = parse_yaml(&path, &std::fs::read_to_string(&path).unwrap());
        assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
        let mut services = 0;
        for resource in &outcome.resources {
            let AnyResource::Service(service) = resource else {
                continue;
            };
            services += 1;
            let expected = (service.name() == "reviews").then(|| vip.to_string());
            assert_eq!(service.spec.cluster_ip, expected, "{}", service.name());
            assert!(!service.spec.ports.is_empty());
        }
        assert_eq!(services, 4);
    }

    #[test]
    fn each_workload_gets_its_own_token() {
        let root = tempfile::tempdir().unwrap();
        let (_, _, workloads) = bookinfo_in(root.path());
        let table = root.path().join("workload-tokens.json");
        write_tokens(&table, &workloads).unwrap();
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&table).unwrap()).unwrap();
        let entries = json["tokens"].as_array().unwrap();
        assert_eq!(entries.len(), workloads.len());
        for (entry, workload) in entries.iter().zip(&workloads) {
            let token = std::fs::read_to_string(&workload.token_file).unwrap();
            assert_eq!(entry["token"], token.as_str());
            assert_eq!(entry["serviceAccount"], workload.service_account.as_str());
        }
    }

    #[test]
    fn keeps_names_and_disambiguates_clashes() {
        let dir = Path::new("/s/config");
        let mut used = HashSet::from([dir.join("workload-default.a-0.yaml")]);
        let first = unique_path(dir, OsStr::new("vs.yaml"), &mut used);
        let second = unique_path(dir, OsStr::new("vs.yaml"), &mut used);
        let third = unique_path(dir, OsStr::new("vs.yaml"), &mut used);
        assert_eq!(first, dir.join("vs.yaml"));
        assert_eq!(second, dir.join("vs-2.yaml"));
        assert_eq!(third, dir.join("vs-3.yaml"));
        let entry = unique_path(dir, OsStr::new("workload-default.a-0.yaml"), &mut used);
        assert_eq!(entry, dir.join("workload-default.a-0-2.yaml"));
    }
}
