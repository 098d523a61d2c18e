//! `trellis proxy-status`: which proxies are connected to the control plane
//! and whether each holds the latest config, in istioctl's format; with a
//! proxy name, a comparison of the control plane's config for it with the
//! proxy's own config dump.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use anyhow::Context;
use serde::Deserialize;

use crate::http_get::get_json;
use crate::sync::{SyncReport, SyncedProxy, TypeSync};
use crate::text_table::align;

/// Shows each proxy's sync state with the control plane.
#[derive(Clone, Debug, clap::Args)]
pub struct ProxyStatusArgs {
    /// A proxy (`POD.NAMESPACE`, as listed): compare the control plane's
    /// config for it with what the proxy reports in its config dump.
    pub proxy: Option<String>,
    /// The control plane's monitoring address (Istio's port 15014).
    #[arg(long, default_value = "127.0.0.1:15014", value_name = "HOST:PORT")]
    pub control_plane: SocketAddr,
    /// Admin port of the proxies, on their own address.
    #[arg(long, default_value_t = 15000)]
    pub proxy_admin_port: u16,
    /// Also show each resource type's sync state (SYNCED, NOT SENT, STALE).
    #[arg(short, long)]
    pub verbose: bool,
}

const TYPES: [(&str, &str); 4] = [
    ("CDS", "type.googleapis.com/envoy.config.cluster.v3.Cluster"),
    (
        "LDS",
        "type.googleapis.com/envoy.config.listener.v3.Listener",
    ),
    (
        "EDS",
        "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment",
    ),
    (
        "RDS",
        "type.googleapis.com/envoy.config.route.v3.RouteConfiguration",
    ),
];

pub async fn run_proxy_status(args: ProxyStatusArgs) -> anyhow::Result<()> {
    let report: SyncReport = get_json(args.control_plane, "/debug/syncz")
        .await
        .with_context(|| format!("asking the control plane at {}", args.control_plane))?;
    match &args.proxy {
        None => print!("{}", table(&report, args.verbose)),
        Some(name) => {
            let proxy = report
                .proxies
                .iter()
                .find(|p| p.name() == *name || p.node_id == *name)
                .with_context(|| format!("no proxy {name} is connected to the control plane"))?;
            print!("{}", compare(&args, proxy).await?);
        }
    }
    Ok(())
}

/// istioctl's columns, aligned like its tabwriter output, with each
/// proxy's revision beside its version.
pub fn table(report: &SyncReport, verbose: bool) -> String {
    let mut header = vec![
        "NAME",
        "CLUSTER",
        "ISTIOD",
        "VERSION",
        "REVISION",
        "SUBSCRIBED TYPES",
    ];
    if verbose {
        header.extend(TYPES.iter().map(|(short, _)| *short));
    }
    let mut rows = vec![header.iter().map(|h| h.to_string()).collect::<Vec<_>>()];
    for proxy in &report.proxies {
        let subscribed: Vec<&str> = TYPES
            .iter()
            .filter(|(_, url)| proxy.types.contains_key(*url))
            .map(|(short, _)| *short)
            .collect();
        let mut row = vec![
            proxy.name(),
            proxy.cluster_id.clone(),
            report.control_plane.clone(),
            proxy.proxy_version.clone(),
            proxy.revision.clone(),
            format!("{} ({})", subscribed.len(), subscribed.join(",")),
        ];
        if verbose {
            row.extend(
                TYPES
                    .iter()
                    .map(|(_, url)| sync_state(proxy.types.get(*url))),
            );
        }
        rows.push(row);
    }
    align(&rows)
}

/// Istio's words: SYNCED, NOT SENT, or STALE (with the rejection, if any).
fn sync_state(status: Option<&TypeSync>) -> String {
    match status {
        None => "NOT SENT".into(),
        Some(s) if s.sent_version.is_empty() => "NOT SENT".into(),
        Some(s) if s.sent_version == s.acked_version && s.last_nack.is_none() => "SYNCED".into(),
        Some(TypeSync {
            last_nack: Some(error),
            ..
        }) => format!("STALE ({error})"),
        Some(_) => "STALE".into(),
    }
}

#[derive(Deserialize)]
struct ProxyDump {
    configs: Vec<serde_json::Value>,
}

/// Compares, per type, the resources the control plane would send now with
/// the proxy's config dump, as `istioctl proxy-status POD` does.
async fn compare(args: &ProxyStatusArgs, proxy: &SyncedProxy) -> anyhow::Result<String> {
    let expected: BTreeMap<String, BTreeMap<String, serde_json::Value>> = get_json(
        args.control_plane,
        &format!("/debug/config_dump?proxyID={}", proxy.node_id),
    )
    .await?;
    let ip = proxy
        .ip()
        .with_context(|| format!("no address in node id {}", proxy.node_id))?;
    let dump: ProxyDump = get_json(SocketAddr::new(ip, args.proxy_admin_port), "/config_dump")
        .await
        .with_context(|| format!("reading the config dump of {}", proxy.name()))?;
    let mut out = String::new();
    for (label, type_url, list, key) in [
        ("Clusters", TYPES[0].1, "dynamic_active_clusters", "cluster"),
        ("Listeners", TYPES[1].1, "dynamic_listeners", "active_state"),
        (
            "Routes",
            TYPES[3].1,
            "dynamic_route_configs",
            "route_config",
        ),
    ] {
        let actual = dumped(&dump, list, key);
        let wanted = expected.get(type_url).cloned().unwrap_or_default();
        if actual == wanted {
            out.push_str(&format!("{label} Match\n"));
            continue;
        }
        out.push_str(&format!("{label} Don't Match\n"));
        for (name, _) in wanted.iter().filter(|(n, v)| actual.get(*n) != Some(v)) {
            let mark = if actual.contains_key(name) { "~" } else { "+" };
            out.push_str(&format!("  {mark} {name}\n"));
        }
        for name in actual.keys().filter(|n| !wanted.contains_key(*n)) {
            out.push_str(&format!("  - {name}\n"));
        }
    }
    Ok(out)
}

fn dumped(dump: &ProxyDump, list: &str, key: &str) -> BTreeMap<String, serde_json::Value> {
    dump.configs
        .iter()
        .filter_map(|section| section.get(list)?.as_array())
        .flatten()
        .filter_map(|entry| {
            let resource = entry.get(key)?;
            let name = resource.get("name")?.as_str()?.to_string();
            Some((name, resource.clone()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proxy(id: &str, types: &[(&str, &str, &str, Option<&str>)]) -> SyncedProxy {
        SyncedProxy {
            node_id: id.into(),
            cluster_id: "Kubernetes".into(),
            proxy_version: "1.24.2".into(),
            revision: "canary".into(),
            types: types
                .iter()
                .map(|(url, sent, acked, nack)| {
                    let status = TypeSync {
                        sent_version: sent.to_string(),
                        acked_version: acked.to_string(),
                        last_nack: nack.map(str::to_string),
                    };
                    (url.to_string(), status)
                })
                .collect(),
        }
    }

    #[test]
    fn lists_proxies_in_istioctl_columns_and_states() {
        let report = SyncReport {
            control_plane: "trellis@127.0.0.1".into(),
            proxies: vec![proxy(
                "sidecar~127.42.0.7~productpage-v1-0.default~default.svc.cluster.local",
                &[
                    (TYPES[0].1, "v2", "v2", None),
                    (TYPES[1].1, "v3", "v1", Some("listener x: unsupported")),
                ],
            )],
        };
        let text = table(&report, true);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("NAME"), "{text}");
        assert!(lines[1].starts_with("productpage-v1-0.default"), "{text}");
        // Each proxy's version and revision sit under their headers.
        for (header, cell) in [("VERSION", "1.24.2"), ("REVISION", "canary")] {
            assert_eq!(lines[0].find(header), lines[1].find(cell), "{text}");
        }
        assert!(lines[1].contains("2 (CDS,LDS)"), "{text}");
        assert!(lines[1].contains("SYNCED"), "{text}");
        assert!(
            lines[1].contains("STALE (listener x: unsupported)"),
            "{text}"
        );
        assert!(lines[1].contains("NOT SENT"), "{text}");
    }
}
