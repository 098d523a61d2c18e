//! The manifests `up` runs: the bundled Bookinfo, or the files and
//! directories given with `-f`. Platform resources (Deployments and
//! ServiceAccounts) are read once at start; every other document is copied
//! verbatim into the watched config directory, where the control plane
//! reads it and the user can edit it.

use std::collections::{HashMap, HashSet};
use std::io;
use std::path::{Path, PathBuf};

use trellis_api::{AnyResource, ConfigError, Position, parse_yaml};

/// Istio's Bookinfo, with the routing the walking skeleton demonstrates:
/// every version's subsets, reviews split 90/10 between v1 and v2, and
/// the product page served by the ingress gateway.
const BUNDLED_BOOKINFO: [(&str, &str); 4] = [
    (
        "samples/bookinfo/platform/bookinfo.yaml",
        include_str!("../../../../samples/bookinfo/platform/bookinfo.yaml"),
    ),
    (
        "samples/bookinfo/networking/destination-rule-all.yaml",
        include_str!("../../../../samples/bookinfo/networking/destination-rule-all.yaml"),
    ),
    (
        "samples/bookinfo/networking/virtual-service-reviews-90-10.yaml",
        include_str!("../../../../samples/bookinfo/networking/virtual-service-reviews-90-10.yaml"),
    ),
    (
        "samples/bookinfo/networking/bookinfo-gateway.yaml",
        include_str!("../../../../samples/bookinfo/networking/bookinfo-gateway.yaml"),
    ),
];

/// File name endings read from a `-f` directory (JSON is YAML too).
const MANIFEST_EXTENSIONS: [&str; 3] = ["yaml", "yml", "json"];

/// Why the manifests could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("reading {path}")]
    Read { path: PathBuf, source: io::Error },
    #[error("{0}: no .yaml, .yml or .json files in this directory")]
    EmptyDirectory(PathBuf),
    #[error("{} error(s) in the manifests", .0.len())]
    Invalid(Vec<ConfigError>),
}

/// One manifest file and what it holds.
#[derive(Debug, Clone)]
pub struct ManifestFile {
    /// As given on the command line (or the bundled sample's repo path).
    pub path: PathBuf,
    pub text: String,
    pub resources: Vec<AnyResource>,
}

/// Every manifest `up` was given, parsed and checked.
#[derive(Debug, Clone)]
pub struct Manifests {
    pub files: Vec<ManifestFile>,
    /// Unsupported kinds that were skipped, to show the user.
    pub warnings: Vec<ConfigError>,
}

impl Manifests {
    pub fn resources(&self) -> impl Iterator<Item = &AnyResource> {
        self.files.iter().flat_map(|file| &file.resources)
    }
}

/// Loads the bundled Bookinfo when `inputs` is empty, else every input file
/// and every manifest file directly inside each input directory.
pub fn load(inputs: &[PathBuf]) -> Result<Manifests, ManifestError> {
    let sources = if inputs.is_empty() {
        BUNDLED_BOOKINFO
            .iter()
            .map(|(path, text)| (PathBuf::from(path), (*text).to_owned()))
            .collect()
    } else {
        read_inputs(inputs)?
    };
    parse_all(sources)
}

/// Each file once, even when named twice (`-f a.yaml -f .`): a file read
/// twice would define every resource twice.
fn read_inputs(inputs: &[PathBuf]) -> Result<Vec<(PathBuf, String)>, ManifestError> {
    let mut files = Vec::new();
    for input in inputs {
        if input.is_dir() {
            let found = manifest_files_in(input).map_err(|source| read_error(input, source))?;
            if found.is_empty() {
                return Err(ManifestError::EmptyDirectory(input.clone()));
            }
            files.extend(found);
        } else {
            files.push(input.clone());
        }
    }
    let mut seen = HashSet::new();
    let mut sources = Vec::with_capacity(files.len());
    for file in files {
        let canonical = file
            .canonicalize()
            .map_err(|source| read_error(&file, source))?;
        if seen.insert(canonical) {
            let text =
                std::fs::read_to_string(&file).map_err(|source| read_error(&file, source))?;
            sources.push((file, text));
        }
    }
    Ok(sources)
}

fn read_error(path: &Path, source: io::Error) -> ManifestError {
    ManifestError::Read {
        path: path.to_path_buf(),
        source,
    }
}

/// The manifest files directly inside `dir` (as `kubectl apply -f DIR`
/// without `-R`), in name order so that runs are reproducible.
fn manifest_files_in(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let is_manifest = path
            .extension()
            .and_then(|ext| ext.to_str())
            .is_some_and(|ext| MANIFEST_EXTENSIONS.contains(&ext));
        if is_manifest && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

fn parse_all(sources: Vec<(PathBuf, String)>) -> Result<Manifests, ManifestError> {
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    let mut files = Vec::with_capacity(sources.len());
    for (path, text) in sources {
        let outcome = parse_yaml(&path, &text);
        errors.extend(outcome.errors);
        warnings.extend(outcome.warnings);
        files.push(ManifestFile {
            path,
            text,
            resources: outcome.resources,
        });
    }
    errors.extend(duplicates_across_files(&files));
    if errors.is_empty() {
        Ok(Manifests { files, warnings })
    } else {
        Err(ManifestError::Invalid(errors))
    }
}

/// The same kind/namespace/name in two files: an error at the second,
/// naming the first. (Duplicates within one file are found by the parser.)
fn duplicates_across_files(files: &[ManifestFile]) -> Vec<ConfigError> {
    let mut first_seen = HashMap::new();
    let mut errors = Vec::new();
    for resource in files.iter().flat_map(|file| &file.resources) {
        let source = resource.source();
        match first_seen.get(&resource.key()) {
            Some(first) if first != source => {
                let position = Position {
                    line: source.line,
                    column: source.column,
                };
                let message = format!("{} is also defined at {first}", resource.key());
                errors.push(ConfigError::new(
                    &source.file,
                    position,
                    "metadata.name",
                    message,
                ));
            }
            Some(_) => {}
            None => {
                first_seen.insert(resource.key(), source.clone());
            }
        }
    }
    errors
}

/// True for the kinds the control plane reads from the config directory.
/// Deployments and ServiceAccounts become local processes and credentials
/// instead.
pub fn is_watched(resource: &AnyResource) -> bool {
    !matches!(
        resource,
        AnyResource::Deployment(_) | AnyResource::ServiceAccount(_)
    )
}

/// The text to copy into the config directory for `file`: its documents
/// that hold watched resources, verbatim (comments included), or `None`
/// when it has none.
#[cfg(test)]
pub fn watched_text(file: &ManifestFile) -> Option<String> {
    let verbatim = watched_text_with(file, |_, _| Ok::<_, std::convert::Infallible>(None));
    verbatim.unwrap_or_else(|never| match never {})
}

/// The text to copy into the config directory for `file`: its documents
/// that hold watched resources, verbatim (comments included), or `None`
/// when it has none. Each kept document's resource and text are passed to
/// `rewrite`, whose `Some(text)` replaces the document.
pub fn watched_text_with<E>(
    file: &ManifestFile,
    mut rewrite: impl FnMut(&AnyResource, &str) -> Result<Option<String>, E>,
) -> Result<Option<String>, E> {
    let documents = split_documents(&file.text);
    let mut kept: Vec<Option<&AnyResource>> = vec![None; documents.len()];
    for resource in file.resources.iter().filter(|r| is_watched(r)) {
        let line = resource.source().line;
        if let Some(index) = documents.iter().rposition(|doc| doc.first_line <= line) {
            kept[index] = Some(resource);
        }
    }
    let mut text = String::new();
    for (document, resource) in documents.iter().zip(kept) {
        let Some(resource) = resource else {
            continue;
        };
        if !text.is_empty() {
            if !text.ends_with('\n') {
                text.push('\n');
            }
            if !document.starts_with_marker {
                text.push_str("---\n");
            }
        }
        match rewrite(resource, document.text)? {
            Some(replaced) if document.starts_with_marker => {
                text.push_str("---\n");
                text.push_str(&replaced);
            }
            Some(replaced) => text.push_str(&replaced),
            None => text.push_str(document.text),
        }
    }
    Ok((!text.is_empty()).then_some(text))
}

/// One YAML document's text, including its leading `---` marker line.
#[derive(Debug, PartialEq, Eq)]
struct Document<'a> {
    text: &'a str,
    /// 1-based line where this document's text starts.
    first_line: usize,
    starts_with_marker: bool,
}

/// Splits a multi-document text at `---` marker lines. A marker is always at
/// column 0, and nothing at column 0 can be inside a block scalar, so
/// splitting on lines is exact.
fn split_documents(text: &str) -> Vec<Document<'_>> {
    let mut documents = Vec::new();
    let mut start = 0;
    let mut first_line = 1;
    let mut offset = 0;
    for (index, line) in text.split_inclusive('\n').enumerate() {
        let is_marker = line
            .strip_prefix("---")
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(char::is_whitespace));
        if is_marker && offset > start {
            documents.push(document(text, start, offset, first_line));
            start = offset;
            first_line = index + 1;
        }
        offset += line.len();
    }
    if offset > start {
        documents.push(document(text, start, offset, first_line));
    }
    documents
}

fn document(text: &str, start: usize, end: usize, first_line: usize) -> Document<'_> {
    let text = &text[start..end];
    Document {
        text,
        first_line,
        starts_with_marker: text.starts_with("---"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(path: &str, text: &str) -> ManifestFile {
        let outcome = parse_yaml(Path::new(path), text);
        assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
        ManifestFile {
            path: path.into(),
            text: text.to_owned(),
            resources: outcome.resources,
        }
    }

    #[test]
    fn bundled_bookinfo_parses_cleanly() {
        let manifests = load(&[]).unwrap();
        let kinds = |kind: &str| manifests.resources().filter(|r| r.kind() == kind).count();
        assert_eq!(kinds("Deployment"), 6);
        assert_eq!(kinds("Service"), 4);
        assert_eq!(kinds("DestinationRule"), 4);
        assert_eq!(kinds("VirtualService"), 2);
        assert_eq!(kinds("Gateway"), 1);
    }

    #[test]
    fn copies_only_watched_documents_verbatim() {
        let text = "# header\napiVersion: v1\nkind: Service\nmetadata:\n  name: a\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: a-v1\n--- # vs\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: a\nspec:\n  hosts: [a]\n";
        let copied = watched_text(&manifest("a.yaml", text)).unwrap();
        assert_eq!(
            copied,
            "# header\napiVersion: v1\nkind: Service\nmetadata:\n  name: a\n--- # vs\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: a\nspec:\n  hosts: [a]\n"
        );
        let only_platform = "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: sa\n";
        assert_eq!(watched_text(&manifest("b.yaml", only_platform)), None);
    }

    #[test]
    fn separates_documents_that_had_no_marker() {
        let text = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n---\napiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: sa\n---\napiVersion: v1\nkind: Service\nmetadata:\n  name: b\n";
        let copied = watched_text(&manifest("c.yaml", text)).unwrap();
        let reparsed = parse_yaml(Path::new("c.yaml"), &copied);
        assert!(reparsed.errors.is_empty());
        let kinds: Vec<_> = reparsed
            .resources
            .iter()
            .map(|r| r.kind().to_owned())
            .collect();
        assert_eq!(kinds, ["Namespace", "Service"]);
    }

    #[test]
    fn reports_the_same_resource_in_two_files() {
        let service = "apiVersion: v1\nkind: Service\nmetadata:\n  name: reviews\n";
        let errors =
            duplicates_across_files(&[manifest("a.yaml", service), manifest("b.yaml", service)]);
        assert_eq!(errors.len(), 1);
        assert_eq!(
            errors[0].to_string(),
            "b.yaml:1:1: metadata.name: Service/default/reviews is also defined at a.yaml:1:1"
        );
    }

    #[test]
    fn reads_manifest_files_of_a_directory_in_order() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("b.yaml"),
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: b\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("a.yml"),
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: a\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("notes.txt"), "not yaml").unwrap();
        let manifests = load(&[dir.path().to_path_buf()]).unwrap();
        let names: Vec<_> = manifests
            .resources()
            .map(|r| r.meta().name.clone())
            .collect();
        assert_eq!(names, ["a", "b"]);

        // Named twice: read once.
        let twice = [dir.path().to_path_buf(), dir.path().join("a.yml")];
        assert_eq!(load(&twice).unwrap().resources().count(), 2);

        let empty = tempfile::tempdir().unwrap();
        assert!(matches!(
            load(&[empty.path().to_path_buf()]),
            Err(ManifestError::EmptyDirectory(_))
        ));
    }

    #[test]
    fn collects_every_error_with_its_location() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.yaml");
        std::fs::write(&path, "apiVersion: v1\nkind: Service\nmetadata: [\n").unwrap();
        let Err(ManifestError::Invalid(errors)) = load(std::slice::from_ref(&path)) else {
            panic!("expected a syntax error");
        };
        assert!(
            errors[0]
                .to_string()
                .starts_with(&format!("{}:", path.display()))
        );
    }
}
