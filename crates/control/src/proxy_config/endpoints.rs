//! `proxy-config endpoint`: every endpoint of every cluster with its health
//! and outlier state, from the proxy's `/clusters?format=json`.

use serde_json::Value;

use super::dump::{field, list, socket_address, text};

#[derive(Clone, Debug, Default, clap::Args)]
pub struct EndpointFilter {
    /// Only endpoints at this IP.
    #[arg(long)]
    pub address: Option<String>,
    /// Only endpoints on this port.
    #[arg(long)]
    pub port: Option<u16>,
    /// Only endpoints of this cluster.
    #[arg(long)]
    pub cluster: Option<String>,
    /// Only endpoints in this health status (e.g. HEALTHY, UNHEALTHY).
    #[arg(long)]
    pub status: Option<String>,
}

struct Row {
    ip: String,
    port: u32,
    status: String,
    outlier: &'static str,
    cluster: String,
}

pub fn table(clusters: &Value, filter: &EndpointFilter) -> Vec<Vec<String>> {
    let mut rows = rows(clusters, filter);
    rows.sort_by(|a, b| (&a.cluster, &a.ip, a.port).cmp(&(&b.cluster, &b.ip, b.port)));
    let mut out = vec![
        ["ENDPOINT", "STATUS", "OUTLIER CHECK", "CLUSTER"]
            .map(String::from)
            .to_vec(),
    ];
    out.extend(rows.into_iter().map(|r| {
        vec![
            format!("{}:{}", r.ip, r.port),
            r.status,
            r.outlier.to_string(),
            r.cluster,
        ]
    }));
    out
}

/// The clusters answer with only the statuses `filter` keeps.
pub fn filtered(clusters: &Value, filter: &EndpointFilter) -> Value {
    let kept: Vec<Value> = list(clusters, "cluster_statuses")
        .iter()
        .filter_map(|cluster| {
            let name = text(cluster, "name").unwrap_or_default();
            let hosts: Vec<Value> = list(cluster, "host_statuses")
                .iter()
                .filter(|host| row(name, host).is_some_and(|r| keeps(filter, &r)))
                .cloned()
                .collect();
            (!hosts.is_empty()).then(|| serde_json::json!({"name": name, "host_statuses": hosts}))
        })
        .collect();
    serde_json::json!({ "cluster_statuses": kept })
}

fn rows(clusters: &Value, filter: &EndpointFilter) -> Vec<Row> {
    list(clusters, "cluster_statuses")
        .iter()
        .flat_map(|cluster| {
            let name = text(cluster, "name").unwrap_or_default();
            list(cluster, "host_statuses")
                .iter()
                .filter_map(move |host| row(name, host))
        })
        .filter(|r| keeps(filter, r))
        .collect()
}

fn keeps(filter: &EndpointFilter, row: &Row) -> bool {
    filter.address.as_ref().is_none_or(|a| *a == row.ip)
        && filter.port.is_none_or(|p| u32::from(p) == row.port)
        && filter.cluster.as_ref().is_none_or(|c| *c == row.cluster)
        && filter
            .status
            .as_ref()
            .is_none_or(|s| s.eq_ignore_ascii_case(&row.status))
}

fn row(cluster: &str, host: &Value) -> Option<Row> {
    let (ip, port) = field(host, "address").and_then(socket_address)?;
    let health = field(host, "health_status");
    let status = health
        .and_then(|h| text(h, "eds_health_status"))
        .unwrap_or("HEALTHY")
        .to_string();
    let ejected = health
        .and_then(|h| field(h, "failed_outlier_check"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    Some(Row {
        ip,
        port,
        status,
        outlier: if ejected { "FAILED" } else { "OK" },
        cluster: cluster.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn lists_endpoints_with_outlier_state() {
        let clusters = json!({"cluster_statuses": [
            {"name": "outbound|9080|v1|reviews.default.svc.cluster.local", "host_statuses": [
                {"address": {"socket_address": {"address": "127.42.0.4", "port_value": 9080}},
                 "health_status": {"eds_health_status": "HEALTHY", "failed_outlier_check": true}},
            ]},
            {"name": "outbound|9080||details.default.svc.cluster.local", "host_statuses": [
                {"address": {"socket_address": {"address": "127.42.0.2", "port_value": 9080}},
                 "health_status": {"eds_health_status": "HEALTHY"}},
            ]},
        ]});
        let rows = table(&clusters, &EndpointFilter::default());
        // Sorted by cluster name, as bytes: `|v1|` before `||`.
        assert_eq!(rows[1][..3], ["127.42.0.4:9080", "HEALTHY", "FAILED"]);
        assert_eq!(
            rows[2],
            [
                "127.42.0.2:9080",
                "HEALTHY",
                "OK",
                "outbound|9080||details.default.svc.cluster.local"
            ]
        );
        let one = EndpointFilter {
            address: Some("127.42.0.4".into()),
            ..Default::default()
        };
        assert_eq!(table(&clusters, &one).len(), 2);
        assert_eq!(
            list(&filtered(&clusters, &one), "cluster_statuses").len(),
            1
        );
    }
}
