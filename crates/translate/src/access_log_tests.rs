use envoy_types::pb::envoy::config::accesslog::v3::access_log::ConfigType;
use prost::Message;

use super::*;

/// The single file logger's path and format.
fn file_log(logs: &[AccessLog]) -> (String, substitution_format_string::Format) {
    assert_eq!(logs.len(), 1);
    let Some(ConfigType::TypedConfig(any)) = &logs[0].config_type else {
        panic!("no typed config: {logs:?}");
    };
    let config = FileAccessLog::decode(any.value.as_slice()).unwrap();
    let Some(file_access_log::AccessLogFormat::LogFormat(format)) = config.access_log_format else {
        panic!("no log_format: {config:?}");
    };
    (config.path, format.format.unwrap())
}

fn string_field<'a>(fields: &'a Struct, key: &str) -> Option<&'a str> {
    match fields.fields.get(key)?.kind.as_ref()? {
        Kind::StringValue(text) => Some(text),
        _ => None,
    }
}

#[test]
fn no_file_no_logger() {
    assert!(access_logs(None, None, AccessLogEncoding::Json).is_empty());
}

#[test]
fn text_encoding_uses_istio_text_format() {
    let logs = access_logs(
        Some("/dev/stdout"),
        Some("%RESPONSE_CODE%"),
        AccessLogEncoding::Text,
    );
    let (path, format) = file_log(&logs);
    assert_eq!(path, "/dev/stdout");
    let substitution_format_string::Format::TextFormatSource(source) = format else {
        panic!("not text: {format:?}");
    };
    assert_eq!(
        source.specifier,
        Some(data_source::Specifier::InlineString(
            "%RESPONSE_CODE%\n".into()
        ))
    );
}

#[test]
fn json_encoding_uses_istio_json_fields() {
    let logs = access_logs(Some("/dev/stdout"), None, AccessLogEncoding::Json);
    let (_, format) = file_log(&logs);
    let substitution_format_string::Format::JsonFormat(fields) = format else {
        panic!("not json: {format:?}");
    };
    assert_eq!(fields.fields.len(), ISTIO_JSON_FIELDS.len());
    assert_eq!(
        string_field(&fields, "response_code"),
        Some("%RESPONSE_CODE%")
    );
    assert_eq!(
        string_field(&fields, "path"),
        Some("%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%")
    );
    assert_eq!(
        string_field(&fields, "downstream_peer_uri_san"),
        Some("%DOWNSTREAM_PEER_URI_SAN%")
    );
    // Every command of the TEXT format is in the JSON one.
    for (_, command) in ISTIO_JSON_FIELDS {
        assert!(ISTIO_TEXT_FORMAT.contains(command), "{command}");
    }
}

#[test]
fn custom_json_format_becomes_the_dictionary() {
    let custom = r#"{"code": "%RESPONSE_CODE%", "mesh": {"sampled": true, "v": 2}}"#;
    let logs = access_logs(Some("/tmp/x.log"), Some(custom), AccessLogEncoding::Json);
    let (_, format) = file_log(&logs);
    let substitution_format_string::Format::JsonFormat(fields) = format else {
        panic!("not json: {format:?}");
    };
    assert_eq!(fields, json_format_fields(custom).unwrap());
    assert_eq!(string_field(&fields, "code"), Some("%RESPONSE_CODE%"));
    let Some(Kind::StructValue(mesh)) = &fields.fields["mesh"].kind else {
        panic!("mesh is not an object: {fields:?}");
    };
    assert_eq!(mesh.fields["sampled"].kind, Some(Kind::BoolValue(true)));
    assert_eq!(mesh.fields["v"].kind, Some(Kind::NumberValue(2.0)));
}

#[test]
fn custom_json_format_must_be_an_object_of_supported_values() {
    assert!(matches!(
        json_format_fields("[%START_TIME%] %RESPONSE_CODE%"),
        Err(JsonFormatError::NotAnObject(_))
    ));
    assert!(matches!(
        json_format_fields(r#""%RESPONSE_CODE%""#),
        Err(JsonFormatError::NotAnObject(_))
    ));
    assert_eq!(
        json_format_fields(r#"{"a": {"b": [1]}}"#),
        Err(JsonFormatError::Value("a.b".into()))
    );
    assert_eq!(
        json_format_fields(r#"{"a": null}"#),
        Err(JsonFormatError::Value("a".into()))
    );
}
