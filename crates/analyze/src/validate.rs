//! `trellis validate`: the checks Istio's admission webhook makes, on files,
//! like `istioctl validate`.

use std::io::Write;
use std::path::PathBuf;

use trellis_api::ConfigError;

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
        required = true
    )]
    pub files: Vec<PathBuf>,
}

/// Runs `trellis validate`; returns the process exit status.
pub fn run_validate(args: &ValidateArgs) -> Result<i32, InputError> {
    let mut failed = false;
    let mut stderr = std::io::stderr().lock();
    // Each file stands alone, as when applied: alternative manifests may
    // define the same resource.
    for source in gather(&args.files)? {
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
    if failed {
        return Ok(1);
    }
    let mut stdout = std::io::stdout().lock();
    for file in &args.files {
        let _ = if file.as_os_str() == "-" {
            writeln!(stdout, "validation succeed")
        } else {
            writeln!(stdout, "{:?} is valid", file.display().to_string())
        };
    }
    let _ = stdout.flush();
    Ok(0)
}
