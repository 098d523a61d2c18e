//! Starting a process inside a pod: in its network namespace, with the
//! pod's hosts file over `/etc/hosts` (what `ip netns exec` does with
//! `/etc/netns/NAME/hosts`), as a given uid/gid with no supplementary
//! groups, owning its stdout and stderr pipes (so it can reopen them as
//! `/dev/stdout`, as the proxy's access log does).
//!
//! The second module of this crate allowed to use `unsafe` (see
//! `parent_death.rs`): this work must happen in the forked child before
//! `exec`, so it is a `pre_exec` hook. It is installed before
//! [`crate::die_with_parent`]'s, because changing credentials clears the
//! parent-death signal.
#![allow(unsafe_code)]

use std::ffi::{CStr, CString};
use std::fs::File;
use std::os::fd::BorrowedFd;
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::sync::Arc;

use nix::mount::{MsFlags, mount};
use nix::sched::{CloneFlags, setns, unshare};
use nix::unistd::{Gid, Uid, fchown, setgid, setgroups, setuid};

use super::NetnsError;

/// Environment variables that would send an app's calls to an explicit
/// proxy: a captured pod has none, as in Kubernetes.
const PROXY_VARIABLES: [&str; 8] = [
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "ALL_PROXY",
    "all_proxy",
    "NO_PROXY",
    "no_proxy",
];

/// Where and as whom a process of a pod runs. Everything the hook needs
/// is prepared here, before `fork`.
#[derive(Debug, Clone)]
pub(crate) struct PodEntry {
    netns: Arc<File>,
    hosts: CString,
    uid: Uid,
    gid: Gid,
}

impl PodEntry {
    /// Entry into the namespace `netns` (a name under `/run/netns`), with
    /// `hosts` as `/etc/hosts`, as `uid`:`uid`.
    pub fn new(netns: &str, hosts: &Path, uid: u32) -> Result<PodEntry, NetnsError> {
        let path = Path::new("/run/netns").join(netns);
        let file = File::open(&path).map_err(|source| NetnsError::Io {
            what: format!("opening {}", path.display()),
            source,
        })?;
        let hosts = CString::new(hosts.as_os_str().as_bytes()).map_err(|_| NetnsError::Io {
            what: format!("using {}", hosts.display()),
            source: std::io::Error::from(std::io::ErrorKind::InvalidInput),
        })?;
        Ok(PodEntry {
            netns: Arc::new(file),
            hosts,
            uid: Uid::from_raw(uid),
            gid: Gid::from_raw(uid),
        })
    }

    /// Makes `command` start inside the pod, without proxy settings.
    pub fn apply(&self, command: &mut std::process::Command) {
        for variable in PROXY_VARIABLES {
            command.env_remove(variable);
        }
        let entry = self.clone();
        // SAFETY: only descriptor numbers are kept; in the child, where
        // they are used, std has set up 1 and 2 (its stdout and stderr)
        // before any hook runs, and they stay open until exec.
        let outputs = unsafe { [BorrowedFd::borrow_raw(1), BorrowedFd::borrow_raw(2)] };
        let hook = move || -> std::io::Result<()> {
            setns(entry.netns.as_ref(), CloneFlags::CLONE_NEWNET)?;
            // A private mount namespace whose mounts never reach the host's.
            unshare(CloneFlags::CLONE_NEWNS)?;
            let flags = MsFlags::MS_REC | MsFlags::MS_SLAVE;
            mount(None::<&CStr>, c"/", None::<&CStr>, flags, None::<&CStr>)?;
            let hosts = entry.hosts.as_c_str();
            mount(
                Some(hosts),
                c"/etc/hosts",
                None::<&CStr>,
                MsFlags::MS_BIND,
                None::<&CStr>,
            )?;
            for output in outputs {
                fchown(output, Some(entry.uid), Some(entry.gid))?;
            }
            setgroups(&[])?;
            setgid(entry.gid)?;
            setuid(entry.uid)?;
            Ok(())
        };
        // SAFETY: the hook only makes system calls (setns, unshare, mount,
        // fchown, setgroups, setgid, setuid) on values prepared before fork: an
        // open file, C strings (passed as `CStr`, which nix hands to the
        // kernel without copying) and ids. Errors are built from raw OS
        // codes, which does not allocate. It takes no lock and touches no
        // state shared with other threads, so it is async-signal-safe, as
        // code between fork and exec must be.
        unsafe {
            command.pre_exec(hook);
        }
    }
}
