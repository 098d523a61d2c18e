//! Envoy's `json_format`: a JSON object per line whose string values are
//! format strings. A value that is a single operator keeps its type, as
//! Envoy does: counts and the response code are JSON numbers and a missing
//! value is `null`; a value mixing text and operators is a string (with
//! `-` for what is missing). serde_json does the escaping.

use envoy_types::pb::google::protobuf::{Struct, Value, value::Kind};
use serde_json::{Map, Number};

use super::{FormatError, LogEntry, LogFormat, Operator, Segment, render_operator, truncate};

#[derive(Debug, PartialEq)]
enum JsonValue {
    Template(Vec<Segment>),
    /// A number or boolean written as configured.
    Constant(serde_json::Value),
    Object(Vec<(String, JsonValue)>),
}

// `Constant` never holds NaN (protobuf numbers that are not finite are
// refused), so equality is total.
impl Eq for JsonValue {}

/// The top-level object of a `json_format`.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct JsonObject {
    fields: Vec<(String, JsonValue)>,
    /// Envoy's `omit_empty_values`: leave out fields without a value.
    pub(super) omit_empty: bool,
}

impl JsonObject {
    /// Compiles `config`, registering the headers its operators read with
    /// `format`.
    pub(super) fn parse(format: &mut LogFormat, config: &Struct) -> Result<Self, FormatError> {
        Ok(JsonObject {
            fields: parse_fields(format, config, "")?,
            omit_empty: false,
        })
    }

    /// Appends the entry's object and a newline to `out`.
    pub(super) fn render_line(&self, entry: &LogEntry<'_>, out: &mut String) {
        let object = render_fields(&self.fields, entry, self.omit_empty);
        // Serializing a Value with string keys cannot fail.
        if let Ok(text) = serde_json::to_string(&object) {
            out.push_str(&text);
        }
        out.push('\n');
    }
}

/// Fields sorted by key, so that a config renders the same way whatever
/// order its map came in.
fn parse_fields(
    format: &mut LogFormat,
    config: &Struct,
    prefix: &str,
) -> Result<Vec<(String, JsonValue)>, FormatError> {
    let mut keys: Vec<&String> = config.fields.keys().collect();
    keys.sort();
    keys.into_iter()
        .map(|key| {
            let path = format!("{prefix}{key}");
            let value = parse_value(format, &config.fields[key], &path)?;
            Ok((key.clone(), value))
        })
        .collect()
}

fn parse_value(
    format: &mut LogFormat,
    value: &Value,
    path: &str,
) -> Result<JsonValue, FormatError> {
    let unsupported = || FormatError::JsonValue(path.to_owned());
    Ok(match value.kind.as_ref().ok_or_else(unsupported)? {
        Kind::StringValue(text) => JsonValue::Template(format.template(text)?),
        Kind::NumberValue(number) => {
            JsonValue::Constant(Number::from_f64(*number).ok_or_else(unsupported)?.into())
        }
        Kind::BoolValue(flag) => JsonValue::Constant((*flag).into()),
        Kind::StructValue(nested) => {
            JsonValue::Object(parse_fields(format, nested, &format!("{path}."))?)
        }
        Kind::NullValue(_) | Kind::ListValue(_) => return Err(unsupported()),
    })
}

fn render_fields(
    fields: &[(String, JsonValue)],
    entry: &LogEntry<'_>,
    omit_empty: bool,
) -> serde_json::Value {
    let mut object = Map::new();
    for (key, value) in fields {
        let rendered = match value {
            JsonValue::Template(segments) => render_template(segments, entry),
            JsonValue::Constant(constant) => constant.clone(),
            JsonValue::Object(nested) => render_fields(nested, entry, omit_empty),
        };
        if !(omit_empty && rendered.is_null()) {
            object.insert(key.clone(), rendered);
        }
    }
    serde_json::Value::Object(object)
}

fn render_template(segments: &[Segment], entry: &LogEntry<'_>) -> serde_json::Value {
    match segments {
        [
            Segment::Operator {
                operator,
                max_length,
            },
        ] => typed(operator, *max_length, entry),
        _ => {
            let mut text = String::new();
            super::render_segments(segments, entry, &mut text);
            text.into()
        }
    }
}

/// A lone operator's value: a number for the counts Envoy reports as
/// numbers, else a string, or `null` when there is none.
fn typed(
    operator: &Operator,
    max_length: Option<usize>,
    entry: &LogEntry<'_>,
) -> serde_json::Value {
    match operator {
        Operator::ResponseCode => entry.response_code.into(),
        Operator::BytesReceived => entry.bytes_received.into(),
        Operator::BytesSent => entry.bytes_sent.into(),
        Operator::Duration => u64::try_from(entry.duration.as_millis())
            .unwrap_or(u64::MAX)
            .into(),
        _ => {
            let mut text = String::new();
            render_operator(operator, entry, &mut text);
            if text.is_empty() {
                return serde_json::Value::Null;
            }
            if let Some(max) = max_length {
                truncate(&mut text, max);
            }
            text.into()
        }
    }
}

#[cfg(test)]
#[path = "json_tests.rs"]
mod tests;
