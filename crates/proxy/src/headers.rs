//! Request and response header operations of routes and weighted clusters
//! (`*_headers_to_add`, `*_headers_to_remove`): removals first, then
//! additions, each with Envoy's append action.

use envoy_types::pb::envoy::config::core::v3::HeaderValueOption;
use envoy_types::pb::envoy::config::core::v3::header_value_option::HeaderAppendAction;
use http::{HeaderMap, HeaderName, HeaderValue};

use crate::unsupported::{Unsupported, reject_if};

#[derive(Debug, Default)]
pub struct HeaderMutations {
    remove: Vec<HeaderName>,
    add: Vec<(HeaderName, HeaderValue, AppendAction)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum AppendAction {
    Append,
    AddIfAbsent,
    Overwrite,
    OverwriteIfExists,
}

impl HeaderMutations {
    pub fn compile(
        add: &[HeaderValueOption],
        remove: &[String],
    ) -> Result<HeaderMutations, Unsupported> {
        let remove = remove
            .iter()
            .map(|name| header_name(name))
            .collect::<Result<_, _>>()?;
        let mut compiled = Vec::with_capacity(add.len());
        for option in add {
            let header = option
                .header
                .as_ref()
                .ok_or(Unsupported("header option without a header"))?;
            reject_if(!header.raw_value.is_empty(), "header raw_value")?;
            if header.value.is_empty() && !option.keep_empty_value {
                continue; // Envoy drops empty values unless told to keep them
            }
            let value = HeaderValue::from_str(&literal(&header.value)?)
                .map_err(|_| Unsupported("invalid header value"))?;
            compiled.push((header_name(&header.key)?, value, append_action(option)?));
        }
        Ok(HeaderMutations {
            remove,
            add: compiled,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.remove.is_empty() && self.add.is_empty()
    }

    pub fn apply(&self, headers: &mut HeaderMap) {
        for name in &self.remove {
            headers.remove(name);
        }
        for (name, value, action) in &self.add {
            match action {
                AppendAction::Append => {
                    headers.append(name.clone(), value.clone());
                }
                AppendAction::AddIfAbsent if !headers.contains_key(name) => {
                    headers.insert(name.clone(), value.clone());
                }
                AppendAction::Overwrite => {
                    headers.insert(name.clone(), value.clone());
                }
                AppendAction::OverwriteIfExists if headers.contains_key(name) => {
                    headers.insert(name.clone(), value.clone());
                }
                AppendAction::AddIfAbsent | AppendAction::OverwriteIfExists => {}
            }
        }
    }
}

/// Pseudo-headers and `host` cannot be changed this way (Envoy refuses
/// them too; the authority is rewritten with `host_rewrite_literal`).
fn header_name(name: &str) -> Result<HeaderName, Unsupported> {
    let lower = name.to_ascii_lowercase();
    reject_if(
        lower.starts_with(':') || lower == "host",
        "header operation on a pseudo-header or host",
    )?;
    HeaderName::from_bytes(lower.as_bytes()).map_err(|_| Unsupported("invalid header name"))
}

// `append` is deprecated but control planes still send it.
#[allow(deprecated)]
fn append_action(option: &HeaderValueOption) -> Result<AppendAction, Unsupported> {
    if let Some(append) = &option.append {
        return Ok(if append.value {
            AppendAction::Append
        } else {
            AppendAction::Overwrite
        });
    }
    match HeaderAppendAction::try_from(option.append_action) {
        Ok(HeaderAppendAction::AppendIfExistsOrAdd) => Ok(AppendAction::Append),
        Ok(HeaderAppendAction::AddIfAbsent) => Ok(AppendAction::AddIfAbsent),
        Ok(HeaderAppendAction::OverwriteIfExistsOrAdd) => Ok(AppendAction::Overwrite),
        Ok(HeaderAppendAction::OverwriteIfExists) => Ok(AppendAction::OverwriteIfExists),
        Err(_) => Err(Unsupported("header append_action")),
    }
}

/// Envoy reads `%COMMAND%` in header values; only the `%%` escape (a
/// literal `%`) is implemented, so any other command is refused rather
/// than sent verbatim.
fn literal(value: &str) -> Result<String, Unsupported> {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(at) = rest.find('%') {
        out.push_str(&rest[..at]);
        reject_if(
            !rest[at..].starts_with("%%"),
            "header value with a %COMMAND% substitution",
        )?;
        out.push('%');
        rest = &rest[at + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::envoy::config::core::v3::HeaderValue as XdsHeader;

    fn option(key: &str, value: &str, action: HeaderAppendAction) -> HeaderValueOption {
        HeaderValueOption {
            header: Some(XdsHeader {
                key: key.into(),
                value: value.into(),
                ..Default::default()
            }),
            append_action: action as i32,
            ..Default::default()
        }
    }

    #[test]
    fn removes_then_adds_with_each_append_action() {
        let mutations = HeaderMutations::compile(
            &[
                option("x-set", "new", HeaderAppendAction::OverwriteIfExistsOrAdd),
                option("x-add", "two", HeaderAppendAction::AppendIfExistsOrAdd),
                option("x-absent", "kept", HeaderAppendAction::AddIfAbsent),
                option("x-missing", "no", HeaderAppendAction::OverwriteIfExists),
                option("x-pct", "100%%", HeaderAppendAction::OverwriteIfExistsOrAdd),
                option("x-empty", "", HeaderAppendAction::OverwriteIfExistsOrAdd),
                option("x-gone", "back", HeaderAppendAction::AppendIfExistsOrAdd),
            ],
            &["x-gone".into()],
        )
        .unwrap();
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("x-set", "old"),
            ("x-add", "one"),
            ("x-absent", "original"),
            ("x-gone", "old"),
        ] {
            headers.insert(name, value.parse().unwrap());
        }
        mutations.apply(&mut headers);
        assert_eq!(headers["x-set"], "new");
        let added: Vec<_> = headers.get_all("x-add").iter().collect();
        assert_eq!(added, ["one", "two"]);
        assert_eq!(headers["x-absent"], "original");
        assert!(!headers.contains_key("x-missing"));
        assert_eq!(headers["x-pct"], "100%");
        assert!(!headers.contains_key("x-empty"));
        let gone: Vec<_> = headers.get_all("x-gone").iter().collect();
        assert_eq!(gone, ["back"], "removal happens before additions");
    }

    #[test]
    fn refuses_what_it_cannot_honour() {
        let set = HeaderAppendAction::OverwriteIfExistsOrAdd;
        for (option, field) in [
            (
                option("host", "x", set),
                "header operation on a pseudo-header or host",
            ),
            (
                option(":path", "/", set),
                "header operation on a pseudo-header or host",
            ),
            (
                option("x-peer", "%DOWNSTREAM_REMOTE_ADDRESS%", set),
                "header value with a %COMMAND% substitution",
            ),
        ] {
            assert_eq!(
                HeaderMutations::compile(&[option], &[]).unwrap_err(),
                Unsupported(field)
            );
        }
    }
}
