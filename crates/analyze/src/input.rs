//! Reading manifests: files, directories and standard input, each document
//! read with [`read_documents`] so that invalid resources stay available to
//! report on.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::credentials::LocalCredentials;
use trellis_api::{AnyResource, ConfigError, Document, ResourceKey, read_documents};

/// The name standard input is reported under.
pub const STDIN_NAME: &str = "<stdin>";

/// The extensions read from directories, as istioctl.
const MANIFEST_EXTENSIONS: [&str; 3] = ["yaml", "yml", "json"];

#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("no input: give manifests with -f FILE|DIR (or - for standard input)")]
    Empty,
}

/// One text to read and the name its problems are reported under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub name: PathBuf,
    pub text: String,
}

/// Expands `paths` into sources: `-` is standard input, a directory
/// contributes its `.yaml`, `.yml` and `.json` files (not recursively, in
/// name order), anything else is read as a file.
pub fn gather(paths: &[PathBuf]) -> Result<Vec<Source>, InputError> {
    if paths.is_empty() {
        return Err(InputError::Empty);
    }
    let mut sources = Vec::new();
    for path in paths {
        if path.as_os_str() == "-" {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|source| read_error(path, source))?;
            sources.push(Source {
                name: PathBuf::from(STDIN_NAME),
                text,
            });
        } else if path.is_dir() {
            for file in manifests_in(path)? {
                sources.push(read_file(&file)?);
            }
        } else {
            sources.push(read_file(path)?);
        }
    }
    Ok(sources)
}

fn manifests_in(directory: &Path) -> Result<Vec<PathBuf>, InputError> {
    let entries = std::fs::read_dir(directory).map_err(|source| read_error(directory, source))?;
    let mut files = Vec::new();
    for entry in entries {
        let path = entry
            .map_err(|source| read_error(directory, source))?
            .path();
        let manifest = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| MANIFEST_EXTENSIONS.contains(&e));
        if manifest && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

fn read_file(path: &Path) -> Result<Source, InputError> {
    let text = std::fs::read_to_string(path).map_err(|source| read_error(path, source))?;
    Ok(Source {
        name: path.to_path_buf(),
        text,
    })
}

fn read_error(path: &Path, source: std::io::Error) -> InputError {
    InputError::Read {
        path: path.to_path_buf(),
        source,
    }
}

/// A resource that was read, valid or not.
#[derive(Debug, Clone, PartialEq)]
pub struct Checked {
    pub resource: AnyResource,
    /// What validation found wrong with it; empty when valid.
    pub violations: Vec<ConfigError>,
}

/// Everything read from a set of sources.
#[derive(Debug, Default)]
pub struct Loaded {
    pub resources: Vec<Checked>,
    /// Documents that could not be read, and resources defined twice.
    pub errors: Vec<ConfigError>,
    /// Kinds Trellis does not read.
    pub warnings: Vec<ConfigError>,
    /// Gateway credentials beside the inputs (see credentials.rs).
    pub credentials: Option<LocalCredentials>,
    /// A mesh config given apart from the manifests; it wins over the
    /// `istio` ConfigMap among them.
    pub mesh_config: Option<trellis_api::MeshConfig>,
}

impl Loaded {
    /// Every validation error, in the order the resources were read.
    pub fn violations(&self) -> impl Iterator<Item = &ConfigError> {
        self.resources
            .iter()
            .flat_map(|checked| &checked.violations)
    }
}

/// Reads every document of every source. A resource defined again (same
/// kind, namespace and name) is an error and the first definition is kept.
pub fn load(sources: &[Source]) -> Loaded {
    let mut loaded = Loaded::default();
    let mut first_definition: HashMap<ResourceKey, String> = HashMap::new();
    for source in sources {
        for document in read_documents(&source.name, &source.text) {
            match document {
                Document::Unreadable(errors) => loaded.errors.extend(errors),
                Document::Unsupported(warning) => loaded.warnings.push(warning),
                Document::Resource {
                    resource,
                    violations,
                    name_position,
                    warnings,
                } => {
                    loaded.warnings.extend(warnings);
                    let key = resource.key();
                    if let Some(first) = first_definition.get(&key) {
                        let message = format!("{key} is already defined at {first}");
                        loaded.errors.push(ConfigError::new(
                            &source.name,
                            name_position,
                            "metadata.name",
                            message,
                        ));
                        continue;
                    }
                    first_definition.insert(key, resource.source().to_string());
                    loaded.resources.push(Checked {
                        resource,
                        violations,
                    });
                }
            }
        }
    }
    loaded
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(name: &str, text: &str) -> Source {
        Source {
            name: PathBuf::from(name),
            text: text.to_string(),
        }
    }

    #[test]
    fn invalid_resources_are_kept_with_their_violations() {
        let text = "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: dr}\nspec: {host: ''}\n---\nkind: Nothing\n";
        let loaded = load(&[source("a.yaml", text)]);
        assert_eq!(loaded.resources.len(), 1);
        let violation = &loaded.resources[0].violations[0];
        assert_eq!(
            violation.to_string(),
            "a.yaml:4:8: spec.host: host must be set: empty domain name not allowed"
        );
        assert_eq!(loaded.errors.len(), 1, "{:?}", loaded.errors);
        assert_eq!(loaded.errors[0].field, "apiVersion");
    }

    #[test]
    fn definitions_repeated_across_files_are_errors() {
        let text = "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: reviews}\n";
        let loaded = load(&[source("a.yaml", text), source("b.yaml", text)]);
        assert_eq!(loaded.resources.len(), 1);
        assert_eq!(
            loaded.errors[0].to_string(),
            "b.yaml:3:12: metadata.name: ServiceAccount/default/reviews is already defined at a.yaml:1:1"
        );
    }

    #[test]
    fn directories_contribute_manifests_in_name_order() {
        let temporary = tempfile::tempdir().unwrap();
        let directory = temporary.path().to_path_buf();
        for name in ["b.yaml", "a.yml", "notes.txt"] {
            std::fs::write(directory.join(name), "").unwrap();
        }
        let names: Vec<_> = gather(std::slice::from_ref(&directory))
            .unwrap()
            .into_iter()
            .map(|s| s.name.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["a.yml", "b.yaml"]);
        assert!(matches!(gather(&[]), Err(InputError::Empty)));
    }
}
