//! Errors of config sources: reading files and directories, watching them.

use std::io;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ConfigStoreError {
    #[error("{}: cannot read directory: {source}", path.display())]
    ReadDir { path: PathBuf, source: io::Error },
    #[error("{}: cannot read: {source}", path.display())]
    ReadFile { path: PathBuf, source: io::Error },
    #[error("{}: not valid UTF-8 (invalid byte at offset {offset})", path.display())]
    NotUtf8 { path: PathBuf, offset: usize },
    #[error("{}: larger than the {limit}-byte limit for a config file", path.display())]
    TooLarge { path: PathBuf, limit: u64 },
    #[error("{}: cannot watch: {source}", path.display())]
    Watch {
        path: PathBuf,
        source: notify::Error,
    },
    #[error("cannot start the config watcher thread: {0}")]
    Thread(io::Error),
}
