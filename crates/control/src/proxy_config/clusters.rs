//! `proxy-config cluster`: one row per cluster, its Istio name split into
//! service, port, subset and direction, as istioctl prints it.

use serde_json::Value;

use super::dump::{field, istio_config, text};

#[derive(Clone, Debug, Default, clap::Args)]
pub struct ClusterFilter {
    /// Only clusters of this service host.
    #[arg(long)]
    pub fqdn: Option<String>,
    /// Only clusters of this port.
    #[arg(long)]
    pub port: Option<u16>,
    /// Only clusters of this subset.
    #[arg(long)]
    pub subset: Option<String>,
    /// Only `inbound` or `outbound` clusters.
    #[arg(long)]
    pub direction: Option<String>,
}

struct Row<'a> {
    fqdn: String,
    port: String,
    subset: String,
    direction: String,
    kind: String,
    destination_rule: String,
    resource: &'a Value,
}

impl ClusterFilter {
    fn keeps(&self, row: &Row<'_>) -> bool {
        self.fqdn.as_ref().is_none_or(|f| *f == row.fqdn)
            && self.port.is_none_or(|p| p.to_string() == row.port)
            && self.subset.as_ref().is_none_or(|s| *s == row.subset)
            && self
                .direction
                .as_ref()
                .is_none_or(|d| d.eq_ignore_ascii_case(&row.direction))
    }
}

pub fn table(clusters: &[&Value], filter: &ClusterFilter) -> Vec<Vec<String>> {
    let mut rows: Vec<Row<'_>> = clusters
        .iter()
        .map(|c| row(c))
        .filter(|r| filter.keeps(r))
        .collect();
    rows.sort_by(|a, b| {
        (&a.fqdn, &a.port, &a.subset, &a.direction).cmp(&(
            &b.fqdn,
            &b.port,
            &b.subset,
            &b.direction,
        ))
    });
    let mut out = vec![
        [
            "SERVICE FQDN",
            "PORT",
            "SUBSET",
            "DIRECTION",
            "TYPE",
            "DESTINATION RULE",
        ]
        .map(String::from)
        .to_vec(),
    ];
    out.extend(rows.into_iter().map(|r| {
        vec![
            r.fqdn,
            r.port,
            r.subset,
            r.direction,
            r.kind,
            r.destination_rule,
        ]
    }));
    out
}

pub fn filtered<'a>(clusters: &[&'a Value], filter: &ClusterFilter) -> Vec<&'a Value> {
    clusters
        .iter()
        .map(|c| row(c))
        .filter(|r| filter.keeps(r))
        .map(|r| r.resource)
        .collect()
}

fn row(cluster: &Value) -> Row<'_> {
    let name = text(cluster, "name").unwrap_or_default();
    let parts: Vec<&str> = name.split('|').collect();
    let dash = |s: &str| {
        if s.is_empty() {
            "-".to_string()
        } else {
            s.to_string()
        }
    };
    let (fqdn, port, subset, direction) = match parts.as_slice() {
        [direction @ ("inbound" | "outbound"), port, subset, fqdn] => (
            fqdn.to_string(),
            dash(port),
            dash(subset),
            direction.to_string(),
        ),
        _ => (name.to_string(), "-".into(), "-".into(), "-".into()),
    };
    Row {
        fqdn,
        port,
        subset,
        direction,
        kind: kind(cluster),
        destination_rule: istio_config(cluster).unwrap_or_default(),
        resource: cluster,
    }
}

/// The discovery type; proto3 JSON leaves out STATIC, the zero value.
fn kind(cluster: &Value) -> String {
    if let Some(custom) = field(cluster, "cluster_type").and_then(|c| text(c, "name")) {
        return custom.to_string();
    }
    text(cluster, "type").unwrap_or("STATIC").to_string()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn splits_istio_cluster_names_and_filters() {
        let clusters = [
            json!({"name": "outbound|9080|v1|reviews.default.svc.cluster.local", "type": "EDS",
                   "metadata": {"filterMetadata": {"istio": {"config": "/apis/networking.istio.io/v1/namespaces/default/destination-rule/reviews"}}}}),
            json!({"name": "inbound|9080||", "type": "ORIGINAL_DST"}),
            json!({"name": "BlackHoleCluster"}),
        ];
        let refs: Vec<&Value> = clusters.iter().collect();
        let rows = table(&refs, &ClusterFilter::default());
        assert_eq!(rows[0][0], "SERVICE FQDN");
        assert_eq!(rows[1], ["", "9080", "-", "inbound", "ORIGINAL_DST", ""]);
        assert_eq!(rows[2], ["BlackHoleCluster", "-", "-", "-", "STATIC", ""]);
        assert_eq!(
            rows[3],
            [
                "reviews.default.svc.cluster.local",
                "9080",
                "v1",
                "outbound",
                "EDS",
                "reviews.default"
            ]
        );
        let only_v1 = ClusterFilter {
            subset: Some("v1".into()),
            ..Default::default()
        };
        assert_eq!(table(&refs, &only_v1).len(), 2);
        assert_eq!(filtered(&refs, &only_v1).len(), 1);
    }
}
