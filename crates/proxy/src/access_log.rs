//! Envoy's file access log (`envoy.access_loggers.file`) with a text or
//! JSON format: compiled from the connection manager's config, one line per
//! request written once its response is complete.

mod format;
mod sink;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use envoy_types::pb::envoy::config::accesslog::v3::access_log_filter::FilterSpecifier;
use envoy_types::pb::envoy::config::accesslog::v3::{
    AccessLog, AccessLogFilter, access_log, extension_filter,
};
use envoy_types::pb::envoy::config::core::v3::{
    SubstitutionFormatString, data_source, substitution_format_string::Format,
};
use envoy_types::pb::envoy::extensions::access_loggers::file::v3::{
    FileAccessLog, file_access_log::AccessLogFormat,
};
use envoy_types::pb::envoy::extensions::access_loggers::filters::cel::v3::ExpressionFilter;
use envoy_types::pb::google::protobuf::Struct;
use prometheus_client::metrics::counter::Counter;
use prost::{Message, Name};

pub use format::{FormatError, LogEntry, LogFormat, RequestHead};
use sink::LogSink;

use crate::attributes::CelExpression;
use crate::unsupported::{Unsupported, reject_if};

/// Envoy's default format, used when the config names none.
const ENVOY_DEFAULT_FORMAT: &str = concat!(
    "[%START_TIME%] \"%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%\" ",
    "%RESPONSE_CODE% %RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT% %DURATION% ",
    "%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% \"%REQ(X-FORWARDED-FOR)%\" \"%REQ(USER-AGENT)%\" ",
    "\"%REQ(X-REQUEST-ID)%\" \"%REQ(:AUTHORITY)%\" \"%UPSTREAM_HOST%\"\n",
);

/// One configured file access log.
#[derive(Debug)]
pub struct AccessLogSpec {
    pub path: String,
    pub format: Arc<LogFormat>,
    /// Envoy's CEL filter: only requests it accepts are logged.
    pub filter: Option<Arc<CelExpression>>,
}

impl AccessLogSpec {
    pub fn compile(log: &AccessLog) -> Result<AccessLogSpec, Unsupported> {
        let filter = match &log.filter {
            None => None,
            Some(filter) => Some(Arc::new(cel_filter(filter)?)),
        };
        let Some(access_log::ConfigType::TypedConfig(any)) = &log.config_type else {
            return Err(Unsupported("access_log without typed_config"));
        };
        reject_if(
            any.type_url != FileAccessLog::type_url(),
            "access logger other than envoy.access_loggers.file",
        )?;
        let config = FileAccessLog::decode(any.value.as_slice())
            .map_err(|_| Unsupported("undecodable FileAccessLog"))?;
        reject_if(config.path.is_empty(), "FileAccessLog without path")?;
        let format = compile_format(&config)?;
        Ok(AccessLogSpec {
            path: config.path,
            format: Arc::new(format),
            filter,
        })
    }
}

/// The one access log filter implemented: Envoy's CEL extension filter.
fn cel_filter(filter: &AccessLogFilter) -> Result<CelExpression, Unsupported> {
    let Some(FilterSpecifier::ExtensionFilter(extension)) = &filter.filter_specifier else {
        return Err(Unsupported(
            "access log filter other than the CEL extension",
        ));
    };
    let Some(extension_filter::ConfigType::TypedConfig(any)) = &extension.config_type else {
        return Err(Unsupported(
            "access log extension filter without typed_config",
        ));
    };
    reject_if(
        any.type_url != ExpressionFilter::type_url(),
        "access log extension filter other than CEL",
    )?;
    let config = ExpressionFilter::decode(any.value.as_slice())
        .map_err(|_| Unsupported("undecodable CEL ExpressionFilter"))?;
    CelExpression::compile(&config.expression)
}

/// The format a file logger uses: a text format string or a JSON
/// dictionary (`json_format`); typed JSON and formatter extensions are not
/// implemented.
#[allow(deprecated)] // `format` and `json_format` are deprecated but still sent
fn compile_format(config: &FileAccessLog) -> Result<LogFormat, Unsupported> {
    match &config.access_log_format {
        None => text(ENVOY_DEFAULT_FORMAT),
        Some(AccessLogFormat::Format(format)) if format.is_empty() => text(ENVOY_DEFAULT_FORMAT),
        Some(AccessLogFormat::Format(format)) => text(format),
        Some(AccessLogFormat::JsonFormat(fields)) => json(fields),
        Some(AccessLogFormat::LogFormat(substitution)) => substitution_format(substitution),
        Some(_) => Err(Unsupported("access log format other than text or json")),
    }
}

#[allow(deprecated)] // `text_format` is deprecated but still sent
fn substitution_format(substitution: &SubstitutionFormatString) -> Result<LogFormat, Unsupported> {
    reject_if(
        !substitution.formatters.is_empty(),
        "access log format formatters",
    )?;
    match &substitution.format {
        Some(Format::TextFormat(format)) => text_without_empty(format, substitution),
        Some(Format::TextFormatSource(source)) => match &source.specifier {
            Some(data_source::Specifier::InlineString(format)) => {
                text_without_empty(format, substitution)
            }
            _ => Err(Unsupported(
                "access log format source other than inline_string",
            )),
        },
        Some(Format::JsonFormat(fields)) => {
            Ok(json(fields)?.omit_empty_values(substitution.omit_empty_values))
        }
        _ => Err(Unsupported("access log format other than text or json")),
    }
}

/// Text lines always print `-` for a missing value.
fn text_without_empty(
    format: &str,
    substitution: &SubstitutionFormatString,
) -> Result<LogFormat, Unsupported> {
    reject_if(
        substitution.omit_empty_values,
        "omit_empty_values with a text access log format",
    )?;
    text(format)
}

fn text(format: &str) -> Result<LogFormat, Unsupported> {
    LogFormat::parse(format).map_err(|_| Unsupported("access log format operator"))
}

fn json(fields: &Struct) -> Result<LogFormat, Unsupported> {
    LogFormat::parse_json(fields).map_err(|error| match error {
        FormatError::JsonValue(_) => Unsupported("access log json_format value type"),
        _ => Unsupported("access log format operator"),
    })
}

/// A logger ready for requests: its format and the open file.
#[derive(Clone, Debug)]
pub struct AccessLogger {
    pub format: Arc<LogFormat>,
    /// Lines only for requests this accepts.
    pub filter: Option<Arc<CelExpression>>,
    sink: Arc<LogSink>,
}

impl AccessLogger {
    pub fn write(&self, entry: &LogEntry<'_>) {
        self.sink.write(|line| self.format.render(entry, line));
    }
}

/// The proxy's open access log files, one writer per path however many
/// listeners log there.
#[derive(Debug)]
pub struct AccessLogs {
    sinks: Mutex<HashMap<String, Arc<LogSink>>>,
    dropped: Counter,
}

impl AccessLogs {
    /// `dropped` counts lines lost because a writer fell behind.
    pub fn new(dropped: Counter) -> Self {
        AccessLogs {
            sinks: Mutex::default(),
            dropped,
        }
    }

    /// Writes out every queued line; the proxy is exiting.
    pub fn finish(&self) {
        let sinks = self.sinks.lock().unwrap_or_else(|e| e.into_inner());
        for sink in sinks.values() {
            sink.finish();
        }
    }

    /// Loggers for `specs`; a file that cannot be opened is skipped (and
    /// said so), since a request must not fail for its log.
    pub fn loggers(&self, specs: &[AccessLogSpec]) -> Arc<[AccessLogger]> {
        let mut sinks = self.sinks.lock().unwrap_or_else(|e| e.into_inner());
        specs
            .iter()
            .filter_map(|spec| {
                let sink = match sinks.get(&spec.path) {
                    Some(sink) => sink.clone(),
                    None => match LogSink::open(&spec.path, self.dropped.clone()) {
                        Ok(sink) => {
                            let sink = Arc::new(sink);
                            sinks.insert(spec.path.clone(), sink.clone());
                            sink
                        }
                        Err(error) => {
                            tracing::warn!(path = %spec.path, %error, "cannot open access log");
                            return None;
                        }
                    },
                };
                Some(AccessLogger {
                    format: spec.format.clone(),
                    filter: spec.filter.clone(),
                    sink,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests;
