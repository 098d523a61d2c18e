//! Envoy's file access log on every HTTP connection manager, as Istio
//! configures it when `meshConfig.accessLogFile` is set (TEXT encoding).

use envoy_types::pb::envoy::config::accesslog::v3::{AccessLog, access_log};
use envoy_types::pb::envoy::config::core::v3::{
    DataSource, SubstitutionFormatString, data_source, substitution_format_string,
};
use envoy_types::pb::envoy::extensions::access_loggers::file::v3::{
    FileAccessLog, file_access_log,
};
use envoy_types::util::pack_any;

/// Where sidecars write access logs unless told otherwise (Istio's usual
/// `accessLogFile: /dev/stdout`).
pub const DEFAULT_ACCESS_LOG_FILE: &str = "/dev/stdout";

/// Istio's default TEXT format, followed by Trellis' addition: the peers'
/// SPIFFE identities (downstream, then upstream), so that every line says
/// who called whom.
pub const ISTIO_TEXT_FORMAT: &str = concat!(
    "[%START_TIME%] \"%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%\" ",
    "%RESPONSE_CODE% %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS% %CONNECTION_TERMINATION_DETAILS% ",
    "\"%UPSTREAM_TRANSPORT_FAILURE_REASON%\" %BYTES_RECEIVED% %BYTES_SENT% %DURATION% ",
    "%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% \"%REQ(X-FORWARDED-FOR)%\" \"%REQ(USER-AGENT)%\" ",
    "\"%REQ(X-REQUEST-ID)%\" \"%REQ(:AUTHORITY)%\" \"%UPSTREAM_HOST%\" %UPSTREAM_CLUSTER_RAW% ",
    "%UPSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS% ",
    "%REQUESTED_SERVER_NAME% %ROUTE_NAME% ",
    "%DOWNSTREAM_PEER_URI_SAN% %UPSTREAM_PEER_URI_SAN%\n",
);

/// The access logs every HTTP connection manager gets: one file logger
/// when `file` is set, none when it is not. A custom `format` ends with a
/// newline, as Istio makes sure.
pub fn access_logs(file: Option<&str>, format: Option<&str>) -> Vec<AccessLog> {
    let Some(path) = file else {
        return Vec::new();
    };
    let format = match format {
        Some(custom) if custom.ends_with('\n') => custom.to_string(),
        Some(custom) => format!("{custom}\n"),
        None => ISTIO_TEXT_FORMAT.to_string(),
    };
    let config = FileAccessLog {
        path: path.into(),
        access_log_format: Some(file_access_log::AccessLogFormat::LogFormat(
            SubstitutionFormatString {
                format: Some(substitution_format_string::Format::TextFormatSource(
                    DataSource {
                        specifier: Some(data_source::Specifier::InlineString(format)),
                        ..Default::default()
                    },
                )),
                ..Default::default()
            },
        )),
    };
    vec![AccessLog {
        name: "envoy.access_loggers.file".into(),
        filter: None,
        config_type: Some(access_log::ConfigType::TypedConfig(pack_any(config))),
    }]
}
