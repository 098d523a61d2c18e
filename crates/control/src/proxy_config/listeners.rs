//! `proxy-config listener`: one row per filter chain of every listener,
//! with the chain's match and where its traffic goes, as istioctl prints it.

use serde_json::Value;

use super::dump::{field, list, number, socket_address, text};

const HCM: &str = "envoy.filters.network.http_connection_manager";
const TCP_PROXY: &str = "envoy.filters.network.tcp_proxy";

#[derive(Clone, Debug, Default, clap::Args)]
pub struct ListenerFilter {
    /// Only listeners bound to this address.
    #[arg(long)]
    pub address: Option<String>,
    /// Only listeners on this port.
    #[arg(long)]
    pub port: Option<u16>,
    /// Only chains of this type: HTTP or TCP.
    #[arg(long = "type", value_name = "HTTP|TCP")]
    pub chain_type: Option<String>,
}

struct Row {
    address: String,
    port: u32,
    chain_match: String,
    destination: String,
    http: bool,
}

impl ListenerFilter {
    fn keeps_listener(&self, address: &str, port: u32) -> bool {
        self.address.as_ref().is_none_or(|a| a == address)
            && self.port.is_none_or(|p| u32::from(p) == port)
    }

    fn keeps_chain(&self, row: &Row) -> bool {
        match self
            .chain_type
            .as_deref()
            .map(str::to_ascii_uppercase)
            .as_deref()
        {
            Some("HTTP") => row.http,
            Some("TCP") => !row.http,
            _ => true,
        }
    }
}

pub fn table(listeners: &[&Value], filter: &ListenerFilter) -> Vec<Vec<String>> {
    let mut rows: Vec<Row> = listeners
        .iter()
        .flat_map(|l| rows(l, filter))
        .filter(|r| filter.keeps_chain(r))
        .collect();
    rows.sort_by(|a, b| (a.port, &a.address).cmp(&(b.port, &b.address)));
    let mut out = vec![
        ["ADDRESSES", "PORT", "MATCH", "DESTINATION"]
            .map(String::from)
            .to_vec(),
    ];
    out.extend(
        rows.into_iter()
            .map(|r| vec![r.address, r.port.to_string(), r.chain_match, r.destination]),
    );
    out
}

pub fn filtered<'a>(listeners: &[&'a Value], filter: &ListenerFilter) -> Vec<&'a Value> {
    listeners
        .iter()
        .copied()
        .filter(|l| {
            let (address, port) = address_of(l);
            filter.keeps_listener(&address, port)
        })
        .collect()
}

fn address_of(listener: &Value) -> (String, u32) {
    field(listener, "address")
        .and_then(socket_address)
        .unwrap_or_default()
}

fn rows(listener: &Value, filter: &ListenerFilter) -> Vec<Row> {
    let (address, port) = address_of(listener);
    if !filter.keeps_listener(&address, port) {
        return Vec::new();
    }
    let chains = list(listener, "filter_chains")
        .iter()
        .chain(field(listener, "default_filter_chain"));
    chains
        .map(|chain| {
            let filters = list(chain, "filters");
            Row {
                address: address.clone(),
                port,
                chain_match: describe_match(field(chain, "filter_chain_match")),
                destination: describe_destination(filters),
                http: filters.iter().any(|f| text(f, "name") == Some(HCM)),
            }
        })
        .collect()
}

/// istioctl's words: `SNI: ..; Trans: ..; App: ..; Addr: ..`, or `ALL`.
fn describe_match(chain_match: Option<&Value>) -> String {
    let Some(chain_match) = chain_match else {
        return "ALL".into();
    };
    let strings = |name: &str| -> Vec<&str> {
        list(chain_match, name)
            .iter()
            .filter_map(Value::as_str)
            .collect()
    };
    let mut parts = Vec::new();
    let names = strings("server_names");
    if !names.is_empty() {
        parts.push(format!("SNI: {}", names.join(",")));
    }
    if let Some(transport) = text(chain_match, "transport_protocol") {
        parts.push(format!("Trans: {transport}"));
    }
    let alpn = strings("application_protocols");
    if !alpn.is_empty() {
        parts.push(format!("App: {}", alpn.join(",")));
    }
    let prefixes: Vec<String> = list(chain_match, "prefix_ranges")
        .iter()
        .filter_map(|range| {
            let prefix = text(range, "address_prefix")?;
            Some(format!(
                "{prefix}/{}",
                number(range, "prefix_len").unwrap_or(0)
            ))
        })
        .collect();
    match (number(chain_match, "destination_port"), prefixes.is_empty()) {
        (Some(port), true) => parts.push(format!("Addr: *:{port}")),
        (Some(port), false) => parts.push(format!("Addr: {}:{port}", prefixes.join(","))),
        (None, false) => parts.push(format!("Addr: {}", prefixes.join(","))),
        (None, true) => {}
    }
    if parts.is_empty() {
        "ALL".into()
    } else {
        parts.join("; ")
    }
}

fn describe_destination(filters: &[Value]) -> String {
    for filter in filters {
        let config = field(filter, "typed_config");
        match (text(filter, "name"), config) {
            (Some(HCM), Some(hcm)) => {
                if let Some(name) = field(hcm, "rds").and_then(|r| text(r, "route_config_name")) {
                    return format!("Route: {name}");
                }
                if let Some(routes) = field(hcm, "route_config") {
                    return format!("Inline Route: {}", inline_paths(routes));
                }
                return "HTTP".into();
            }
            (Some(TCP_PROXY), Some(tcp)) => {
                if let Some(cluster) = text(tcp, "cluster") {
                    return format!("Cluster: {cluster}");
                }
                let weighted: Vec<&str> = field(tcp, "weighted_clusters")
                    .map(|w| list(w, "clusters"))
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|c| text(c, "name"))
                    .collect();
                return format!("WeightedClusters: {}", weighted.join(","));
            }
            _ => {}
        }
    }
    "Non-HTTP/Non-TCP".into()
}

fn inline_paths(route_config: &Value) -> String {
    let paths: Vec<String> = list(route_config, "virtual_hosts")
        .iter()
        .flat_map(|vh| list(vh, "routes"))
        .filter_map(|route| field(route, "match").map(super::routes::describe_match))
        .collect();
    paths.join(",")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn one_row_per_chain_with_its_match_and_destination() {
        let listener = json!({
            "name": "virtualInbound",
            "address": {"socketAddress": {"address": "0.0.0.0", "portValue": 15006}},
            "filterChains": [
                {"filterChainMatch": {"destinationPort": 9080, "transportProtocol": "tls",
                                      "applicationProtocols": ["istio-http/1.1", "istio-h2"]},
                 "filters": [{"name": HCM, "typedConfig": {"rds": {"routeConfigName": "inbound|9080||"}}}]},
                {"filterChainMatch": {"prefixRanges": [{"addressPrefix": "10.0.0.0", "prefixLen": 8}]},
                 "filters": [{"name": TCP_PROXY, "typedConfig": {"cluster": "InboundPassthroughCluster"}}]},
                {"filters": []},
            ],
        });
        let rows = table(&[&listener], &ListenerFilter::default());
        assert_eq!(rows.len(), 4);
        assert_eq!(
            rows[1],
            [
                "0.0.0.0",
                "15006",
                "Trans: tls; App: istio-http/1.1,istio-h2; Addr: *:9080",
                "Route: inbound|9080||"
            ]
        );
        assert_eq!(rows[2][2], "Addr: 10.0.0.0/8");
        assert_eq!(rows[2][3], "Cluster: InboundPassthroughCluster");
        assert_eq!(rows[3][2..], ["ALL", "Non-HTTP/Non-TCP"]);
        let tcp = ListenerFilter {
            chain_type: Some("tcp".into()),
            ..Default::default()
        };
        assert_eq!(table(&[&listener], &tcp).len(), 3);
        let elsewhere = ListenerFilter {
            port: Some(15001),
            ..Default::default()
        };
        assert_eq!(table(&[&listener], &elsewhere).len(), 1);
    }
}
