//! Turns successive readings of a source into snapshots, with the rules
//! that keep a mesh running while its config is being edited:
//!
//! - a file with any error is reported and its last good resources stay in
//!   force (a file that was never valid contributes nothing);
//! - a resource (kind/namespace/name) defined in two files is an error
//!   naming both, and the definition that was there first stays in force;
//! - a deleted file's resources go away;
//! - a new snapshot (version + 1) only when what is in force changed.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use trellis_api::{AnyResource, ConfigError, Position, ResourceKey};

use crate::directory::DirectoryLoad;
use crate::snapshot::Snapshot;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
}

/// Something wrong with a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    Config(ConfigError),
    /// The file could not be read; `message` names it.
    Unreadable {
        path: PathBuf,
        message: String,
    },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Config(error) => error.fmt(f),
            Problem::Unreadable { message, .. } => f.write_str(message),
        }
    }
}

/// A problem to show the user. `Display` is `error: ...` or `warning: ...`,
/// the lines the control plane prints on stderr.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub severity: Severity,
    pub problem: Problem,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.severity {
            Severity::Error => write!(f, "error: {}", self.problem),
            Severity::Warning => write!(f, "warning: {}", self.problem),
        }
    }
}

/// What one reading changed.
#[derive(Debug, Clone, Default)]
pub struct Update {
    /// The new snapshot, when what is in force changed (always on the first
    /// reading).
    pub snapshot: Option<Arc<Snapshot>>,
    /// Problems of files whose problems changed since the previous reading
    /// (all of each such file's problems), so that an unchanged broken file
    /// is not reported again on every reload.
    pub reports: Vec<Report>,
}

type Resources = Vec<Arc<AnyResource>>;

/// The state of a config source across readings.
#[derive(Debug, Default)]
pub struct ConfigStore {
    /// The resources in force, per file.
    in_force: BTreeMap<PathBuf, Resources>,
    /// What was last reported, per file.
    reported: BTreeMap<PathBuf, Vec<Report>>,
    current: Option<Arc<Snapshot>>,
}

impl ConfigStore {
    pub fn new() -> ConfigStore {
        ConfigStore::default()
    }

    /// The latest snapshot, `None` before the first reading.
    pub fn current(&self) -> Option<Arc<Snapshot>> {
        self.current.clone()
    }

    /// Applies a new reading of the source.
    pub fn apply(&mut self, load: DirectoryLoad) -> Update {
        let mut reports: BTreeMap<PathBuf, Vec<Report>> = BTreeMap::new();
        let mut candidates: BTreeMap<PathBuf, Resources> = BTreeMap::new();
        let mut present = BTreeSet::new();
        for file in &load.files {
            present.insert(file.path.clone());
            let file_reports = reports.entry(file.path.clone()).or_default();
            if let Some(resources) = read_file_outcome(file, file_reports) {
                candidates.insert(file.path.clone(), resources);
            }
        }
        self.in_force
            .retain(|path, _| present.contains(path) || load.is_unknown(path));
        let accepted = resolve_conflicts(&self.in_force, candidates, &mut reports);
        self.in_force.extend(accepted);
        Update {
            reports: self.changed_reports(reports),
            snapshot: self.publish_if_changed(),
        }
    }

    fn changed_reports(&mut self, reports: BTreeMap<PathBuf, Vec<Report>>) -> Vec<Report> {
        let reports: BTreeMap<PathBuf, Vec<Report>> = reports
            .into_iter()
            .filter(|(_, file_reports)| !file_reports.is_empty())
            .collect();
        let changed = reports
            .iter()
            .filter(|(path, file_reports)| self.reported.get(*path) != Some(*file_reports))
            .flat_map(|(_, file_reports)| file_reports.iter().cloned())
            .collect();
        self.reported = reports;
        changed
    }

    fn publish_if_changed(&mut self) -> Option<Arc<Snapshot>> {
        let mut resources: Resources = self.in_force.values().flatten().cloned().collect();
        resources.sort_by_cached_key(|resource| resource.key());
        let version = match &self.current {
            Some(current) if current.resources == resources => return None,
            Some(current) => current.version + 1,
            None => 1,
        };
        let snapshot = Arc::new(Snapshot::new(version, resources));
        self.current = Some(snapshot.clone());
        Some(snapshot)
    }
}

/// A file's resources when it is valid; otherwise records its problems.
fn read_file_outcome(
    file: &crate::directory::LoadedFile,
    reports: &mut Vec<Report>,
) -> Option<Resources> {
    let outcome = match &file.outcome {
        Ok(outcome) => outcome,
        Err(error) => {
            reports.push(Report {
                severity: Severity::Error,
                problem: Problem::Unreadable {
                    path: file.path.clone(),
                    message: error.to_string(),
                },
            });
            return None;
        }
    };
    let report = |severity| {
        move |error: &ConfigError| Report {
            severity,
            problem: Problem::Config(error.clone()),
        }
    };
    reports.extend(outcome.errors.iter().map(report(Severity::Error)));
    reports.extend(outcome.warnings.iter().map(report(Severity::Warning)));
    outcome
        .is_valid()
        .then(|| outcome.resources.iter().cloned().map(Arc::new).collect())
}

/// Decides which new file contents take effect. A candidate that redefines
/// a resource another file holds is refused as a whole (its previous
/// resources stay in force), one at a time in path order, until none
/// conflicts: refusing one file can free keys another one wants.
fn resolve_conflicts(
    in_force: &BTreeMap<PathBuf, Resources>,
    mut candidates: BTreeMap<PathBuf, Resources>,
    reports: &mut BTreeMap<PathBuf, Vec<Report>>,
) -> BTreeMap<PathBuf, Resources> {
    while let Some((path, conflicts)) = first_conflict(in_force, &candidates) {
        candidates.remove(&path);
        reports.entry(path).or_default().extend(conflicts);
    }
    candidates
}

/// The first candidate (in path order) defining a resource that is already
/// claimed, with one report per such resource.
fn first_conflict(
    in_force: &BTreeMap<PathBuf, Resources>,
    candidates: &BTreeMap<PathBuf, Resources>,
) -> Option<(PathBuf, Vec<Report>)> {
    let owned_by = |path: &Path| -> HashSet<ResourceKey> {
        in_force
            .get(path)
            .map(|resources| resources.iter().map(|r| r.key()).collect())
            .unwrap_or_default()
    };
    // Files that keep their resources, and keys candidates already owned,
    // were there first.
    let mut claims: HashMap<ResourceKey, &Arc<AnyResource>> = HashMap::new();
    for (path, resources) in in_force {
        if !candidates.contains_key(path) {
            claims.extend(resources.iter().map(|r| (r.key(), r)));
        }
    }
    for (path, resources) in candidates {
        let owned = owned_by(path);
        let previously_owned = resources.iter().filter(|r| owned.contains(&r.key()));
        claims.extend(previously_owned.map(|r| (r.key(), r)));
    }
    for (path, resources) in candidates {
        let owned = owned_by(path);
        let mut conflicts = Vec::new();
        for resource in resources.iter().filter(|r| !owned.contains(&r.key())) {
            match claims.get(&resource.key()) {
                Some(first) => conflicts.push(duplicate_report(resource, first)),
                None => {
                    claims.insert(resource.key(), resource);
                }
            }
        }
        if !conflicts.is_empty() {
            return Some((path.clone(), conflicts));
        }
    }
    None
}

fn duplicate_report(duplicate: &AnyResource, first: &AnyResource) -> Report {
    let source = duplicate.source();
    let message = format!(
        "{} is already defined in {}; that definition stays in force",
        duplicate.key(),
        first.source()
    );
    let position = Position {
        line: source.line,
        column: source.column,
    };
    Report {
        severity: Severity::Error,
        problem: Problem::Config(ConfigError::new(&source.file, position, "", message)),
    }
}

#[cfg(test)]
mod tests;
