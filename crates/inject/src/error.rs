use std::path::PathBuf;

/// Everything that can go wrong while injecting or serving the webhook.
#[derive(Debug, thiserror::Error)]
pub enum InjectError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("writing {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("parsing YAML: {0}")]
    ParseYaml(Box<serde_saphyr::Error>),
    #[error("printing YAML: {0}")]
    PrintYaml(#[from] serde_saphyr::SerializeError),
    #[error("mesh config {path}: {source}")]
    MeshConfig {
        path: PathBuf,
        source: Box<serde_saphyr::Error>,
    },
    #[error("pod template is not injectable: {0}")]
    InvalidPod(&'static str),
    #[error("document {index} ({kind} {name}): {source}")]
    InDocument {
        index: usize,
        kind: String,
        name: String,
        source: Box<InjectError>,
    },
    #[error("TLS material {path}: {reason}")]
    TlsMaterial { path: PathBuf, reason: String },
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    #[error("listening on {address}: {source}")]
    Listen {
        address: std::net::SocketAddr,
        source: std::io::Error,
    },
}

// YAML errors carry their source snippet: boxed, so that every `Result`
// of the crate stays small.
impl From<serde_saphyr::Error> for InjectError {
    fn from(error: serde_saphyr::Error) -> Self {
        Self::ParseYaml(Box::new(error))
    }
}
