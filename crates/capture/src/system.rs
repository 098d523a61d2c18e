//! Running iptables and ip: argument vectors (never a shell), stdin for
//! restore input, and errors that carry the tool's own message.

use std::io::{self, Write as _};
use std::process::{Command, ExitStatus, Stdio};

use crate::error::CaptureError;

/// CAP_NET_ADMIN's bit in the capability sets of /proc/self/status.
const CAP_NET_ADMIN: u32 = 12;

/// Fails unless this process may change the network configuration, so the
/// user gets one clear message instead of iptables' own.
pub fn require_net_admin() -> Result<(), CaptureError> {
    let status =
        std::fs::read_to_string("/proc/self/status").map_err(CaptureError::Capabilities)?;
    if has_net_admin(&status) {
        Ok(())
    } else {
        Err(CaptureError::NotPrivileged)
    }
}

fn has_net_admin(proc_status: &str) -> bool {
    proc_status
        .lines()
        .find_map(|line| line.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .is_some_and(|effective| effective & (1 << CAP_NET_ADMIN) != 0)
}

/// What a finished command printed.
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `tool args...`, feeding `input` on stdin, and waits for it.
/// Fails only when it cannot be started; the caller judges the status.
pub fn run(
    tool: &'static str,
    args: &[&str],
    input: Option<&str>,
) -> Result<Finished, CaptureError> {
    tracing::debug!(tool, ?args, "running");
    let mut child = Command::new(tool)
        .args(args)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| spawn_error(tool, source))?;
    if let (Some(input), Some(mut stdin)) = (input, child.stdin.take()) {
        // A tool that exits early closes the pipe; its exit status and
        // stderr then say why, so a write error adds nothing.
        let _ = stdin.write_all(input.as_bytes());
    }
    let output = child
        .wait_with_output()
        .map_err(|source| CaptureError::Spawn { tool, source })?;
    Ok(Finished {
        status: output.status,
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
    })
}

/// Runs `tool` and returns its stdout, or its own error message.
pub fn run_checked(
    tool: &'static str,
    args: &[&str],
    input: Option<&str>,
) -> Result<String, CaptureError> {
    let finished = run(tool, args, input)?;
    if finished.status.success() {
        return Ok(finished.stdout);
    }
    let mut message = finished.stderr;
    if let Some(rule) = input.and_then(|input| failed_input_line(&message, input)) {
        message.push_str(&format!(" (the rule was: {rule})"));
    }
    Err(CaptureError::CommandFailed {
        command: std::iter::once(tool)
            .chain(args.iter().copied())
            .collect::<Vec<_>>()
            .join(" "),
        status: finished.status,
        message,
    })
}

fn spawn_error(tool: &'static str, source: io::Error) -> CaptureError {
    if source.kind() != io::ErrorKind::NotFound {
        return CaptureError::Spawn { tool, source };
    }
    let package = if tool == "ip" { "iproute2" } else { "iptables" };
    CaptureError::ToolMissing { tool, package }
}

/// iptables-restore names the input line it refused ("line 7 failed");
/// returns that line so the error shows the rule itself.
fn failed_input_line<'a>(stderr: &str, input: &'a str) -> Option<&'a str> {
    let after = &stderr[stderr.find("line ")? + "line ".len()..];
    let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
    let number: usize = digits.parse().ok()?;
    input.lines().nth(number.checked_sub(1)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn net_admin_is_read_from_the_effective_set() {
        assert!(has_net_admin("Name:\tx\nCapEff:\t000001ffffffffff\n"));
        assert!(has_net_admin("CapEff:\t0000000000001000\n"));
        assert!(!has_net_admin("CapEff:\t0000000000000000\n"));
        assert!(!has_net_admin("CapPrm:\t000001ffffffffff\n"));
    }

    #[test]
    fn refused_rules_are_quoted_from_the_input() {
        let input = "*nat\n:ISTIO_OUTPUT - [0:0]\n-A ISTIO_OUTPUT -j NOPE\nCOMMIT\n";
        let stderr = "iptables-restore v1.8.9 (nf_tables): line 3 failed: No chain/target/match by that name";
        assert_eq!(
            failed_input_line(stderr, input),
            Some("-A ISTIO_OUTPUT -j NOPE")
        );
        assert_eq!(failed_input_line("no line number", input), None);
    }

    #[test]
    fn missing_tools_name_their_package() {
        let missing = spawn_error("ip", io::ErrorKind::NotFound.into());
        assert!(
            missing.to_string().contains("apt-get install iproute2"),
            "{missing}"
        );
        let missing = run("trellis-no-such-tool", &[], None)
            .err()
            .map(|e| e.to_string());
        assert!(missing.is_some_and(|m| m.contains("was not found on PATH")));
    }
}
