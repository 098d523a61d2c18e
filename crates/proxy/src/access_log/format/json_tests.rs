use envoy_types::pb::google::protobuf::{ListValue, Struct, Value, value::Kind};
use http::{HeaderMap, HeaderValue};
use serde_json::json;

use super::super::tests::render;
use super::super::{FormatError, LogFormat};

fn string(text: &str) -> Value {
    Value {
        kind: Some(Kind::StringValue(text.into())),
    }
}

fn object(fields: &[(&str, Value)]) -> Struct {
    Struct {
        fields: fields
            .iter()
            .map(|(key, value)| (key.to_string(), value.clone()))
            .collect(),
    }
}

fn templates(fields: &[(&str, &str)]) -> Struct {
    let fields: Vec<(&str, Value)> = fields.iter().map(|(k, v)| (*k, string(v))).collect();
    object(&fields)
}

fn render_json(format: &LogFormat, request: &HeaderMap) -> serde_json::Value {
    let line = render(format, request, &HeaderMap::new());
    assert!(line.ends_with('\n'), "{line:?}");
    assert_eq!(line.matches('\n').count(), 1, "one line: {line:?}");
    serde_json::from_str(&line).unwrap()
}

#[test]
fn lone_operators_keep_their_types_and_missing_values_are_null() {
    let format = LogFormat::parse_json(&templates(&[
        ("start_time", "%START_TIME%"),
        ("response_code", "%RESPONSE_CODE%"),
        ("bytes_received", "%BYTES_RECEIVED%"),
        ("bytes_sent", "%BYTES_SENT%"),
        ("duration", "%DURATION%"),
        ("upstream_cluster", "%UPSTREAM_CLUSTER_RAW%"),
        ("route_name", "%ROUTE_NAME%"),
        ("x_forwarded_for", "%REQ(X-FORWARDED-FOR)%"),
        ("upstream_local_address", "%UPSTREAM_LOCAL_ADDRESS%"),
    ]))
    .unwrap();
    assert_eq!(
        render_json(&format, &HeaderMap::new()),
        json!({
            "start_time": "2026-02-24T14:23:15.456Z",
            "response_code": 200,
            "bytes_received": 0,
            "bytes_sent": 178,
            "duration": 12,
            "upstream_cluster": "outbound|9080||reviews.default.svc.cluster.local",
            "route_name": null,
            "x_forwarded_for": null,
            "upstream_local_address": null,
        })
    );
}

#[test]
fn values_mixing_text_and_operators_are_strings_with_dashes() {
    let format = LogFormat::parse_json(&templates(&[
        ("line", "%REQ(:METHOD)% %ROUTE_NAME% -> %RESPONSE_CODE%"),
        ("constant", "mesh"),
    ]))
    .unwrap();
    assert_eq!(
        render_json(&format, &HeaderMap::new()),
        json!({"line": "GET - -> 200", "constant": "mesh"})
    );
}

#[test]
fn escapes_quotes_backslashes_and_tabs() {
    let format = LogFormat::parse_json(&templates(&[("user_agent", "%REQ(USER-AGENT)%")])).unwrap();
    let agent = "say \"hi\"\t\\ {\"x\":1}";
    let mut request = HeaderMap::new();
    request.insert("user-agent", HeaderValue::from_static(agent));
    let line = render(&format, &request, &HeaderMap::new());
    assert!(line.contains(r#"say \"hi\"\t\\ {\"x\":1}"#), "{line}");
    assert_eq!(render_json(&format, &request), json!({"user_agent": agent}));
}

#[test]
fn nested_objects_constants_and_max_length() {
    let format = LogFormat::parse_json(&object(&[
        (
            "upstream",
            Value {
                kind: Some(Kind::StructValue(templates(&[
                    ("host", "%UPSTREAM_HOST%"),
                    ("cluster", "%UPSTREAM_CLUSTER:8%"),
                ]))),
            },
        ),
        (
            "version",
            Value {
                kind: Some(Kind::NumberValue(2.0)),
            },
        ),
        (
            "mesh",
            Value {
                kind: Some(Kind::BoolValue(true)),
            },
        ),
    ]))
    .unwrap();
    assert_eq!(
        render_json(&format, &HeaderMap::new()),
        json!({
            "upstream": {"host": "127.0.0.2:9080", "cluster": "outbound"},
            "version": 2.0,
            "mesh": true,
        })
    );
}

#[test]
fn omit_empty_values_drops_null_fields() {
    let format = LogFormat::parse_json(&templates(&[
        ("route_name", "%ROUTE_NAME%"),
        ("response_code", "%RESPONSE_CODE%"),
    ]))
    .unwrap()
    .omit_empty_values(true);
    assert_eq!(
        render_json(&format, &HeaderMap::new()),
        json!({"response_code": 200})
    );
}

#[test]
fn captures_the_headers_json_fields_read() {
    let format = LogFormat::parse_json(&templates(&[
        ("authority", "%REQ(:AUTHORITY)%"),
        ("request_id", "%REQ(X-REQUEST-ID)%"),
    ]))
    .unwrap();
    assert_eq!(format.request_keys.len(), 2);
    let mut request = HeaderMap::new();
    request.insert("x-request-id", HeaderValue::from_static("abc"));
    assert_eq!(
        render_json(&format, &request),
        json!({"authority": "reviews:9080", "request_id": "abc"})
    );
}

#[test]
fn rejects_lists_nulls_and_bad_operators() {
    let list = Value {
        kind: Some(Kind::ListValue(ListValue { values: vec![] })),
    };
    assert_eq!(
        LogFormat::parse_json(&object(&[("tags", list)])),
        Err(FormatError::JsonValue("tags".into()))
    );
    let null = Value {
        kind: Some(Kind::NullValue(0)),
    };
    let nested = Value {
        kind: Some(Kind::StructValue(object(&[("gone", null)]))),
    };
    assert_eq!(
        LogFormat::parse_json(&object(&[("outer", nested)])),
        Err(FormatError::JsonValue("outer.gone".into()))
    );
    assert_eq!(
        LogFormat::parse_json(&templates(&[("start", "%START_TIME(%s)%")])),
        Err(FormatError::CustomStartTime)
    );
}
