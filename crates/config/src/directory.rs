//! The directory source: every `*.yaml` / `*.yml` file under a directory,
//! recursively, read in sorted order. [`watch`] keeps it live.

use std::collections::HashSet;
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use trellis_api::{ParseOutcome, parse_yaml};

use crate::error::ConfigStoreError;

mod watch;

pub use watch::{Debounce, DirectoryWatcher, SnapshotReceiver, watch, watch_debounced};

/// Config files larger than this are refused rather than read into memory.
pub const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// Subdirectories deeper than this are not read (and symlink loops end).
const MAX_DEPTH: usize = 32;

/// One reading of a directory.
#[derive(Debug)]
pub struct DirectoryLoad {
    pub root: PathBuf,
    /// Sorted by path.
    pub files: Vec<LoadedFile>,
    /// Directories that could not be listed. Files under them are unknown,
    /// not deleted: what was loaded from them before stays in force.
    pub unreadable_dirs: Vec<ConfigStoreError>,
}

impl DirectoryLoad {
    /// Whether `path` lies under a directory that could not be listed.
    pub fn is_unknown(&self, path: &Path) -> bool {
        self.unreadable_dirs.iter().any(|error| match error {
            ConfigStoreError::ReadDir { path: dir, .. } => path.starts_with(dir),
            _ => false,
        })
    }
}

#[derive(Debug)]
pub struct LoadedFile {
    pub path: PathBuf,
    pub outcome: Result<ParseOutcome, ConfigStoreError>,
}

/// Reads and parses every YAML file under `dir`. Hidden entries (names
/// starting with `.`) are skipped: editors' swap files, and the `..data`
/// directories through which Kubernetes swaps mounted ConfigMaps.
pub fn load_directory(dir: &Path) -> DirectoryLoad {
    load_directory_observed(dir, |_, _| {})
}

/// [`load_directory`], showing `observe` each file's text as it is read.
pub fn load_directory_observed(dir: &Path, mut observe: impl FnMut(&Path, &str)) -> DirectoryLoad {
    let mut load = DirectoryLoad {
        root: dir.to_path_buf(),
        files: Vec::new(),
        unreadable_dirs: Vec::new(),
    };
    let mut paths = Vec::new();
    let mut visited = HashSet::new();
    list_yaml_files(dir, 0, &mut visited, &mut paths, &mut load.unreadable_dirs);
    paths.sort();
    for path in paths {
        match read_text(&path) {
            Ok(text) => {
                observe(&path, &text);
                let outcome = parse_yaml(&path, &text);
                load.files.push(LoadedFile {
                    path,
                    outcome: Ok(outcome),
                });
            }
            // Deleted between listing and reading: as if never listed.
            Err(ConfigStoreError::ReadFile { source, .. })
                if source.kind() == io::ErrorKind::NotFound => {}
            Err(error) => load.files.push(LoadedFile {
                path,
                outcome: Err(error),
            }),
        }
    }
    load
}

fn list_yaml_files(
    dir: &Path,
    depth: usize,
    visited: &mut HashSet<PathBuf>,
    paths: &mut Vec<PathBuf>,
    unreadable: &mut Vec<ConfigStoreError>,
) {
    // Following symlinked directories is useful, looping through them is not.
    let canonical = fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    if depth > MAX_DEPTH || !visited.insert(canonical) {
        return;
    }
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(source) => {
            let path = dir.to_path_buf();
            unreadable.push(ConfigStoreError::ReadDir { path, source });
            return;
        }
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        // `fs::metadata` follows symlinks; a dangling link is skipped.
        let Ok(metadata) = fs::metadata(&path) else {
            continue;
        };
        if metadata.is_dir() {
            list_yaml_files(&path, depth + 1, visited, paths, unreadable);
        } else if metadata.is_file() && is_yaml(&path) {
            paths.push(path);
        }
    }
}

fn is_yaml(path: &Path) -> bool {
    path.extension()
        .and_then(|extension| extension.to_str())
        .is_some_and(|extension| {
            extension.eq_ignore_ascii_case("yaml") || extension.eq_ignore_ascii_case("yml")
        })
}

fn read_text(path: &Path) -> Result<String, ConfigStoreError> {
    let read_error = |source| ConfigStoreError::ReadFile {
        path: path.to_path_buf(),
        source,
    };
    let file = fs::File::open(path).map_err(read_error)?;
    let mut bytes = Vec::new();
    // Read one byte past the limit to tell "at the limit" from "over it".
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(read_error)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(ConfigStoreError::TooLarge {
            path: path.to_path_buf(),
            limit: MAX_FILE_BYTES,
        });
    }
    String::from_utf8(bytes).map_err(|error| ConfigStoreError::NotUtf8 {
        path: path.to_path_buf(),
        offset: error.utf8_error().valid_up_to(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ACCOUNT: &str = "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: NAME}\n";

    fn write(dir: &Path, relative: &str, text: &str) {
        let path = dir.join(relative);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }

    #[test]
    fn reads_yaml_files_recursively_in_order() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "b.yaml", &ACCOUNT.replace("NAME", "b"));
        write(dir.path(), "a/z.yml", &ACCOUNT.replace("NAME", "z"));
        write(dir.path(), "notes.txt", "not yaml");
        write(
            dir.path(),
            ".hidden.yaml",
            &ACCOUNT.replace("NAME", "hidden"),
        );
        write(dir.path(), "..data/c.yaml", &ACCOUNT.replace("NAME", "c"));
        let load = load_directory(dir.path());
        let names: Vec<_> = load
            .files
            .iter()
            .map(|file| file.path.strip_prefix(dir.path()).unwrap().to_path_buf())
            .collect();
        assert_eq!(names, [PathBuf::from("a/z.yml"), PathBuf::from("b.yaml")]);
        assert!(load.files.iter().all(|file| file.outcome.is_ok()));
    }

    #[test]
    fn non_utf8_and_missing_directories_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("bad.yaml"), b"kind: \xff\xfe\n").unwrap();
        let load = load_directory(dir.path());
        let error = load.files[0].outcome.as_ref().unwrap_err();
        assert!(
            matches!(error, ConfigStoreError::NotUtf8 { offset: 6, .. }),
            "{error}"
        );

        let missing = dir.path().join("missing");
        let load = load_directory(&missing);
        assert!(load.files.is_empty());
        assert!(load.is_unknown(&missing.join("x.yaml")));
    }

    #[cfg(unix)]
    #[test]
    fn symlink_loops_end() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "sub/a.yaml", &ACCOUNT.replace("NAME", "a"));
        std::os::unix::fs::symlink(dir.path(), dir.path().join("sub/loop")).unwrap();
        let load = load_directory(dir.path());
        assert_eq!(load.files.len(), 1);
    }
}
