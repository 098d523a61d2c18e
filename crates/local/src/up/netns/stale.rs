//! Which `up --netns` owns what. Every resource's name carries its run's
//! id (`trellis-ID` for the bridge, `trellis-ID-POD` for namespaces and
//! their `/etc/netns` directories), and a running `up` holds an exclusive
//! lock on `/run/trellis/up-ID.lock`. Resources whose id nobody holds are
//! leftovers of a killed run, removed when the next `up --netns` starts.

use std::collections::BTreeSet;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::PathBuf;

use nix::fcntl::{Flock, FlockArg};

use super::command::ip;
use super::{NetnsError, bridge, pod};

/// Every resource name starts with this.
pub(crate) const PREFIX: &str = "trellis-";
const LOCK_DIR: &str = "/run/trellis";
/// Ids are this long (see [`run_id`]).
const ID_LEN: usize = 6;

/// A run's id: six base-36 characters derived from its state directory,
/// so a rerun with the same `--state-dir` finds its own leftovers.
pub(crate) fn run_id(state_dir: &std::path::Path) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in state_dir.as_os_str().as_encoded_bytes() {
        hash = (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    let digits = b"0123456789abcdefghijklmnopqrstuvwxyz";
    (0..ID_LEN)
        .map(|_| {
            let digit = digits[(hash % 36) as usize];
            hash /= 36;
            char::from(digit)
        })
        .collect()
}

/// The id in a resource name `trellis-ID` or `trellis-ID-...`.
fn id_of(name: &str) -> Option<&str> {
    let rest = name.strip_prefix(PREFIX)?;
    let id = rest.get(..ID_LEN)?;
    let tail = &rest[ID_LEN..];
    let well_formed = id
        .bytes()
        .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase());
    (well_formed && (tail.is_empty() || tail.starts_with('-'))).then_some(id)
}

/// The host side of pod `index`'s veth pair: `trID-INDEX` (an interface
/// name has at most 15 bytes, so it cannot carry the whole prefix).
pub(crate) fn veth_name(id: &str, index: usize) -> String {
    format!("{}{index}", veth_prefix(id))
}

fn veth_prefix(id: &str) -> String {
    format!("tr{id}-")
}

fn lock_path(id: &str) -> PathBuf {
    PathBuf::from(LOCK_DIR).join(format!("up-{id}.lock"))
}

/// Serializes choosing a range and creating its bridge across concurrent
/// `up --netns` runs (else two could pick the same free range): held until
/// dropped.
pub(crate) fn lock_network_setup() -> Result<Flock<File>, NetnsError> {
    let path = PathBuf::from(LOCK_DIR).join("network-setup.lock");
    Flock::lock(open_lock_file(&path)?, FlockArg::LockExclusive).map_err(|(_, errno)| {
        NetnsError::Io {
            what: format!("locking {}", path.display()),
            source: errno.into(),
        }
    })
}

fn open_lock_file(path: &std::path::Path) -> Result<File, NetnsError> {
    let io = |what: String| move |source| NetnsError::Io { what, source };
    std::fs::create_dir_all(LOCK_DIR).map_err(io(format!("creating {LOCK_DIR}")))?;
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(path)
        .map_err(io(format!("opening {}", path.display())))
}

/// Takes the lock of `id`, or `None` when a running `up` holds it.
pub(crate) fn try_lock(id: &str) -> Result<Option<Flock<File>>, NetnsError> {
    let path = lock_path(id);
    match Flock::lock(open_lock_file(&path)?, FlockArg::LockExclusiveNonblock) {
        Ok(lock) => Ok(Some(lock)),
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => Ok(None),
        Err((_, errno)) => Err(NetnsError::Io {
            what: format!("locking {}", path.display()),
            source: errno.into(),
        }),
    }
}

/// Releases a lock and removes its file.
pub(crate) fn release(id: &str, lock: Flock<File>) {
    let _ = std::fs::remove_file(lock_path(id));
    drop(lock);
}

/// Removes every resource of `id`: its veth pairs (deleted explicitly: a
/// deleted namespace's go only later, when the kernel gets to it), its
/// namespaces (their capture rules go with them), their `/etc/netns`
/// directories, and its bridge. Keeps going past failures and reports the
/// first.
pub(crate) fn remove_all(id: &str, namespaces: &[String]) -> Result<(), NetnsError> {
    let mut first_error = None;
    let veth_prefix = veth_prefix(id);
    let interfaces = std::fs::read_dir("/sys/class/net")
        .into_iter()
        .flatten()
        .flatten();
    for interface in interfaces {
        let name = interface.file_name().to_string_lossy().into_owned();
        if name.starts_with(&veth_prefix)
            && let Err(error) = ip(&["link", "del", &name])
        {
            first_error.get_or_insert(error);
        }
    }
    let own = |name: &&String| id_of(name) == Some(id);
    for name in namespaces.iter().filter(own) {
        if let Err(error) = pod::delete(name) {
            first_error.get_or_insert(error);
        }
    }
    if let Err(error) = bridge::delete(&format!("{PREFIX}{id}")) {
        first_error.get_or_insert(error);
    }
    first_error.map_or(Ok(()), Err)
}

/// Namespaces (from `ip netns list` and `/etc/netns`) whose names carry
/// the prefix.
pub(crate) fn prefixed_namespaces() -> Result<Vec<String>, NetnsError> {
    let mut names = BTreeSet::new();
    let listed = ip(&["netns", "list"])?;
    names.extend(
        listed
            .lines()
            .filter_map(|l| l.split_whitespace().next().map(str::to_owned)),
    );
    if let Ok(entries) = std::fs::read_dir(pod::NETNS_ETC) {
        names.extend(
            entries
                .flatten()
                .filter_map(|e| e.file_name().into_string().ok()),
        );
    }
    Ok(names.into_iter().filter(|n| id_of(n).is_some()).collect())
}

/// Removes the leftovers of every run but `own` whose `up` is gone, and
/// names what it removed on stderr.
pub(crate) fn clean_stale(own: &str) -> Result<(), NetnsError> {
    let namespaces = prefixed_namespaces()?;
    let bridges = bridge::existing_bridges()?;
    // A run that failed early may have left its lock file alone.
    let locks: Vec<String> = std::fs::read_dir(LOCK_DIR)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| entry.file_name().into_string().ok())
        .filter_map(|file| {
            let id = file.strip_prefix("up-")?.strip_suffix(".lock")?;
            Some(format!("{PREFIX}{id}"))
        })
        .collect();
    let ids: BTreeSet<&str> = namespaces
        .iter()
        .chain(&bridges)
        .chain(&locks)
        .filter_map(|name| id_of(name))
        .filter(|id| *id != own)
        .collect();
    for id in ids {
        let Some(lock) = try_lock(id)? else {
            continue; // a running `up --netns` owns these
        };
        let leftovers = namespaces
            .iter()
            .chain(&bridges)
            .any(|n| id_of(n) == Some(id));
        if leftovers {
            eprintln!(
                "up: removing the network namespaces and bridge a stopped `up --netns` ({id}) left"
            );
        }
        let removed = remove_all(id, &namespaces);
        release(id, lock);
        removed?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_short_and_parse_back() {
        let id = run_id(std::path::Path::new("/tmp/trellis-up-abc"));
        assert_eq!(id, run_id(std::path::Path::new("/tmp/trellis-up-abc")));
        assert_ne!(id, run_id(std::path::Path::new("/tmp/trellis-up-abd")));
        assert_eq!(id.len(), ID_LEN);
        let bridge = format!("{PREFIX}{id}");
        assert!(bridge.len() <= 15, "{bridge} is too long for an interface");
        assert_eq!(id_of(&bridge), Some(id.as_str()));
        assert_eq!(id_of(&format!("{bridge}-reviews-v1-0")), Some(id.as_str()));
        assert_eq!(id_of("trellis-up"), None);
        assert_eq!(id_of("trellis-ABCDEF"), None);
        assert_eq!(id_of("trellis-abcdefg"), None);
        assert_eq!(id_of("docker0"), None);
    }
}
