//! Envoy's file access log on every HTTP connection manager, as Istio
//! configures it when `meshConfig.accessLogFile` is set: a text format
//! string (TEXT encoding) or a `json_format` dictionary (JSON encoding).

use std::collections::HashMap;

use envoy_types::pb::envoy::config::accesslog::v3::{AccessLog, access_log};
use envoy_types::pb::envoy::config::core::v3::{
    DataSource, SubstitutionFormatString, data_source, substitution_format_string,
};
use envoy_types::pb::envoy::extensions::access_loggers::file::v3::{
    FileAccessLog, file_access_log,
};
use envoy_types::pb::google::protobuf::{Struct, Value, value::Kind};
use envoy_types::util::pack_any;

/// Istio's `accessLogEncoding`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AccessLogEncoding {
    #[default]
    Text,
    Json,
}

/// A custom JSON `accessLogFormat` that is not a JSON object of format
/// strings (or nested objects, numbers, booleans).
#[derive(Debug, PartialEq, Eq)]
pub enum JsonFormatError {
    NotAnObject(String),
    Value(String),
}

impl std::fmt::Display for JsonFormatError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JsonFormatError::NotAnObject(reason) => write!(f, "not a JSON object: {reason}"),
            JsonFormatError::Value(field) => write!(
                f,
                "field {field}: only strings, numbers, booleans and objects are supported"
            ),
        }
    }
}

impl std::error::Error for JsonFormatError {}

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

/// Istio's default JSON format: the fields of its TEXT format, plus the
/// peers' identities Trellis adds to that.
pub const ISTIO_JSON_FIELDS: [(&str, &str); 26] = [
    ("start_time", "%START_TIME%"),
    ("route_name", "%ROUTE_NAME%"),
    ("method", "%REQ(:METHOD)%"),
    ("path", "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%"),
    ("protocol", "%PROTOCOL%"),
    ("response_code", "%RESPONSE_CODE%"),
    ("response_flags", "%RESPONSE_FLAGS%"),
    ("response_code_details", "%RESPONSE_CODE_DETAILS%"),
    (
        "connection_termination_details",
        "%CONNECTION_TERMINATION_DETAILS%",
    ),
    (
        "upstream_transport_failure_reason",
        "%UPSTREAM_TRANSPORT_FAILURE_REASON%",
    ),
    ("bytes_received", "%BYTES_RECEIVED%"),
    ("bytes_sent", "%BYTES_SENT%"),
    ("duration", "%DURATION%"),
    (
        "upstream_service_time",
        "%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)%",
    ),
    ("x_forwarded_for", "%REQ(X-FORWARDED-FOR)%"),
    ("user_agent", "%REQ(USER-AGENT)%"),
    ("request_id", "%REQ(X-REQUEST-ID)%"),
    ("authority", "%REQ(:AUTHORITY)%"),
    ("upstream_host", "%UPSTREAM_HOST%"),
    ("upstream_cluster", "%UPSTREAM_CLUSTER_RAW%"),
    ("upstream_local_address", "%UPSTREAM_LOCAL_ADDRESS%"),
    ("downstream_local_address", "%DOWNSTREAM_LOCAL_ADDRESS%"),
    ("downstream_remote_address", "%DOWNSTREAM_REMOTE_ADDRESS%"),
    ("requested_server_name", "%REQUESTED_SERVER_NAME%"),
    ("downstream_peer_uri_san", "%DOWNSTREAM_PEER_URI_SAN%"),
    ("upstream_peer_uri_san", "%UPSTREAM_PEER_URI_SAN%"),
];

/// The access logs every HTTP connection manager gets: one file logger
/// when `file` is set, none when it is not. A custom TEXT `format` ends
/// with a newline, as Istio makes sure; a custom JSON one is an object of
/// fields (checked with [`json_format_fields`] before it gets here; should
/// it not parse, Istio's default JSON fields are used, as Istio does).
pub fn access_logs(
    file: Option<&str>,
    format: Option<&str>,
    encoding: AccessLogEncoding,
) -> Vec<AccessLog> {
    let Some(path) = file else {
        return Vec::new();
    };
    let format = match encoding {
        AccessLogEncoding::Text => text_format(format),
        AccessLogEncoding::Json => substitution_format_string::Format::JsonFormat(
            format
                .and_then(|custom| json_format_fields(custom).ok())
                .unwrap_or_else(istio_json_fields),
        ),
    };
    let config = FileAccessLog {
        path: path.into(),
        access_log_format: Some(file_access_log::AccessLogFormat::LogFormat(
            SubstitutionFormatString {
                format: Some(format),
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

fn text_format(format: Option<&str>) -> substitution_format_string::Format {
    let format = match format {
        Some(custom) if custom.ends_with('\n') => custom.to_string(),
        Some(custom) => format!("{custom}\n"),
        None => ISTIO_TEXT_FORMAT.to_string(),
    };
    substitution_format_string::Format::TextFormatSource(DataSource {
        specifier: Some(data_source::Specifier::InlineString(format)),
        ..Default::default()
    })
}

fn istio_json_fields() -> Struct {
    Struct {
        fields: ISTIO_JSON_FIELDS
            .iter()
            .map(|(key, command)| (key.to_string(), string_value(command)))
            .collect(),
    }
}

fn string_value(text: &str) -> Value {
    Value {
        kind: Some(Kind::StringValue(text.into())),
    }
}

/// A custom JSON `accessLogFormat` (e.g. `{"code": "%RESPONSE_CODE%"}`) as
/// the `json_format` dictionary Envoy takes.
pub fn json_format_fields(text: &str) -> Result<Struct, JsonFormatError> {
    let parsed: serde_json::Value = serde_json::from_str(text)
        .map_err(|error| JsonFormatError::NotAnObject(error.to_string()))?;
    let serde_json::Value::Object(object) = parsed else {
        return Err(JsonFormatError::NotAnObject(
            "a JSON object of fields is expected".into(),
        ));
    };
    to_struct(&object, "")
}

fn to_struct(
    object: &serde_json::Map<String, serde_json::Value>,
    prefix: &str,
) -> Result<Struct, JsonFormatError> {
    let mut fields = HashMap::with_capacity(object.len());
    for (key, value) in object {
        let path = format!("{prefix}{key}");
        let kind = match value {
            serde_json::Value::String(text) => Kind::StringValue(text.clone()),
            serde_json::Value::Bool(flag) => Kind::BoolValue(*flag),
            serde_json::Value::Number(number) => {
                Kind::NumberValue(number.as_f64().ok_or(JsonFormatError::Value(path))?)
            }
            serde_json::Value::Object(nested) => {
                Kind::StructValue(to_struct(nested, &format!("{path}."))?)
            }
            serde_json::Value::Null | serde_json::Value::Array(_) => {
                return Err(JsonFormatError::Value(path));
            }
        };
        fields.insert(key.clone(), Value { kind: Some(kind) });
    }
    Ok(Struct { fields })
}

#[cfg(test)]
#[path = "access_log_tests.rs"]
mod tests;
