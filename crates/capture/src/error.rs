use std::io;

/// Why capture could not be set up or removed.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error(
        "changing iptables rules needs CAP_NET_ADMIN: run `trellis iptables` as root \
         (or add --dry-run to only print the rules)"
    )]
    NotPrivileged,
    #[error(
        "`{tool}` was not found on PATH: install it (Debian: apt-get install {package}) \
         or add --dry-run to only print the rules"
    )]
    ToolMissing {
        tool: &'static str,
        package: &'static str,
    },
    #[error("could not run `{tool}`: {source}")]
    Spawn {
        tool: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("`{command}` failed ({status}): {message}")]
    CommandFailed {
        command: String,
        status: std::process::ExitStatus,
        message: String,
    },
    #[error("reading the process' capabilities from /proc/self/status: {0}")]
    Capabilities(#[source] io::Error),
}
