//! The process's log output: stderr, filtered by `TRELLIS_LOG` (EnvFilter
//! directives, default `warn`), with a filter the proxy's `/logging` admin
//! endpoint can replace while the process runs.

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, fmt, reload};
use trellis_proxy::log_levels::{self, Level};

const LOG_ENV: &str = "TRELLIS_LOG";
const DEFAULT_LEVEL: &str = "warn";

pub fn init() {
    let configured = std::env::var(LOG_ENV).ok();
    let filter = configured
        .as_deref()
        .and_then(|directives| EnvFilter::try_new(directives).ok())
        .unwrap_or_else(|| EnvFilter::new(DEFAULT_LEVEL));
    let (filter, handle) = reload::Layer::new(filter);
    let output = fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    tracing_subscriber::registry()
        .with(filter)
        .with(output)
        .init();
    // `/logging` shows one level per component; directives richer than a
    // single level show as the default until a component is changed.
    let initial = configured
        .as_deref()
        .and_then(Level::parse)
        .unwrap_or(Level::Warning);
    log_levels::install(
        initial,
        Box::new(move |directives| {
            let filter = EnvFilter::try_new(directives).map_err(|e| e.to_string())?;
            handle.reload(filter).map_err(|e| e.to_string())
        }),
    );
}
