//! Child processes that cannot outlive their parent. `kill_on_drop` covers
//! every exit of `up` that runs destructors; this covers the rest (SIGKILL,
//! a crash): the kernel kills the child when its parent goes.
//!
//! The one module of this crate allowed to use `unsafe`: installing a
//! `pre_exec` hook is unsafe because the hook runs in the forked child,
//! before `exec`, where only async-signal-safe operations are sound.
#![allow(unsafe_code)]

use std::io;
use std::os::unix::process::CommandExt;

use nix::errno::Errno;
use nix::sys::prctl;
use nix::sys::signal::Signal;
use nix::unistd::{Pid, getpid, getppid};

/// Arranges for the command's process to get SIGKILL when the thread that
/// spawns it exits (Linux's `PR_SET_PDEATHSIG` is tied to the spawning
/// thread). Spawn from an async task or the main thread, which live as long
/// as the process, never from a `spawn_blocking` thread, which may retire.
pub fn die_with_parent(command: &mut std::process::Command) {
    let parent: Pid = getpid();
    let hook = move || -> io::Result<()> {
        prctl::set_pdeathsig(Signal::SIGKILL).map_err(io::Error::from)?;
        // The parent may have died between fork and prctl; then the signal
        // will never come, so give up instead of running orphaned.
        if getppid() != parent {
            return Err(io::Error::from(Errno::ESRCH));
        }
        Ok(())
    };
    // SAFETY: the hook only makes two system calls (prctl, getppid) and
    // builds `io::Error`s from raw OS error codes, which does not allocate:
    // it takes no lock and touches no state shared with other threads, so
    // it is async-signal-safe, as code between fork and exec must be.
    unsafe {
        command.pre_exec(hook);
    }
}

#[cfg(test)]
mod tests {
    use std::process::{Command, Stdio};

    use super::*;

    #[test]
    fn children_still_start() {
        let mut command = Command::new("true");
        command.stdin(Stdio::null());
        die_with_parent(&mut command);
        assert!(command.status().unwrap().success());
    }

    #[test]
    fn children_die_when_their_spawning_thread_exits() {
        use std::os::unix::process::ExitStatusExt;

        // The death signal follows the spawning thread, so a thread that
        // spawns and then ends stands in for a parent that dies.
        let mut child = std::thread::spawn(|| {
            let mut command = Command::new("sleep");
            command.arg("30").stdin(Stdio::null());
            die_with_parent(&mut command);
            command.spawn().unwrap()
        })
        .join()
        .unwrap();
        let status = child.wait().unwrap();
        assert_eq!(status.signal(), Some(Signal::SIGKILL as i32));
    }
}
