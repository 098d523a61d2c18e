//! `trellis validate`: the checks Istio's admission webhook makes, on files,
//! like `istioctl validate`.

use std::io::Write;
use std::path::PathBuf;

use trellis_api::{ConfigError, MeshConfig, MeshConfigError};

use crate::input::{InputError, gather, load};

/// Check manifests as Istio's admission webhook would, without a cluster.
///
/// Every problem is printed to standard error as
/// `error: FILE:LINE:COL: FIELD: message`; kinds Trellis does not read are
/// warnings. Exits 1 when there is any error, 0 otherwise.
#[derive(Debug, Clone, clap::Args)]
pub struct ValidateArgs {
    /// A manifest file, a directory of them (.yaml, .yml, .json), or - for
    /// standard input. Repeatable.
    #[arg(
        short = 'f',
        long = "filename",
        value_name = "FILE|DIR|-",
        required_unless_present = "mesh_config"
    )]
    pub files: Vec<PathBuf>,
    /// A mesh config file (Istio's MeshConfig, as istiod reads it) to
    /// validate as well.
    #[arg(
        long = "mesh-config",
        visible_alias = "meshConfigFile",
        value_name = "FILE"
    )]
    pub mesh_config: Option<PathBuf>,
}

/// Runs `trellis validate`; returns the process exit status.
pub fn run_validate(args: &ValidateArgs) -> Result<i32, InputError> {
    let mut failed = false;
    let mut stderr = std::io::stderr().lock();
    // Each file stands alone, as when applied: alternative manifests may
    // define the same resource.
    // A mesh config alone is something to validate; no manifests then.
    let sources = if args.files.is_empty() {
        Vec::new()
    } else {
        gather(&args.files)?
    };
    for source in sources {
        let loaded = load(std::slice::from_ref(&source));
        let mut errors: Vec<&ConfigError> =
            loaded.errors.iter().chain(loaded.violations()).collect();
        errors.sort_by_key(|error| error.position());
        for warning in &loaded.warnings {
            let _ = writeln!(stderr, "warning: {warning}");
        }
        for error in &errors {
            let _ = writeln!(stderr, "error: {error}");
        }
        failed |= !errors.is_empty();
    }
    if let Some(path) = &args.mesh_config {
        failed |= !validate_mesh_config(path, &mut stderr);
    }
    if failed {
        return Ok(1);
    }
    let mut stdout = std::io::stdout().lock();
    for file in args.files.iter().chain(&args.mesh_config) {
        let _ = if file.as_os_str() == "-" {
            writeln!(stdout, "validation succeed")
        } else {
            writeln!(stdout, "{:?} is valid", file.display().to_string())
        };
    }
    let _ = stdout.flush();
    Ok(0)
}

/// Prints the mesh config's problems; true when it is valid.
fn validate_mesh_config(path: &std::path::Path, stderr: &mut impl Write) -> bool {
    let (errors, warnings) = match MeshConfig::from_file(path) {
        Ok(outcome) => (Vec::new(), outcome.warnings),
        Err(MeshConfigError::Invalid { errors, warnings }) => (errors, warnings),
        Err(other) => {
            let _ = writeln!(stderr, "error: {other}");
            return false;
        }
    };
    for warning in &warnings {
        let _ = writeln!(stderr, "warning: {warning}");
    }
    for error in &errors {
        let _ = writeln!(stderr, "error: {error}");
    }
    errors.is_empty()
}
