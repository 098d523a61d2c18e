//! The `ip` (and other) commands `up --netns` runs, with typed arguments
//! and errors that quote the command and its output.

use std::process::{Command, Stdio};

use super::NetnsError;

/// Runs `program args...` to completion; its stdout on success.
pub(crate) fn run(program: &str, args: &[&str]) -> Result<String, NetnsError> {
    let rendered = || format!("{program} {}", args.join(" "));
    let output = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|source| NetnsError::Spawn {
            command: rendered(),
            source,
        })?;
    if !output.status.success() {
        let mut text = String::from_utf8_lossy(&output.stderr).trim().to_owned();
        if text.is_empty() {
            text = output.status.to_string();
        }
        return Err(NetnsError::Command {
            command: rendered(),
            output: text,
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// `ip ARGS...`
pub(crate) fn ip(args: &[&str]) -> Result<String, NetnsError> {
    run("ip", args)
}

/// `ip -n NETNS ARGS...`: a command applied inside a namespace.
pub(crate) fn ip_in(netns: &str, args: &[&str]) -> Result<String, NetnsError> {
    let mut full = vec!["-n", netns];
    full.extend_from_slice(args);
    ip(&full)
}

/// Whether `program` is on the PATH.
pub(crate) fn installed(program: &str) -> bool {
    let Some(path) = std::env::var_os("PATH") else {
        return false;
    };
    std::env::split_paths(&path).any(|dir| dir.join(program).is_file())
}
