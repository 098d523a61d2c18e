use envoy_types::pb::envoy::config::core::v3::DataSource;
use envoy_types::pb::google::protobuf::{ListValue, Value, value::Kind};
use envoy_types::util::pack_any;

use super::*;

fn access_log(format: Option<AccessLogFormat>) -> AccessLog {
    let config = FileAccessLog {
        path: "/dev/null".into(),
        access_log_format: format,
    };
    AccessLog {
        name: "envoy.access_loggers.file".into(),
        filter: None,
        config_type: Some(access_log::ConfigType::TypedConfig(pack_any(config))),
    }
}

fn log_format(format: Format, omit_empty_values: bool) -> Option<AccessLogFormat> {
    Some(AccessLogFormat::LogFormat(SubstitutionFormatString {
        format: Some(format),
        omit_empty_values,
        ..Default::default()
    }))
}

fn fields(value: Kind) -> Struct {
    Struct {
        fields: [("field".to_string(), Value { kind: Some(value) })].into(),
    }
}

fn code_field() -> Struct {
    fields(Kind::StringValue("%RESPONSE_CODE%".into()))
}

#[test]
fn compiles_json_formats_old_and_new() {
    for format in [
        log_format(Format::JsonFormat(code_field()), false),
        log_format(Format::JsonFormat(code_field()), true),
        #[allow(deprecated)]
        Some(AccessLogFormat::JsonFormat(code_field())),
    ] {
        let spec = AccessLogSpec::compile(&access_log(format)).unwrap();
        assert_eq!(spec.path, "/dev/null");
    }
}

#[test]
#[allow(deprecated)] // typed_json_format: what a newer control plane may send
fn nacks_formats_it_cannot_write() {
    let list = fields(Kind::ListValue(ListValue::default()));
    let typed = Some(AccessLogFormat::TypedJsonFormat(code_field()));
    let omit_empty_text = log_format(Format::TextFormatSource(inline("%RESPONSE_CODE%\n")), true);
    let cases = [
        (
            log_format(Format::JsonFormat(list), false),
            "access log json_format value type",
        ),
        (typed, "access log format other than text or json"),
        (
            omit_empty_text,
            "omit_empty_values with a text access log format",
        ),
    ];
    for (format, reason) in cases {
        let error = AccessLogSpec::compile(&access_log(format)).unwrap_err();
        assert_eq!(error.0, reason);
    }
}

/// Inline text, as the control plane sends it.
fn inline(text: &str) -> DataSource {
    DataSource {
        specifier: Some(data_source::Specifier::InlineString(text.into())),
        ..Default::default()
    }
}

#[test]
fn text_and_json_formats_compile_to_their_layouts() {
    let text = log_format(Format::TextFormatSource(inline("%RESPONSE_CODE%\n")), false);
    let spec = AccessLogSpec::compile(&access_log(text)).unwrap();
    assert_eq!(*spec.format, LogFormat::parse("%RESPONSE_CODE%\n").unwrap());
    let json = log_format(Format::JsonFormat(code_field()), true);
    let spec = AccessLogSpec::compile(&access_log(json)).unwrap();
    let expected = LogFormat::parse_json(&code_field())
        .unwrap()
        .omit_empty_values(true);
    assert_eq!(*spec.format, expected);
}
