//! Keeps a directory source live: notify reports changes, a debounce folds
//! an editor's write-and-rename (or a burst of changes) into one reload, and
//! each reload re-reads the whole directory and publishes a snapshot when
//! what is in force changed.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use notify::{EventKind, RecursiveMode, Watcher};
use tokio::sync::watch as channel;

use super::load_directory_observed;
use crate::error::ConfigStoreError;
use crate::snapshot::Snapshot;
use crate::store::ConfigStore;
use crate::validation::{DirectoryTally, ValidationMetrics};

/// With [`watch`], however busy the directory, a reload happens at most
/// this many debounce periods after the first change.
const MAX_DEBOUNCE_PERIODS: u32 = 10;

/// How changes are folded into reloads: one once nothing changed for
/// `quiet`, and at most `max` after the first change of a burst.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Debounce {
    pub quiet: Duration,
    pub max: Duration,
}

/// Where a watched source publishes: `None` until the first complete
/// reading, then every new snapshot.
pub type SnapshotReceiver = channel::Receiver<Option<Arc<Snapshot>>>;

enum Signal {
    Changed,
    Stop,
}

/// Watches a directory until dropped.
pub struct DirectoryWatcher {
    dir: PathBuf,
    // Dropped before the thread is joined: it holds a sender of `signals`.
    watcher: Option<notify::RecommendedWatcher>,
    signals: mpsc::Sender<Signal>,
    thread: Option<thread::JoinHandle<()>>,
}

impl DirectoryWatcher {
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for DirectoryWatcher {
    fn drop(&mut self) {
        self.watcher.take();
        // The thread may already have ended; then there is nothing to stop.
        let _ = self.signals.send(Signal::Stop);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Starts watching `dir`. The receiver holds `None` until the first complete
/// reading of the directory, then each new snapshot (version 1, 2, ...).
/// Problems are printed on stderr as `error: FILE:LINE:COL: FIELD: message`
/// (and `warning: ...`), each time a file's problems change.
pub fn watch(
    dir: PathBuf,
    debounce: Duration,
) -> Result<(DirectoryWatcher, SnapshotReceiver), ConfigStoreError> {
    let max = debounce.saturating_mul(MAX_DEBOUNCE_PERIODS);
    let debounce = Debounce {
        quiet: debounce,
        max,
    };
    watch_debounced(dir, debounce, ValidationMetrics::default())
}

/// [`watch`] with both debounce periods explicit, counting each changed
/// file's resources in `validation`.
pub fn watch_debounced(
    dir: PathBuf,
    debounce: Debounce,
    validation: ValidationMetrics,
) -> Result<(DirectoryWatcher, SnapshotReceiver), ConfigStoreError> {
    let (signals, signal_receiver) = mpsc::channel();
    let watch_error = |source| ConfigStoreError::Watch {
        path: dir.clone(),
        source,
    };
    let notify_signals = signals.clone();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let relevant = match &event {
            // Opening and closing files changes nothing.
            Ok(event) => !matches!(event.kind, EventKind::Access(_)),
            Err(error) => {
                tracing::warn!(%error, "config watcher error; re-reading the directory");
                true
            }
        };
        if relevant {
            let _ = notify_signals.send(Signal::Changed);
        }
    })
    .map_err(watch_error)?;
    watcher
        .watch(&dir, RecursiveMode::Recursive)
        .map_err(watch_error)?;

    let (publisher, receiver) = channel::channel(None);
    let thread_dir = dir.clone();
    let thread = thread::Builder::new()
        .name("config-watch".to_string())
        .spawn(move || {
            let tally = DirectoryTally::new(validation);
            run(&thread_dir, debounce, tally, &signal_receiver, &publisher);
        })
        .map_err(ConfigStoreError::Thread)?;
    let watcher = DirectoryWatcher {
        dir,
        watcher: Some(watcher),
        signals,
        thread: Some(thread),
    };
    Ok((watcher, receiver))
}

/// The watcher thread: a first reading, then one reading per debounced burst
/// of changes, until stopped.
fn run(
    dir: &Path,
    debounce: Debounce,
    mut tally: DirectoryTally,
    signals: &mpsc::Receiver<Signal>,
    publisher: &channel::Sender<Option<Arc<Snapshot>>>,
) {
    let mut store = ConfigStore::new();
    reload(&mut store, &mut tally, dir, publisher);
    while let Ok(Signal::Changed) = signals.recv() {
        if !wait_for_quiet(signals, debounce) {
            return;
        }
        reload(&mut store, &mut tally, dir, publisher);
    }
}

/// Waits until no change arrives for `debounce.quiet` (or the burst has
/// lasted `debounce.max`). Returns false when the watcher is stopping.
fn wait_for_quiet(signals: &mpsc::Receiver<Signal>, debounce: Debounce) -> bool {
    let deadline = Instant::now().checked_add(debounce.max);
    loop {
        match signals.recv_timeout(debounce.quiet) {
            Ok(Signal::Changed) if deadline.is_none_or(|deadline| Instant::now() < deadline) => {
                continue;
            }
            Ok(Signal::Changed) | Err(mpsc::RecvTimeoutError::Timeout) => return true,
            Ok(Signal::Stop) | Err(mpsc::RecvTimeoutError::Disconnected) => return false,
        }
    }
}

fn reload(
    store: &mut ConfigStore,
    tally: &mut DirectoryTally,
    dir: &Path,
    publisher: &channel::Sender<Option<Arc<Snapshot>>>,
) {
    let load = load_directory_observed(dir, |path, text| tally.observe(path, text));
    tally.finish_reading(|path| load.is_unknown(path));
    let update = store.apply(load);
    for report in &update.reports {
        eprintln!("{report}");
    }
    if let Some(snapshot) = update.snapshot {
        tracing::info!(
            version = snapshot.version,
            resources = snapshot.resources.len(),
            dir = %dir.display(),
            "config snapshot published"
        );
        // Receivers may all be gone; the watcher keeps the latest anyway.
        publisher.send_replace(Some(snapshot));
    }
}

#[cfg(test)]
mod tests {
    use std::fs;

    use tokio::time::timeout;

    use super::*;

    const DEBOUNCE: Duration = Duration::from_millis(50);
    /// Generous: the machine running the tests may be busy.
    const PATIENCE: Duration = Duration::from_secs(10);
    /// How long to watch for a snapshot that must not come.
    const QUIET: Duration = Duration::from_millis(400);

    fn account(name: &str) -> String {
        format!("apiVersion: v1\nkind: ServiceAccount\nmetadata: {{name: {name}}}\n")
    }

    async fn next_snapshot(receiver: &mut SnapshotReceiver) -> Arc<Snapshot> {
        timeout(PATIENCE, receiver.changed())
            .await
            .expect("a snapshot in time")
            .expect("watcher alive");
        receiver.borrow_and_update().clone().expect("a snapshot")
    }

    async fn assert_no_snapshot(receiver: &mut SnapshotReceiver) {
        let changed = timeout(QUIET, receiver.changed()).await;
        assert!(changed.is_err(), "unexpected snapshot");
    }

    fn names(snapshot: &Snapshot) -> Vec<String> {
        let names = snapshot.resources.iter().map(|r| r.meta().name.clone());
        names.collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn snapshots_follow_edits_breakage_and_atomic_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("accounts.yaml");
        fs::write(&file, account("one")).unwrap();
        let (_watcher, mut receiver) = watch(dir.path().to_path_buf(), DEBOUNCE).unwrap();

        let first = timeout(PATIENCE, receiver.wait_for(Option::is_some))
            .await
            .expect("first snapshot in time")
            .expect("watcher alive")
            .clone()
            .unwrap();
        receiver.borrow_and_update();
        assert_eq!((first.version, names(&first)), (1, vec!["one".to_string()]));

        // Broken: reported, and the last good resources stay in force.
        fs::write(
            &file,
            "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: [\n",
        )
        .unwrap();
        assert_no_snapshot(&mut receiver).await;

        fs::write(&file, account("two")).unwrap();
        let fixed = next_snapshot(&mut receiver).await;
        assert_eq!((fixed.version, names(&fixed)), (2, vec!["two".to_string()]));

        // An editor's save: write a temporary file, rename it over the old.
        let temporary = dir.path().join("accounts.yaml.tmp");
        fs::write(&temporary, account("three")).unwrap();
        fs::rename(&temporary, &file).unwrap();
        let replaced = next_snapshot(&mut receiver).await;
        assert_eq!(
            (replaced.version, names(&replaced)),
            (3, vec!["three".to_string()])
        );
        assert_no_snapshot(&mut receiver).await;

        fs::create_dir(dir.path().join("more")).unwrap();
        fs::write(dir.path().join("more/extra.yml"), account("four")).unwrap();
        let added = next_snapshot(&mut receiver).await;
        assert_eq!(names(&added), ["four", "three"]);

        fs::remove_file(&file).unwrap();
        let removed = next_snapshot(&mut receiver).await;
        assert_eq!(
            (removed.version, names(&removed)),
            (5, vec!["four".to_string()])
        );
    }

    #[test]
    fn a_missing_directory_cannot_be_watched() {
        let dir = tempfile::tempdir().unwrap();
        let result = watch(dir.path().join("missing"), DEBOUNCE);
        assert!(matches!(result, Err(ConfigStoreError::Watch { .. })));
    }

    #[test]
    fn dropping_the_watcher_stops_its_thread() {
        let dir = tempfile::tempdir().unwrap();
        let (watcher, receiver) = watch(dir.path().to_path_buf(), DEBOUNCE).unwrap();
        drop(watcher);
        // The thread held the only sender: it is gone once the thread ended.
        assert!(receiver.has_changed().is_err());
    }
}
