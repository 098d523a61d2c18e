//! Reading an Envoy config dump as JSON. Dumps come in proto3 JSON, whose
//! field names are camelCase from Trellis and snake_case from Envoy's
//! admin: every lookup accepts both.

use serde_json::Value;

/// `value[name]`, by its snake_case name or the camelCase one.
pub fn field<'a>(value: &'a Value, snake: &str) -> Option<&'a Value> {
    value.get(snake).or_else(|| value.get(camel(snake)))
}

pub fn text<'a>(value: &'a Value, snake: &str) -> Option<&'a str> {
    field(value, snake)?.as_str()
}

/// A list field; absent means empty, as in proto3.
pub fn list<'a>(value: &'a Value, snake: &str) -> &'a [Value] {
    field(value, snake)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// A number field; proto3 JSON writes 64-bit integers as strings.
pub fn number(value: &Value, snake: &str) -> Option<u64> {
    match field(value, snake)? {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// The resources of one section of `/config_dump`: the section whose
/// `@type` ends with `dump_type`, its `list`, each entry's `key`.
pub fn resources<'a>(
    dump: &'a Value,
    dump_type: &str,
    list_name: &str,
    key: &str,
) -> Vec<&'a Value> {
    list(dump, "configs")
        .iter()
        .filter(|section| {
            section
                .get("@type")
                .and_then(Value::as_str)
                .is_some_and(|t| t.ends_with(dump_type))
        })
        .flat_map(|section| list(section, list_name))
        .filter_map(|entry| field(entry, key))
        .collect()
}

/// The Istio config a resource came from, from its
/// `metadata.filter_metadata.istio.config` (`/apis/GROUP/VERSION/namespaces/NS/KIND/NAME`),
/// as `NAME.NS`.
pub fn istio_config(resource: &Value) -> Option<String> {
    let metadata = field(resource, "metadata")?;
    let istio = field(metadata, "filter_metadata")?.get("istio")?;
    let path = istio.get("config")?.as_str()?;
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    match parts.as_slice() {
        [.., "namespaces", namespace, _kind, name] => Some(format!("{name}.{namespace}")),
        _ => None,
    }
}

/// `socket_address` as `IP` and port.
pub fn socket_address(address: &Value) -> Option<(String, u32)> {
    let socket = field(address, "socket_address")?;
    let ip = text(socket, "address")?.to_string();
    let port = number(socket, "port_value").unwrap_or(0) as u32;
    Some((ip, port))
}

fn camel(snake: &str) -> String {
    let mut out = String::with_capacity(snake.len());
    let mut upper = false;
    for c in snake.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn reads_both_spellings_of_proto3_json() {
        let camel = json!({"filterChainMatch": {"destinationPort": "15006"}});
        let snake = json!({"filter_chain_match": {"destination_port": 15006}});
        for value in [camel, snake] {
            let chain_match = field(&value, "filter_chain_match").unwrap();
            assert_eq!(number(chain_match, "destination_port"), Some(15006));
        }
    }

    #[test]
    fn names_the_istio_resource_behind_an_xds_resource() {
        let cluster = json!({"metadata": {"filterMetadata": {"istio": {
            "config": "/apis/networking.istio.io/v1/namespaces/default/destination-rule/reviews"
        }}}});
        assert_eq!(istio_config(&cluster).as_deref(), Some("reviews.default"));
        assert_eq!(istio_config(&json!({})), None);
    }
}
