//! Crash-safe writes for key material and secrets.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::error::CaError;

/// Writes `contents` to `path` so that readers see either the old file or
/// the complete new one: write a temporary sibling with `mode`, fsync it,
/// rename it over `path`, then fsync the directory so the rename survives a
/// crash. The temporary file is created with `mode` from the start, so a
/// secret is never readable by others, even briefly.
pub(crate) fn write_atomically(path: &Path, contents: &[u8], mode: u32) -> Result<(), CaError> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let file_name = path
        .file_name()
        .ok_or_else(|| CaError::io(path, std::io::ErrorKind::InvalidInput.into()))?;
    let mut temp_name = std::ffi::OsString::from(".");
    temp_name.push(file_name);
    temp_name.push(format!(".tmp-{}", std::process::id()));
    let temp_path = dir.join(temp_name);

    let result = write_new_file(&temp_path, contents, mode)
        .and_then(|()| fs::rename(&temp_path, path).map_err(|e| CaError::io(path, e)))
        .and_then(|()| sync_dir(dir));
    if result.is_err() {
        // Best effort: a leftover temp file is harmless, but tidy up if we can.
        let _ = fs::remove_file(&temp_path);
    }
    result
}

fn write_new_file(path: &Path, contents: &[u8], mode: u32) -> Result<(), CaError> {
    // A stale temp file from a crashed earlier run may exist; start afresh.
    match fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(CaError::io(path, e)),
        _ => {}
    }
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|e| CaError::io(path, e))?;
    file.write_all(contents)
        .and_then(|()| file.sync_all())
        .map_err(|e| CaError::io(path, e))
}

fn sync_dir(dir: &Path) -> Result<(), CaError> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| CaError::io(dir, e))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn replaces_contents_and_sets_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        write_atomically(&path, b"one", 0o600).unwrap();
        write_atomically(&path, b"two", 0o600).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        let mode = fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let leftovers: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "temp file left behind");
    }
}
