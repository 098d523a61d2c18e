//! `proxy-config route`: one row per route of every virtual host of every
//! route configuration, as istioctl prints it.

use serde_json::Value;

use super::dump::{field, istio_config, list, text};

/// How many domains a row shows before `+ N more...`.
const SHOWN_DOMAINS: usize = 2;

#[derive(Clone, Debug, Default, clap::Args)]
pub struct RouteFilter {
    /// Only the route configuration of this name (e.g. `9080`).
    #[arg(long)]
    pub name: Option<String>,
}

pub fn table(configs: &[&Value], filter: &RouteFilter) -> Vec<Vec<String>> {
    let mut out = vec![
        ["NAME", "VHOST NAME", "DOMAINS", "MATCH", "VIRTUAL SERVICE"]
            .map(String::from)
            .to_vec(),
    ];
    let mut configs = filtered(configs, filter);
    configs.sort_by_key(|c| text(c, "name").unwrap_or_default().to_string());
    for config in configs {
        let name = text(config, "name").unwrap_or_default();
        for vhost in list(config, "virtual_hosts") {
            let vhost_name = text(vhost, "name").unwrap_or_default();
            let domains = describe_domains(list(vhost, "domains"));
            for route in list(vhost, "routes") {
                out.push(vec![
                    name.to_string(),
                    vhost_name.to_string(),
                    domains.clone(),
                    field(route, "match")
                        .map(describe_match)
                        .unwrap_or_default(),
                    istio_config(route).unwrap_or_default(),
                ]);
            }
        }
    }
    out
}

pub fn filtered<'a>(configs: &[&'a Value], filter: &RouteFilter) -> Vec<&'a Value> {
    configs
        .iter()
        .copied()
        .filter(|c| {
            filter
                .name
                .as_ref()
                .is_none_or(|n| text(c, "name") == Some(n))
        })
        .collect()
}

/// The domains without a port (their `:PORT` twins add nothing) unless all
/// have one, the first few of them, then how many more.
fn describe_domains(domains: &[Value]) -> String {
    let domains: Vec<&str> = domains.iter().filter_map(Value::as_str).collect();
    if domains.len() == 1 {
        return domains[0].to_string();
    }
    let mut without_port: Vec<&str> = domains
        .iter()
        .copied()
        .filter(|d| {
            d.rsplit_once(':')
                .is_none_or(|(_, port)| port.parse::<u16>().is_err())
        })
        .collect();
    if without_port.is_empty() {
        // Every domain has a port (the explicit proxy's hosts): show them.
        without_port = domains;
    }
    if without_port.len() > SHOWN_DOMAINS {
        format!(
            "{} + {} more...",
            without_port[..SHOWN_DOMAINS].join(", "),
            without_port.len() - SHOWN_DOMAINS
        )
    } else {
        without_port.join(", ")
    }
}

/// A route match in istioctl's words: `/prefix*`, `/exact`, a regex, plus
/// the headers it needs.
pub fn describe_match(route_match: &Value) -> String {
    let mut out = if let Some(prefix) = text(route_match, "prefix") {
        format!("{prefix}*")
    } else if let Some(path) = text(route_match, "path") {
        path.to_string()
    } else if let Some(regex) = field(route_match, "safe_regex").and_then(|r| text(r, "regex")) {
        regex.to_string()
    } else if let Some(separated) = text(route_match, "path_separated_prefix") {
        format!("{separated}/*")
    } else {
        "/*".to_string()
    };
    let headers: Vec<&str> = list(route_match, "headers")
        .iter()
        .filter_map(|h| text(h, "name"))
        .collect();
    if !headers.is_empty() {
        out.push_str(&format!(" (headers: {})", headers.join(",")));
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn one_row_per_route_with_short_domains() {
        let config = json!({"name": "9080", "virtualHosts": [{
            "name": "reviews.default.svc.cluster.local:9080",
            "domains": ["reviews.default.svc.cluster.local:9080", "reviews.default.svc.cluster.local",
                        "reviews:9080", "reviews", "reviews.default", "10.96.0.4"],
            "routes": [
                {"match": {"prefix": "/", "headers": [{"name": "end-user"}]},
                 "metadata": {"filterMetadata": {"istio": {"config": "/apis/networking.istio.io/v1/namespaces/default/virtual-service/reviews"}}}},
                {"match": {"path": "/exact"}},
            ],
        }]});
        let rows = table(&[&config], &RouteFilter::default());
        assert_eq!(rows.len(), 3);
        assert_eq!(
            rows[1],
            [
                "9080",
                "reviews.default.svc.cluster.local:9080",
                "reviews.default.svc.cluster.local, reviews + 2 more...",
                "/* (headers: end-user)",
                "reviews.default"
            ]
        );
        assert_eq!(rows[2][3], "/exact");
        let ported = [json!("details:9080"), json!("details.default:9080")];
        assert_eq!(
            describe_domains(&ported),
            "details:9080, details.default:9080"
        );
        let other = RouteFilter {
            name: Some("80".into()),
        };
        assert_eq!(table(&[&config], &other).len(), 1);
    }
}
