//! The state directory's layout, and its lifetime: a fresh temporary
//! directory removed at exit, or a given one that is kept.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use nix::fcntl::{Flock, FlockArg};
use tempfile::TempDir;

use super::state::UP_JSON;

/// Held for as long as `up` runs, so two `up`s never share a state dir.
const LOCK_FILE: &str = ".up.lock";

pub(crate) struct StateDir {
    root: PathBuf,
    /// Set when `up` created the directory and must remove it.
    temporary: Option<TempDir>,
    _lock: Flock<File>,
}

impl StateDir {
    /// Creates (or takes over) the state directory with an empty config
    /// directory. Files of an earlier `up` in a given directory are
    /// replaced; a directory that holds a `config/` not made by `up` is
    /// refused rather than emptied.
    pub fn prepare(given: Option<&Path>) -> anyhow::Result<StateDir> {
        let (root, temporary) = match given {
            Some(dir) => {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating state dir {}", dir.display()))?;
                let root = dir
                    .canonicalize()
                    .with_context(|| format!("resolving state dir {}", dir.display()))?;
                (root, None)
            }
            None => {
                let dir = tempfile::Builder::new()
                    .prefix("trellis-up-")
                    .tempdir()
                    .context("creating a temporary state dir")?;
                (dir.path().to_path_buf(), Some(dir))
            }
        };
        // The lock file doubles as the mark of a directory `up` has used.
        let used_by_up_before = root.join(LOCK_FILE).exists();
        let lock = lock(&root)?;
        let state = StateDir {
            root,
            temporary,
            _lock: lock,
        };
        state.clear_previous_run(used_by_up_before)?;
        Ok(state)
    }

    fn clear_previous_run(&self, used_by_up_before: bool) -> anyhow::Result<()> {
        let config = self.config_dir();
        if !used_by_up_before && config.exists() && !is_empty_dir(&config)? {
            bail!(
                "{} exists and was not made by `trellis up`: choose another --state-dir",
                config.display()
            );
        }
        for dir in [self.config_dir(), self.tokens_dir()] {
            remove_if_present(&dir, |path| std::fs::remove_dir_all(path))?;
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        for file in [
            self.root.join(UP_JSON),
            self.root_cert(),
            self.workload_tokens(),
        ] {
            remove_if_present(&file, |path| std::fs::remove_file(path))?;
        }
        Ok(())
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Watched by the control plane.
    pub fn config_dir(&self) -> PathBuf {
        self.root.join("config")
    }

    pub fn tokens_dir(&self) -> PathBuf {
        self.root.join("tokens")
    }

    /// Written by the control plane once its CA is up.
    pub fn root_cert(&self) -> PathBuf {
        self.root.join("root-cert.pem")
    }

    pub fn workload_tokens(&self) -> PathBuf {
        self.root.join("workload-tokens.json")
    }

    /// Removes the directory if `up` created it; keeps a given one.
    pub fn finish(self) -> io::Result<()> {
        match self.temporary {
            Some(dir) => dir.close(),
            None => Ok(()),
        }
    }
}

fn lock(root: &Path) -> anyhow::Result<Flock<File>> {
    let path = root.join(LOCK_FILE);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    Flock::lock(file, FlockArg::LockExclusiveNonblock).map_err(|(_, errno)| {
        anyhow::anyhow!(
            "state dir {} is in use by another `trellis up` ({errno})",
            root.display()
        )
    })
}

fn is_empty_dir(dir: &Path) -> anyhow::Result<bool> {
    let mut entries =
        std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))?;
    Ok(entries.next().is_none())
}

fn remove_if_present(path: &Path, remove: fn(&Path) -> io::Result<()>) -> anyhow::Result<()> {
    match remove(path) {
        Err(error) if error.kind() != io::ErrorKind::NotFound => {
            Err(error).with_context(|| format!("removing {}", path.display()))
        }
        _ => Ok(()),
    }
}

/// Writes a secret readable only by its owner; fails if the file exists.
pub(crate) fn write_secret(path: &Path, contents: &str) -> io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(contents.as_bytes())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn temporary_dir_is_removed_and_given_dir_kept() {
        let state = StateDir::prepare(None).unwrap();
        let root = state.root().to_path_buf();
        assert!(state.config_dir().is_dir());
        state.finish().unwrap();
        assert!(!root.exists());

        let given = tempfile::tempdir().unwrap();
        let state = StateDir::prepare(Some(given.path())).unwrap();
        state.finish().unwrap();
        assert!(given.path().join("config").is_dir());
    }

    #[test]
    fn one_up_per_state_dir() {
        let given = tempfile::tempdir().unwrap();
        let _first = StateDir::prepare(Some(given.path())).unwrap();
        let second = StateDir::prepare(Some(given.path()));
        assert!(second.err().unwrap().to_string().contains("in use"));
    }

    #[test]
    fn replaces_an_earlier_runs_config_but_not_foreign_files() {
        let given = tempfile::tempdir().unwrap();
        StateDir::prepare(Some(given.path()))
            .unwrap()
            .finish()
            .unwrap();
        std::fs::write(given.path().join("config/stale.yaml"), "x").unwrap();
        std::fs::write(given.path().join(UP_JSON), "{}").unwrap();
        let state = StateDir::prepare(Some(given.path())).unwrap();
        assert!(is_empty_dir(&state.config_dir()).unwrap());
        assert!(!given.path().join(UP_JSON).exists());
        drop(state);

        let foreign = tempfile::tempdir().unwrap();
        std::fs::create_dir(foreign.path().join("config")).unwrap();
        std::fs::write(foreign.path().join("config/mine.txt"), "keep").unwrap();
        assert!(StateDir::prepare(Some(foreign.path())).is_err());
        assert!(foreign.path().join("config/mine.txt").exists());
    }

    #[test]
    fn secrets_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        write_secret(&path, "abc").unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(write_secret(&path, "again").is_err());
    }
}
