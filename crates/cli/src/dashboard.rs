//! `trellis dashboard`: where the dashboard of a running `trellis up` is,
//! read from its `up.json`, printed and optionally opened in a browser.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::Context;
use trellis_local::UpState;

/// Print (or open) the mesh dashboard of a running `trellis up`.
#[derive(Debug, clap::Args)]
pub struct DashboardArgs {
    /// The `up` state directory (holding up.json). Default: the most
    /// recently started `trellis up` still running, in the temp directory.
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// Also open it with the desktop's browser (xdg-open).
    #[arg(long)]
    open: bool,
}

pub fn run(args: &DashboardArgs) -> anyhow::Result<()> {
    let state = match &args.state_dir {
        Some(dir) => {
            UpState::read(dir).with_context(|| format!("reading {}/up.json", dir.display()))?
        }
        None => latest_running_up(&std::env::temp_dir())?,
    };
    let url = state.control_plane.dashboard_url();
    println!("{url}");
    if args.open {
        let status = std::process::Command::new("xdg-open")
            .arg(&url)
            .status()
            .context("running xdg-open (open the URL above by hand)")?;
        anyhow::ensure!(status.success(), "xdg-open failed ({status})");
    }
    Ok(())
}

/// The newest `trellis-up-*` state under `temp` whose `up` process lives.
fn latest_running_up(temp: &Path) -> anyhow::Result<UpState> {
    let entries = std::fs::read_dir(temp).with_context(|| format!("listing {}", temp.display()))?;
    let mut newest: Option<(SystemTime, UpState)> = None;
    for entry in entries.flatten() {
        if !entry
            .file_name()
            .to_string_lossy()
            .starts_with("trellis-up-")
        {
            continue;
        }
        let Ok(state) = UpState::read(&entry.path()) else {
            continue;
        };
        let alive = Path::new("/proc").join(state.pid.to_string()).exists();
        let started = entry
            .path()
            .join(trellis_local::up::UP_JSON)
            .metadata()
            .and_then(|m| m.modified());
        if let (true, Ok(started)) = (alive, started)
            && newest.as_ref().is_none_or(|(time, _)| started > *time)
        {
            newest = Some((started, state));
        }
    }
    newest.map(|(_, state)| state).with_context(|| {
        format!(
            "no running `trellis up` found in {}; pass --state-dir",
            temp.display()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_state(dir: &Path, name: &str, pid: u32, monitoring: &str) {
        let root = dir.join(name);
        std::fs::create_dir_all(&root).unwrap();
        let state = serde_json::json!({
            "schemaVersion": 1, "pid": pid, "stateDir": root, "configDir": root.join("config"),
            "rootCert": root.join("root-cert.pem"), "addressRange": "127.42.0.0/16",
            "controlPlane": {"pid": pid, "address": "127.42.0.1", "xdsAddress": "127.42.0.1:15010",
                "secureAddress": "127.42.0.1:15012", "monitoringAddress": monitoring,
                "caDir": "/ca", "workloadTokens": "/tokens.json", "command": ["trellis"]},
            "services": [], "workloads": []
        });
        std::fs::write(root.join("up.json"), state.to_string()).unwrap();
    }

    #[test]
    fn finds_the_running_up_and_skips_dead_ones() {
        let temp = tempfile::tempdir().unwrap();
        assert!(latest_running_up(temp.path()).is_err());
        write_state(
            temp.path(),
            "trellis-up-alive",
            std::process::id(),
            "127.42.0.1:15014",
        );
        // Ids above the kernel's pid_max (2^22) are never a process.
        write_state(
            temp.path(),
            "trellis-up-dead",
            9_999_999,
            "127.43.0.1:15014",
        );
        write_state(
            temp.path(),
            "something-else",
            std::process::id(),
            "127.44.0.1:15014",
        );
        let state = latest_running_up(temp.path()).unwrap();
        assert_eq!(
            state.control_plane.dashboard_url(),
            "http://127.42.0.1:15014/dashboard/"
        );
    }
}
