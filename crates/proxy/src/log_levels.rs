//! Envoy's `/logging`: log levels per component, changed while the proxy
//! runs. The process's log subscriber is owned by the binary; it hands the
//! proxy a function that installs a new filter (directives in
//! `tracing_subscriber::EnvFilter` syntax), so this crate needs no
//! subscriber of its own.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Mutex, OnceLock};

/// Installs a filter built from directives such as `warn,trellis_proxy::rbac=debug`.
pub type ApplyDirectives = Box<dyn Fn(&str) -> Result<(), String> + Send + Sync>;

/// Envoy's logger names users already type, and the modules behind each.
/// Everything not listed (other crates included) follows `misc`.
const COMPONENTS: &[(&str, &[&str])] = &[
    ("admin", &["trellis_proxy::admin"]),
    ("config", &["trellis_proxy::state", "trellis_xds::client"]),
    (
        "connection",
        &[
            "trellis_proxy::connection",
            "trellis_proxy::listener",
            "trellis_proxy::listeners",
            "trellis_proxy::inspect",
        ],
    ),
    ("dns", &["trellis_proxy::dns"]),
    ("filter", &["trellis_proxy::fault", "trellis_proxy::cors"]),
    (
        "http",
        &["trellis_proxy::forward", "trellis_proxy::attempt"],
    ),
    ("jwt", &["trellis_proxy::jwt"]),
    ("pool", &["trellis_proxy::connector"]),
    ("rbac", &["trellis_proxy::rbac"]),
    (
        "router",
        &[
            "trellis_proxy::route",
            "trellis_proxy::retry",
            "trellis_proxy::mirror",
        ],
    ),
    ("tcp", &["trellis_proxy::tcp_proxy"]),
    (
        "tls",
        &[
            "trellis_proxy::identity",
            "trellis_proxy::tls_context",
            "trellis_proxy::tls_origination",
            "trellis_proxy::gateway_tls",
            "trellis_ca",
        ],
    ),
    (
        "upstream",
        &[
            "trellis_proxy::cluster",
            "trellis_proxy::load_balancer",
            "trellis_proxy::outlier",
        ],
    ),
];

const MISC: &str = "misc";

/// Envoy's level names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Trace,
    Debug,
    Info,
    Warning,
    Error,
    Critical,
    Off,
}

impl Level {
    /// Envoy's names, plus tracing's `warn` (what `TRELLIS_LOG` holds).
    pub fn parse(name: &str) -> Option<Level> {
        Some(match name.trim().to_ascii_lowercase().as_str() {
            "trace" => Level::Trace,
            "debug" => Level::Debug,
            "info" => Level::Info,
            "warning" | "warn" => Level::Warning,
            "error" => Level::Error,
            "critical" => Level::Critical,
            "off" => Level::Off,
            _ => return None,
        })
    }

    fn directive(self) -> &'static str {
        match self {
            Level::Trace => "trace",
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warning => "warn",
            // tracing has no level above error.
            Level::Error | Level::Critical => "error",
            Level::Off => "off",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Level::Trace => "trace",
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warning => "warning",
            Level::Error => "error",
            Level::Critical => "critical",
            Level::Off => "off",
        })
    }
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum LoggingError {
    #[error("unknown logger name: {0}")]
    UnknownLogger(String),
    #[error("unknown logger level: {0}")]
    UnknownLevel(String),
    #[error("log levels cannot be changed in this process")]
    NotInstalled,
    #[error("cannot install the log filter: {0}")]
    Apply(String),
}

/// The levels in force, by component.
pub struct LogLevels {
    levels: Mutex<BTreeMap<&'static str, Level>>,
    apply: ApplyDirectives,
}

static INSTALLED: OnceLock<LogLevels> = OnceLock::new();

/// Called once by the binary after it set up logging at `initial`.
pub fn install(initial: Level, apply: ApplyDirectives) {
    let _ = INSTALLED.set(LogLevels::new(initial, apply));
}

/// The process's levels, if the binary installed them.
pub fn installed() -> Option<&'static LogLevels> {
    INSTALLED.get()
}

impl LogLevels {
    pub fn new(initial: Level, apply: ApplyDirectives) -> LogLevels {
        let levels = COMPONENTS
            .iter()
            .map(|(name, _)| *name)
            .chain([MISC])
            .map(|name| (name, initial))
            .collect();
        LogLevels {
            levels: Mutex::new(levels),
            apply,
        }
    }

    /// Envoy's listing: `active loggers:` then `  NAME: LEVEL` lines.
    pub fn render(&self) -> String {
        let levels = self.levels.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = String::from("active loggers:\n");
        for (name, level) in levels.iter() {
            out.push_str(&format!("  {name}: {level}\n"));
        }
        out
    }

    /// Sets every component's level (Envoy's `?level=`).
    pub fn set_all(&self, level: &str) -> Result<(), LoggingError> {
        let level = Level::parse(level).ok_or_else(|| LoggingError::UnknownLevel(level.into()))?;
        self.update(|levels| levels.values_mut().for_each(|l| *l = level))
    }

    /// Sets some components' levels: `NAME:LEVEL` pairs separated by commas
    /// (Envoy's `?paths=`), or one pair from `?NAME=LEVEL`. Nothing changes
    /// unless every pair is valid.
    pub fn set_some(&self, pairs: &[(String, String)]) -> Result<(), LoggingError> {
        let mut parsed = Vec::with_capacity(pairs.len());
        for (name, level) in pairs {
            let component = COMPONENTS
                .iter()
                .map(|(n, _)| *n)
                .chain([MISC])
                .find(|n| n == name)
                .ok_or_else(|| LoggingError::UnknownLogger(name.clone()))?;
            let level =
                Level::parse(level).ok_or_else(|| LoggingError::UnknownLevel(level.clone()))?;
            parsed.push((component, level));
        }
        self.update(|levels| {
            for (component, level) in parsed {
                levels.insert(component, level);
            }
        })
    }

    fn update(
        &self,
        change: impl FnOnce(&mut BTreeMap<&'static str, Level>),
    ) -> Result<(), LoggingError> {
        let mut levels = self.levels.lock().unwrap_or_else(|e| e.into_inner());
        let mut next = levels.clone();
        change(&mut next);
        (self.apply)(&directives(&next)).map_err(LoggingError::Apply)?;
        *levels = next;
        Ok(())
    }
}

/// Splits Envoy's `paths` value, `a:debug,b:trace`, into pairs.
pub fn parse_paths(paths: &str) -> Result<Vec<(String, String)>, LoggingError> {
    paths
        .split(',')
        .filter(|p| !p.trim().is_empty())
        .map(|pair| {
            let (name, level) = pair
                .split_once(':')
                .ok_or_else(|| LoggingError::UnknownLevel(pair.trim().into()))?;
            Ok((name.trim().to_string(), level.trim().to_string()))
        })
        .collect()
}

/// The filter for `levels`: `misc`'s level as the default, then each
/// component's modules.
fn directives(levels: &BTreeMap<&'static str, Level>) -> String {
    let misc = levels.get(MISC).copied().unwrap_or(Level::Warning);
    let mut out = misc.directive().to_string();
    for (name, targets) in COMPONENTS {
        let level = levels.get(name).copied().unwrap_or(misc);
        for target in *targets {
            out.push_str(&format!(",{target}={}", level.directive()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn recording() -> (LogLevels, Arc<Mutex<Vec<String>>>) {
        let applied = Arc::new(Mutex::new(Vec::new()));
        let sink = applied.clone();
        let levels = LogLevels::new(
            Level::Warning,
            Box::new(move |d| {
                sink.lock().unwrap().push(d.to_string());
                Ok(())
            }),
        );
        (levels, applied)
    }

    #[test]
    fn lists_every_component_in_envoys_words() {
        let (levels, _) = recording();
        let text = levels.render();
        assert!(text.starts_with("active loggers:\n"), "{text}");
        assert!(text.contains("  rbac: warning\n"), "{text}");
        assert!(text.contains("  misc: warning\n"), "{text}");
    }

    #[test]
    fn one_component_changes_only_its_modules() {
        let (levels, applied) = recording();
        levels
            .set_some(&parse_paths("rbac:debug, router:trace").unwrap())
            .unwrap();
        let directives = applied.lock().unwrap().last().cloned().unwrap();
        assert!(directives.starts_with("warn,"), "{directives}");
        assert!(directives.contains("trellis_proxy::rbac=debug"));
        assert!(directives.contains("trellis_proxy::route=trace"));
        assert!(directives.contains("trellis_proxy::admin=warn"));
        assert!(levels.render().contains("  rbac: debug\n"));
    }

    #[test]
    fn bad_names_and_levels_change_nothing() {
        let (levels, applied) = recording();
        let pairs = vec![
            ("rbac".to_string(), "debug".to_string()),
            ("nope".to_string(), "debug".to_string()),
        ];
        assert_eq!(
            levels.set_some(&pairs),
            Err(LoggingError::UnknownLogger("nope".into()))
        );
        assert_eq!(
            levels.set_all("loud"),
            Err(LoggingError::UnknownLevel("loud".into()))
        );
        assert!(applied.lock().unwrap().is_empty());
        assert!(levels.render().contains("  rbac: warning\n"));
    }

    #[test]
    fn a_filter_the_subscriber_refuses_keeps_the_old_levels() {
        let levels = LogLevels::new(Level::Info, Box::new(|_| Err("reload failed".into())));
        assert!(matches!(
            levels.set_all("debug"),
            Err(LoggingError::Apply(_))
        ));
        assert!(levels.render().contains("  admin: info\n"));
    }

    #[test]
    fn critical_maps_to_error_and_all_levels_parse() {
        let (levels, applied) = recording();
        levels.set_all("critical").unwrap();
        assert!(applied.lock().unwrap()[0].starts_with("error,"));
        for name in [
            "trace", "debug", "info", "warning", "error", "critical", "off",
        ] {
            assert_eq!(Level::parse(name).unwrap().to_string(), name);
        }
    }
}
