//! `trellis analyze`: istioctl's analyzers over a set of manifests, with its
//! message codes, output formats, thresholds and exit status.

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;

use crate::analyzers;
use crate::credentials::LocalCredentials;
use crate::input::{InputError, Loaded, gather, load};
use crate::message::{Level, Message, Origin};
use crate::model::Model;
use crate::output::{OutputFormat, render};
use crate::suppress::{
    InvalidSuppression, SUPPRESS_ANNOTATION, Suppression, annotation_suppresses,
};

/// istioctl's exit status when messages at or above the failure threshold exist.
pub const EXIT_ANALYZER_FOUND_ISSUES: i32 = 79;
/// istioctl's exit status when some input could not be parsed (and no
/// message reached the failure threshold).
pub const EXIT_DATA_ERROR: i32 = 65;

/// Where the message reference for analysis explains each code.
const ANALYSIS_REFERENCE: &str = "https://istio.io/v1.28/docs/reference/config/analysis";

/// Analyze manifests for cross-resource mistakes, with istioctl's message
/// codes (IST0101, IST0109, ...), levels and output.
#[derive(Debug, Clone, clap::Args)]
#[command(after_long_help = "\
Pods: when the manifests hold Deployments but no Pods, each Deployment's pod \
template stands for the pods it creates (what `trellis up` runs), so \
DestinationRule subsets are checked against the templates' labels.

Exit status: 79 when a message at or above --failure-threshold was found \
(in every output format), 65 when some input could not be parsed, 0 otherwise.")]
pub struct AnalyzeArgs {
    /// A manifest file, a directory of them (.yaml, .yml, .json), or - for
    /// standard input. Repeatable.
    #[arg(short = 'f', long = "filename", value_name = "FILE|DIR|-")]
    pub files: Vec<PathBuf>,
    /// More manifests, as istioctl takes them.
    #[arg(value_name = "FILE|DIR|-")]
    pub paths: Vec<PathBuf>,
    /// Report on resources of every namespace.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// The namespace to report on (without --all-namespaces).
    #[arg(short = 'n', long, default_value = trellis_api::DEFAULT_NAMESPACE)]
    pub namespace: String,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value = "text")]
    pub output: OutputFormat,
    /// The level from which messages make the exit status non-zero.
    #[arg(long, value_enum, default_value_t = Level::Error)]
    pub failure_threshold: Level,
    /// The level from which messages are printed.
    #[arg(long, value_enum, default_value_t = Level::Info)]
    pub output_threshold: Level,
    /// Do not report CODE on a resource: `IST0118=Service default/details`,
    /// `IST0101=VirtualService *.default` ('*' matches anything). Repeatable.
    #[arg(short = 'S', long, value_name = "CODE=KIND NAMESPACE/NAME")]
    pub suppress: Vec<String>,
    /// The mesh config to analyze against (as `trellis control-plane
    /// --mesh-config` reads it); without it, the `istio` ConfigMap of
    /// istio-system among the manifests, else Istio's defaults.
    #[arg(long, alias = "meshConfigFile", value_name = "FILE")]
    pub mesh_config: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum AnalyzeError {
    #[error(transparent)]
    Input(#[from] InputError),
    #[error(transparent)]
    Suppression(#[from] InvalidSuppression),
    #[error(transparent)]
    MeshConfig(#[from] trellis_api::MeshConfigError),
}

/// Which resources messages are reported for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    AllNamespaces,
    /// One namespace, and cluster-scoped resources.
    Namespace(String),
}

impl Scope {
    fn includes(&self, origin: &Origin) -> bool {
        match self {
            Scope::AllNamespaces => true,
            Scope::Namespace(namespace) => {
                origin.namespace.is_empty() || &origin.namespace == namespace
            }
        }
    }

    fn describe(&self) -> String {
        match self {
            Scope::AllNamespaces => "all namespaces".to_string(),
            Scope::Namespace(namespace) => format!("namespace: {namespace}"),
        }
    }
}

/// Every message about `loaded` within `scope` that no suppression hides,
/// sorted by resource, code and text, without duplicates.
pub fn analyze(loaded: &Loaded, scope: &Scope, suppressions: &[Suppression]) -> Vec<Message> {
    let mut model = Model::new(loaded.resources.iter().map(|checked| &checked.resource));
    model.credentials = loaded.credentials.as_ref();
    if let Some(mesh) = &loaded.mesh_config {
        model.path_normalization = mesh.path_normalization();
    }
    let mut messages = analyzers::run(&model);
    for checked in &loaded.resources {
        analyzers::schema::analyze(&checked.resource, &checked.violations, &mut messages);
    }
    let annotations: HashMap<Origin, &str> = loaded
        .resources
        .iter()
        .filter_map(|checked| {
            let value = checked
                .resource
                .meta()
                .annotations
                .get(SUPPRESS_ANNOTATION)?;
            Some((Origin::of(checked.resource.key()), value.as_str()))
        })
        .collect();
    messages.retain(|message| {
        scope.includes(&message.origin)
            && !suppressions.iter().any(|s| s.matches(message))
            && !annotations
                .get(&message.origin)
                .is_some_and(|value| annotation_suppresses(value, message.code()))
    });
    messages.sort_by(|a, b| (&a.origin, a.code(), &a.text).cmp(&(&b.origin, b.code(), &b.text)));
    messages.dedup_by(|a, b| a.origin == b.origin && a.code() == b.code() && a.text == b.text);
    messages
}

/// Runs `trellis analyze`; returns the process exit status.
pub fn run_analyze(args: &AnalyzeArgs) -> Result<i32, AnalyzeError> {
    let suppressions = args
        .suppress
        .iter()
        .map(|value| Suppression::parse(value))
        .collect::<Result<Vec<_>, _>>()?;
    let mut stderr = std::io::stderr().lock();
    for unknown in suppressions.iter().filter(|s| !s.is_known_code()) {
        let _ = writeln!(
            stderr,
            "Warning: Supplied message code '{}' is an unknown message code and will not have any effect.",
            unknown.code
        );
    }
    let paths: Vec<PathBuf> = args.files.iter().chain(&args.paths).cloned().collect();
    let mut loaded = load(&gather(&paths)?);
    loaded.credentials = LocalCredentials::find(&paths);
    if let Some(file) = &args.mesh_config {
        loaded.mesh_config = Some(trellis_api::MeshConfig::from_file(file)?.config);
    }
    for warning in &loaded.warnings {
        let _ = writeln!(stderr, "warning: {warning}");
    }
    for error in &loaded.errors {
        let _ = writeln!(stderr, "error: {error}");
    }
    let scope = if args.all_namespaces {
        Scope::AllNamespaces
    } else {
        Scope::Namespace(args.namespace.clone())
    };
    let messages = analyze(&loaded, &scope, &suppressions);
    let shown: Vec<Message> = messages
        .iter()
        .filter(|m| m.level() >= args.output_threshold)
        .cloned()
        .collect();
    let rendered = render(&shown, args.output);
    let mut stdout = std::io::stdout().lock();
    if !rendered.is_empty() {
        let _ = writeln!(stdout, "{rendered}");
    }
    let _ = stdout.flush();
    let unparsed_files = {
        let mut files: Vec<_> = loaded.errors.iter().map(|e| &e.file).collect();
        files.sort();
        files.dedup();
        files.len()
    };
    if shown.is_empty() {
        let _ = if unparsed_files == 0 {
            let names: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
            writeln!(
                stderr,
                "\u{2714} No validation issues found when analyzing {}.",
                names.join("\n")
            )
        } else {
            let noun = if unparsed_files == 1 { "file" } else { "files" };
            writeln!(
                stderr,
                "No validation issues found when analyzing {} (but {unparsed_files} {noun} could not be parsed).",
                scope.describe()
            )
        };
    }
    if messages.iter().any(|m| m.level() >= args.failure_threshold) {
        let _ = writeln!(
            stderr,
            "Error: Analyzers found issues when analyzing {}.\nSee {ANALYSIS_REFERENCE} for more information about causes and resolutions.",
            scope.describe()
        );
        return Ok(EXIT_ANALYZER_FOUND_ISSUES);
    }
    Ok(if unparsed_files > 0 {
        EXIT_DATA_ERROR
    } else {
        0
    })
}
