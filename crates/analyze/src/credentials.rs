//! Gateway credentials as local mode keeps them, beside the config:
//! `DIR/credentials/NAME/tls.crt` and `tls.key`, and a client CA as
//! `ca.crt` in `NAME/` or `NAME-cacert/` (Kubernetes keeps them in Secrets,
//! which manifests do not hold). Only directory inputs can have them, so
//! credentials are checked only when a directory is analyzed.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

const CREDENTIALS_DIR: &str = "credentials";
const CERTIFICATE_FILE: &str = "tls.crt";
const KEY_FILE: &str = "tls.key";
const CA_FILE: &str = "ca.crt";
/// Istio's suffix naming the client CA of credential `NAME`.
const CA_SUFFIX: &str = "-cacert";

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LocalCredentials {
    /// Credentials with a certificate and a key.
    certificates: BTreeSet<String>,
    /// Credential directories holding a `ca.crt`.
    cas: BTreeSet<String>,
}

impl LocalCredentials {
    /// The credentials under the directories among `paths`; `None` when no
    /// input is a directory.
    pub fn find(paths: &[PathBuf]) -> Option<LocalCredentials> {
        let directories: Vec<&PathBuf> = paths.iter().filter(|p| p.is_dir()).collect();
        if directories.is_empty() {
            return None;
        }
        let mut found = LocalCredentials::default();
        for directory in directories {
            found.read(&directory.join(CREDENTIALS_DIR));
        }
        Some(found)
    }

    fn read(&mut self, dir: &Path) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return; // no credentials here
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if path.join(CERTIFICATE_FILE).is_file() && path.join(KEY_FILE).is_file() {
                self.certificates.insert(name.clone());
            }
            if path.join(CA_FILE).is_file() {
                self.cas.insert(name);
            }
        }
    }

    pub fn has_certificate(&self, name: &str) -> bool {
        self.certificates.contains(name)
    }

    /// Whether the client CA of credential `name` exists, in either layout.
    pub fn has_client_ca(&self, name: &str) -> bool {
        self.cas.contains(name) || self.cas.contains(&format!("{name}{CA_SUFFIX}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_credential_directories() {
        let config = tempfile::tempdir().unwrap();
        let credentials = config.path().join(CREDENTIALS_DIR);
        for (name, files) in [
            ("web", &[CERTIFICATE_FILE, KEY_FILE][..]),
            ("api", &[CERTIFICATE_FILE, KEY_FILE, CA_FILE][..]),
            ("web-cacert", &[CA_FILE][..]),
            ("half", &[CERTIFICATE_FILE][..]),
        ] {
            std::fs::create_dir_all(credentials.join(name)).unwrap();
            for file in files {
                std::fs::write(credentials.join(name).join(file), "pem").unwrap();
            }
        }
        let found = LocalCredentials::find(&[config.path().to_path_buf()]).unwrap();
        assert!(found.has_certificate("web") && found.has_certificate("api"));
        assert!(!found.has_certificate("half") && !found.has_certificate("web-cacert"));
        assert!(found.has_client_ca("web") && found.has_client_ca("api"));
        assert!(!found.has_client_ca("half"));
        let file = config.path().join("gateway.yaml");
        std::fs::write(&file, "").unwrap();
        assert_eq!(LocalCredentials::find(&[file]), None);
    }
}
