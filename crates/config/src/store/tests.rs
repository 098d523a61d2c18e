use std::io;
use std::path::PathBuf;

use trellis_api::parse_yaml;

use super::*;
use crate::directory::LoadedFile;
use crate::error::ConfigStoreError;

fn account(name: &str) -> String {
    format!("apiVersion: v1\nkind: ServiceAccount\nmetadata: {{name: {name}}}\n---\n")
}

const BROKEN: &str = "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: [\n";

/// A reading of a directory holding these (path, text) files.
fn reading(files: &[(&str, &str)]) -> DirectoryLoad {
    let mut files: Vec<LoadedFile> = files
        .iter()
        .map(|(path, text)| LoadedFile {
            path: PathBuf::from(path),
            outcome: Ok(parse_yaml(Path::new(path), text)),
        })
        .collect();
    files.sort_by(|a, b| a.path.cmp(&b.path));
    DirectoryLoad {
        root: PathBuf::from("."),
        files,
        unreadable_dirs: Vec::new(),
    }
}

fn names(snapshot: &Snapshot) -> Vec<(String, PathBuf)> {
    snapshot
        .resources
        .iter()
        .map(|r| (r.meta().name.clone(), r.source().file.clone()))
        .collect()
}

fn in_force(store: &ConfigStore) -> Vec<(String, PathBuf)> {
    names(&store.current().expect("a snapshot"))
}

fn at(name: &str, file: &str) -> (String, PathBuf) {
    (name.to_string(), PathBuf::from(file))
}

#[test]
fn first_reading_publishes_version_one_even_when_empty() {
    let mut store = ConfigStore::new();
    assert!(store.current().is_none());
    let update = store.apply(reading(&[]));
    let snapshot = update.snapshot.expect("first snapshot");
    assert_eq!(snapshot.version, 1);
    assert!(snapshot.resources.is_empty());
    assert!(store.apply(reading(&[])).snapshot.is_none());
}

#[test]
fn a_broken_file_keeps_its_last_good_resources() {
    let mut store = ConfigStore::new();
    store.apply(reading(&[("a.yaml", &account("one"))]));

    let update = store.apply(reading(&[("a.yaml", BROKEN)]));
    assert!(update.snapshot.is_none(), "nothing in force changed");
    assert_eq!(update.reports.len(), 1);
    let line = update.reports[0].to_string();
    assert!(line.starts_with("error: a.yaml:3:"), "{line}");
    assert_eq!(in_force(&store), [at("one", "a.yaml")]);

    let again = store.apply(reading(&[("a.yaml", BROKEN)]));
    assert!(
        again.reports.is_empty(),
        "unchanged problems are not repeated"
    );

    let fixed = store.apply(reading(&[("a.yaml", &account("two"))]));
    assert_eq!(fixed.snapshot.expect("a new snapshot").version, 2);
    assert!(fixed.reports.is_empty());
    assert_eq!(in_force(&store), [at("two", "a.yaml")]);
}

#[test]
fn a_file_that_was_never_valid_contributes_nothing() {
    let mut store = ConfigStore::new();
    let mixed = format!("{}{BROKEN}", account("fine"));
    let update = store.apply(reading(&[("a.yaml", &mixed), ("b.yaml", &account("b"))]));
    assert_eq!(update.reports.len(), 1);
    assert_eq!(in_force(&store), [at("b", "b.yaml")]);
}

#[test]
fn a_duplicate_across_files_keeps_the_first_definition() {
    let mut store = ConfigStore::new();
    store.apply(reading(&[("b.yaml", &account("shared"))]));
    let newcomer = format!("{}{}", account("shared"), account("extra"));
    let update = store.apply(reading(&[
        ("a.yaml", &newcomer),
        ("b.yaml", &account("shared")),
    ]));
    assert!(update.snapshot.is_none());
    let line = update.reports[0].to_string();
    assert!(line.starts_with("error: a.yaml:1:1: "), "{line}");
    assert!(line.contains("ServiceAccount/default/shared is already defined in b.yaml:1:1"));
    assert_eq!(in_force(&store), [at("shared", "b.yaml")]);
}

#[test]
fn on_a_first_reading_the_first_file_in_path_order_wins() {
    let mut store = ConfigStore::new();
    let update = store.apply(reading(&[
        ("b.yaml", &account("shared")),
        ("a.yaml", &account("shared")),
    ]));
    assert_eq!(update.reports.len(), 1);
    assert_eq!(in_force(&store), [at("shared", "a.yaml")]);
}

#[test]
fn a_resource_can_move_between_files_in_one_change() {
    let mut store = ConfigStore::new();
    store.apply(reading(&[("a.yaml", &account("moving")), ("b.yaml", "")]));
    let update = store.apply(reading(&[("a.yaml", ""), ("b.yaml", &account("moving"))]));
    assert!(update.reports.is_empty(), "{:?}", update.reports);
    assert_eq!(in_force(&store), [at("moving", "b.yaml")]);
}

#[test]
fn a_refused_file_keeps_holding_what_it_held() {
    let mut store = ConfigStore::new();
    store.apply(reading(&[
        ("a.yaml", &account("x")),
        ("b.yaml", &account("y")),
    ]));
    // b now wants x (refused, so b keeps y); c wants y, which b still holds.
    let b = format!("{}{}", account("x"), account("z"));
    let update = store.apply(reading(&[
        ("a.yaml", &account("x")),
        ("b.yaml", &b),
        ("c.yaml", &account("y")),
    ]));
    assert_eq!(update.reports.len(), 2, "{:?}", update.reports);
    assert_eq!(in_force(&store), [at("x", "a.yaml"), at("y", "b.yaml")]);
}

#[test]
fn deleted_files_take_their_resources_away() {
    let mut store = ConfigStore::new();
    store.apply(reading(&[
        ("a.yaml", &account("a")),
        ("b.yaml", &account("b")),
    ]));
    let update = store.apply(reading(&[("b.yaml", &account("b"))]));
    assert_eq!(update.snapshot.expect("changed").version, 2);
    assert_eq!(in_force(&store), [at("b", "b.yaml")]);
}

#[test]
fn unreadable_files_and_directories_keep_what_they_held() {
    let mut store = ConfigStore::new();
    store.apply(reading(&[
        ("d/a.yaml", &account("a")),
        ("b.yaml", &account("b")),
    ]));
    let mut load = reading(&[]);
    load.files.push(LoadedFile {
        path: PathBuf::from("b.yaml"),
        outcome: Err(ConfigStoreError::ReadFile {
            path: PathBuf::from("b.yaml"),
            source: io::Error::from(io::ErrorKind::PermissionDenied),
        }),
    });
    load.unreadable_dirs.push(ConfigStoreError::ReadDir {
        path: PathBuf::from("d"),
        source: io::Error::from(io::ErrorKind::PermissionDenied),
    });
    let update = store.apply(load);
    assert!(update.snapshot.is_none());
    assert_eq!(update.reports.len(), 1);
    assert!(
        update.reports[0]
            .to_string()
            .starts_with("error: b.yaml: cannot read")
    );
    assert_eq!(in_force(&store), [at("a", "d/a.yaml"), at("b", "b.yaml")]);
}

#[test]
fn warnings_are_reported_once() {
    let mut store = ConfigStore::new();
    let filter =
        "apiVersion: networking.istio.io/v1alpha3\nkind: EnvoyFilter\nmetadata: {name: gw}\n";
    let update = store.apply(reading(&[("gw.yaml", filter)]));
    assert_eq!(update.reports.len(), 1);
    assert_eq!(update.reports[0].severity, Severity::Warning);
    assert!(
        update.reports[0]
            .to_string()
            .starts_with("warning: gw.yaml:1:1: EnvoyFilter default/gw is not supported")
    );
    assert!(
        store
            .apply(reading(&[("gw.yaml", filter)]))
            .reports
            .is_empty()
    );
}
