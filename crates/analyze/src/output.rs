//! Rendering messages as istioctl does: one line per message (`text`), or
//! a list of objects (`json`, `yaml`) with the documentation link.

use serde::Serialize;

use crate::message::Message;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// `Level [CODE] (Kind namespace/name) message`, one per line.
    #[value(alias = "log")]
    Text,
    Json,
    Yaml,
}

/// A message as istioctl's JSON and YAML outputs write it (keys in its order).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Record {
    code: &'static str,
    documentation_url: String,
    level: String,
    message: String,
    origin: String,
    reference: String,
}

impl Record {
    fn of(message: &Message) -> Record {
        Record {
            code: message.code(),
            documentation_url: message.message_type.documentation_url(),
            level: message.level().to_string(),
            message: message.text.clone(),
            origin: message.origin.to_string(),
            reference: format!(
                "{}:{}",
                message.reference.file.display(),
                message.reference.line
            ),
        }
    }
}

/// The whole output for `messages`, without a trailing newline.
pub fn render(messages: &[Message], format: OutputFormat) -> String {
    match format {
        OutputFormat::Text => messages
            .iter()
            .map(Message::to_string)
            .collect::<Vec<_>>()
            .join("\n"),
        OutputFormat::Json => json(messages),
        OutputFormat::Yaml => yaml(messages),
    }
}

fn json(messages: &[Message]) -> String {
    let records: Vec<Record> = messages.iter().map(Record::of).collect();
    let mut out = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"\t");
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, formatter);
    match records.serialize(&mut serializer) {
        Ok(()) => String::from_utf8_lossy(&out).into_owned(),
        // Serializing strings into memory cannot fail; keep the output valid anyway.
        Err(_) => "[]".to_string(),
    }
}

/// YAML with every value as a double-quoted (JSON) string, which YAML reads
/// back unchanged whatever characters it holds.
fn yaml(messages: &[Message]) -> String {
    if messages.is_empty() {
        return "[]".to_string();
    }
    let quote = |value: &str| serde_json::Value::String(value.to_string()).to_string();
    let mut lines = Vec::new();
    for record in messages.iter().map(Record::of) {
        let fields = [
            ("code", record.code.to_string()),
            ("documentationUrl", record.documentation_url),
            ("level", record.level),
            ("message", record.message),
            ("origin", record.origin),
            ("reference", record.reference),
        ];
        for (index, (key, value)) in fields.iter().enumerate() {
            let lead = if index == 0 { "- " } else { "  " };
            lines.push(format!("{lead}{key}: {}", quote(value)));
        }
    }
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use trellis_api::SourceRef;

    use super::*;
    use crate::message::{Origin, REFERENCED_RESOURCE_NOT_FOUND};

    fn message() -> Message {
        Message {
            message_type: &REFERENCED_RESOURCE_NOT_FOUND,
            origin: Origin {
                kind: "VirtualService".into(),
                namespace: "default".into(),
                name: "reviews".into(),
            },
            reference: SourceRef {
                file: PathBuf::from("vs.yaml"),
                line: 3,
                column: 1,
            },
            text: "Referenced host+subset in destinationrule not found: \"reviews+v4\"".into(),
        }
    }

    #[test]
    fn text_is_one_line_per_message() {
        assert_eq!(
            render(&[message()], OutputFormat::Text),
            "Error [IST0101] (VirtualService default/reviews) Referenced host+subset in destinationrule not found: \"reviews+v4\""
        );
    }

    #[test]
    fn json_and_yaml_carry_the_same_fields() {
        let json: serde_json::Value =
            serde_json::from_str(&render(&[message()], OutputFormat::Json)).unwrap();
        assert_eq!(json[0]["code"], "IST0101");
        assert_eq!(json[0]["origin"], "VirtualService default/reviews");
        assert_eq!(json[0]["reference"], "vs.yaml:3");
        assert_eq!(json[0]["level"], "Error");
        let yaml = render(&[message()], OutputFormat::Yaml);
        assert!(
            yaml.starts_with("- code: \"IST0101\"\n  documentationUrl: \"https://istio.io/"),
            "{yaml}"
        );
        assert!(yaml.contains("\n  message: \"Referenced host+subset in destinationrule not found: \\\"reviews+v4\\\"\""), "{yaml}");
        assert_eq!(render(&[], OutputFormat::Json), "[]");
        assert_eq!(render(&[], OutputFormat::Yaml), "[]");
    }
}
