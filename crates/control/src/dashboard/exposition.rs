//! A parser for the Prometheus text exposition format (what a sidecar's
//! `/stats/prometheus` serves): one sample per line, `# ` comments, label
//! values with `\\`, `\"` and `\n` escapes, and an optional timestamp.

use std::collections::BTreeMap;

/// One line's sample: `name{labels} value`.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

impl Sample {
    pub fn label(&self, name: &str) -> &str {
        self.labels.get(name).map_or("", String::as_str)
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("line {line}: {reason}")]
pub struct ParseError {
    pub line: usize,
    pub reason: &'static str,
}

/// Every sample of a scrape, in order. One bad line fails the whole scrape:
/// a half-read scrape would look like a counter reset.
pub fn parse(text: &str) -> Result<Vec<Sample>, ParseError> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| {
            let line = line.trim();
            !line.is_empty() && !line.starts_with('#')
        })
        .map(|(index, line)| {
            parse_line(line.trim()).map_err(|reason| ParseError {
                line: index + 1,
                reason,
            })
        })
        .collect()
}

fn parse_line(line: &str) -> Result<Sample, &'static str> {
    let name_end = line
        .find(|c: char| c == '{' || c.is_whitespace())
        .ok_or("a sample has no value")?;
    let name = &line[..name_end];
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    {
        return Err("invalid metric name");
    }
    let mut rest = &line[name_end..];
    let mut labels = BTreeMap::new();
    if let Some(after_brace) = rest.strip_prefix('{') {
        rest = parse_labels(after_brace, &mut labels)?;
    }
    let value = rest
        .split_whitespace()
        .next()
        .ok_or("a sample has no value")?;
    Ok(Sample {
        name: name.to_string(),
        labels,
        value: parse_value(value)?,
    })
}

/// Reads `a="x",b="y"}` into `labels`; returns what follows the `}`.
fn parse_labels<'a>(
    mut text: &'a str,
    labels: &mut BTreeMap<String, String>,
) -> Result<&'a str, &'static str> {
    loop {
        text = text.trim_start();
        if let Some(rest) = text.strip_prefix('}') {
            return Ok(rest);
        }
        let equals = text.find('=').ok_or("a label has no value")?;
        let name = text[..equals].trim();
        if name.is_empty() {
            return Err("a label has no name");
        }
        let quoted = text[equals + 1..]
            .trim_start()
            .strip_prefix('"')
            .ok_or("a label value is not quoted")?;
        let (value, rest) = unescape_until_quote(quoted)?;
        labels.insert(name.to_string(), value);
        text = rest.trim_start();
        text = text.strip_prefix(',').unwrap_or(text);
    }
}

/// The label value up to its closing quote, unescaped, and what follows.
fn unescape_until_quote(text: &str) -> Result<(String, &str), &'static str> {
    let mut value = String::new();
    let mut chars = text.char_indices();
    while let Some((index, c)) = chars.next() {
        match c {
            '"' => return Ok((value, &text[index + 1..])),
            '\\' => match chars.next() {
                Some((_, 'n')) => value.push('\n'),
                Some((_, escaped @ ('\\' | '"'))) => value.push(escaped),
                _ => return Err("invalid escape in a label value"),
            },
            c => value.push(c),
        }
    }
    Err("a label value is not closed")
}

fn parse_value(text: &str) -> Result<f64, &'static str> {
    match text {
        "+Inf" | "Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ => text.parse().map_err(|_| "invalid sample value"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_counters_histograms_and_comments() {
        let text = "# HELP istio_requests Requests\n# TYPE istio_requests counter\n\
            istio_requests_total{reporter=\"destination\",response_code=\"200\"} 7\n\
            istio_request_duration_milliseconds_bucket{le=\"+Inf\"} 3 1700000000000\n\
            plain 1.5e3\n# EOF\n";
        let samples = parse(text).unwrap();
        assert_eq!(samples.len(), 3);
        assert_eq!(samples[0].name, "istio_requests_total");
        assert_eq!(samples[0].label("reporter"), "destination");
        assert_eq!(samples[0].label("response_code"), "200");
        assert_eq!(samples[0].value, 7.0);
        assert_eq!(samples[1].label("le"), "+Inf");
        assert_eq!(samples[1].value, 3.0);
        assert_eq!(samples[2].value, 1500.0);
        assert!(samples[2].labels.is_empty());
    }

    #[test]
    fn unescapes_label_values() {
        let samples = parse(r#"m{a="x\"y",b="c\\d",c="e\nf", d = "}{,"} +Inf"#).unwrap();
        let labels = &samples[0].labels;
        assert_eq!(labels["a"], "x\"y");
        assert_eq!(labels["b"], "c\\d");
        assert_eq!(labels["c"], "e\nf");
        assert_eq!(labels["d"], "}{,");
        assert_eq!(samples[0].value, f64::INFINITY);
    }

    #[test]
    fn refuses_broken_lines_naming_the_line() {
        for (text, reason) in [
            ("ok 1\nm{a=\"x} 1", "a label value is not closed"),
            ("ok 1\nm{a=x} 1", "a label value is not quoted"),
            ("ok 1\nm{a=\"x\"}", "a sample has no value"),
            ("ok 1\nm 12abc", "invalid sample value"),
            ("ok 1\nm-x 1", "invalid metric name"),
            ("ok 1\nm{a=\"\\q\"} 1", "invalid escape in a label value"),
        ] {
            assert_eq!(parse(text), Err(ParseError { line: 2, reason }), "{text}");
        }
    }
}
