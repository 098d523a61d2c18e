//! What the dashboard shows, computed from the store: the service graph
//! over a window and one service's golden signals over time.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use serde::Serialize;

use super::store::{Counters, EdgeLabels, Round, Store};

/// The quantile of a cumulative histogram, interpolated linearly inside
/// its bucket as Prometheus' `histogram_quantile` does; a quantile in the
/// `+Inf` bucket is the largest finite bound. `None` without observations.
pub fn quantile(q: f64, buckets: &[(f64, f64)]) -> Option<f64> {
    let total = buckets.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let mut lower = (0.0, 0.0);
    for &(bound, count) in buckets {
        if count >= rank {
            if bound.is_infinite() {
                return Some(lower.0);
            }
            let in_bucket = count - lower.1;
            let fraction = if in_bucket > 0.0 {
                (rank - lower.1) / in_bucket
            } else {
                1.0
            };
            return Some(lower.0 + (bound - lower.0) * fraction);
        }
        lower = (bound, count);
    }
    Some(lower.0)
}

/// The rounds a window covers: the last one, and the latest one at least
/// `window` older (or the oldest kept). `None` before two rounds exist.
pub(super) fn window_rounds(store: &Store, window: Duration) -> Option<(Round, Round)> {
    let last = *store.rounds().next_back()?;
    let start = last.at_ms.saturating_sub(window.as_millis() as u64);
    let first = store
        .rounds()
        .rev()
        .find(|round| round.at_ms <= start)
        .or_else(|| store.rounds().next())
        .copied()?;
    // A wall clock set back makes no window until it passes `first` again.
    (first.number < last.number && first.at_ms < last.at_ms).then_some((first, last))
}

#[derive(Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Graph {
    pub window_seconds: f64,
    /// Connected proxies the dashboard has scraped.
    pub proxies: usize,
    pub nodes: Vec<Node>,
    pub edges: Vec<Edge>,
}

#[derive(Debug, Serialize, PartialEq, Eq, PartialOrd, Ord, Clone)]
#[serde(rename_all = "camelCase")]
pub struct Node {
    pub id: String,
    /// `workload` or `service`.
    pub kind: &'static str,
    pub name: String,
    pub namespace: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

#[derive(Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Edge {
    pub source: String,
    pub target: String,
    #[serde(flatten)]
    pub signals: Signals,
    /// `mutual_tls` when every request was, `none` when none was,
    /// `mixed` otherwise (Istio's `connection_security_policy`).
    pub security: &'static str,
}

/// Rate, errors and latency of some requests.
#[derive(Debug, Serialize, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Signals {
    pub requests_per_second: f64,
    /// Share of requests answered 5xx (0 to 1).
    pub error_rate: f64,
    pub p50_ms: Option<f64>,
    pub p90_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

impl Signals {
    fn of(counters: &Counters, seconds: f64) -> Signals {
        let requests = counters.requests;
        Signals {
            requests_per_second: if seconds > 0.0 {
                requests / seconds
            } else {
                0.0
            },
            error_rate: if requests > 0.0 {
                counters.server_errors / requests
            } else {
                0.0
            },
            p50_ms: quantile(0.5, &counters.buckets),
            p90_ms: quantile(0.9, &counters.buckets),
            p99_ms: quantile(0.99, &counters.buckets),
        }
    }
}

#[derive(Default)]
struct EdgeTotals {
    counters: Counters,
    mutual_tls: f64,
}

impl EdgeTotals {
    fn add(&mut self, labels: &EdgeLabels, counters: &Counters) {
        self.counters.add(counters);
        if labels.security_policy == "mutual_tls" {
            self.mutual_tls += counters.requests;
        }
    }

    fn security(&self) -> &'static str {
        match self.mutual_tls {
            all if all >= self.counters.requests => "mutual_tls",
            none if none <= 0.0 => "none",
            _ => "mixed",
        }
    }
}

fn workload_node(name: &str, namespace: &str, version: Option<&str>) -> Node {
    Node {
        id: format!("workload/{namespace}/{name}"),
        kind: "workload",
        name: name.to_string(),
        namespace: namespace.to_string(),
        version: version
            .filter(|v| !v.is_empty() && *v != "unknown")
            .map(str::to_string),
    }
}

fn service_node(name: &str, namespace: &str) -> Node {
    Node {
        id: format!("service/{namespace}/{name}"),
        kind: "service",
        name: name.to_string(),
        namespace: namespace.to_string(),
        version: None,
    }
}

/// Source workload -> service -> destination workload, for every edge that
/// carried requests in the window.
pub fn graph(store: &Store, window: Duration) -> Graph {
    let Some((first, last)) = window_rounds(store, window) else {
        return Graph {
            window_seconds: 0.0,
            proxies: store.proxies_watched(),
            nodes: Vec::new(),
            edges: Vec::new(),
        };
    };
    let seconds = (last.at_ms - first.at_ms) as f64 / 1000.0;
    let mut nodes = BTreeMap::new();
    let mut edges: BTreeMap<(String, String), EdgeTotals> = BTreeMap::new();
    for (labels, _, counters) in store.increases(first.number) {
        if counters.requests <= 0.0 {
            continue;
        }
        let source = workload_node(&labels.source_workload, &labels.source_namespace, None);
        let service = service_node(&labels.service_name, &labels.service_namespace);
        let destination = workload_node(
            &labels.destination_workload,
            &labels.destination_namespace,
            Some(&labels.destination_version),
        );
        for (from, to) in [(&source, &service), (&service, &destination)] {
            let key = (from.id.clone(), to.id.clone());
            edges.entry(key).or_default().add(labels, &counters);
        }
        for node in [source, service, destination] {
            // A workload seen as a destination carries its version.
            let kept = nodes.entry(node.id.clone()).or_insert_with(|| node.clone());
            if kept.version.is_none() {
                kept.version = node.version;
            }
        }
    }
    let edges = edges
        .into_iter()
        .map(|((source, target), totals)| Edge {
            source,
            target,
            signals: Signals::of(&totals.counters, seconds),
            security: totals.security(),
        })
        .collect();
    Graph {
        window_seconds: seconds,
        proxies: store.proxies_watched(),
        nodes: nodes.into_values().collect(),
        edges,
    }
}

#[derive(Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ServiceView {
    pub name: String,
    pub namespace: String,
    pub window_seconds: f64,
    /// Over the whole window.
    pub current: Signals,
    /// One entry per scrape round in the window.
    pub timeline: Vec<TimedSignals>,
    /// By `destination_version`, most requests first.
    pub versions: Vec<VersionView>,
}

#[derive(Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TimedSignals {
    pub at_ms: u64,
    #[serde(flatten)]
    pub signals: Signals,
}

#[derive(Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct VersionView {
    pub version: String,
    pub requests_per_second: f64,
    /// Share of the service's requests (0 to 1).
    pub share: f64,
    pub timeline: Vec<TimedRate>,
}

#[derive(Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TimedRate {
    pub at_ms: u64,
    pub requests_per_second: f64,
}

/// Narrows a service's view to one edge of the graph: the requests one
/// workload sent it (`source`), or those one of its workloads served
/// (`destination`). Workloads are named by their graph node ids
/// (`workload/NAMESPACE/NAME`).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct EdgeFilter {
    pub source: Option<String>,
    pub destination: Option<String>,
}

impl EdgeFilter {
    fn admits(&self, labels: &EdgeLabels) -> bool {
        let is = |wanted: &Option<String>, name: &str, namespace: &str| {
            wanted
                .as_deref()
                .is_none_or(|id| id == workload_node(name, namespace, None).id)
        };
        is(
            &self.source,
            &labels.source_workload,
            &labels.source_namespace,
        ) && is(
            &self.destination,
            &labels.destination_workload,
            &labels.destination_namespace,
        )
    }
}

/// One service's golden signals over `window`, in total and per version,
/// for the requests `edge` admits.
pub fn service(
    store: &Store,
    name: &str,
    namespace: &str,
    window: Duration,
    edge: &EdgeFilter,
) -> ServiceView {
    let mut view = ServiceView {
        name: name.to_string(),
        namespace: namespace.to_string(),
        window_seconds: 0.0,
        current: Signals::default(),
        timeline: Vec::new(),
        versions: Vec::new(),
    };
    let Some((first, last)) = window_rounds(store, window) else {
        return view;
    };
    let seconds = (last.at_ms - first.at_ms) as f64 / 1000.0;
    let mut total = Counters::default();
    let mut by_round: HashMap<u64, Counters> = HashMap::new();
    let mut by_version: BTreeMap<String, HashMap<u64, f64>> = BTreeMap::new();
    let increases = store.increases(first.number);
    for (labels, round, counters) in increases.filter(|(labels, _, _)| {
        labels.service_name == name && labels.service_namespace == namespace && edge.admits(labels)
    }) {
        total.add(&counters);
        by_round.entry(round).or_default().add(&counters);
        let version = match labels.destination_version.as_str() {
            "" => "unknown".to_string(),
            version => version.to_string(),
        };
        *by_version
            .entry(version)
            .or_default()
            .entry(round)
            .or_default() += counters.requests;
    }
    let steps = steps_after(store, first.number);
    view.window_seconds = seconds;
    view.current = Signals::of(&total, seconds);
    view.timeline = steps
        .iter()
        .map(|(round, step)| TimedSignals {
            at_ms: round.at_ms,
            signals: Signals::of(
                by_round.get(&round.number).unwrap_or(&Counters::default()),
                *step,
            ),
        })
        .collect();
    view.versions = by_version
        .into_iter()
        .map(|(version, rounds)| {
            let requests: f64 = rounds.values().sum();
            VersionView {
                version,
                requests_per_second: requests / seconds,
                share: requests / total.requests.max(1.0),
                timeline: steps
                    .iter()
                    .map(|(round, step)| TimedRate {
                        at_ms: round.at_ms,
                        requests_per_second: rounds.get(&round.number).unwrap_or(&0.0) / step,
                    })
                    .collect(),
            }
        })
        .collect();
    view.versions.retain(|v| v.requests_per_second > 0.0);
    view.versions.sort_by(|a, b| b.share.total_cmp(&a.share));
    view
}

/// What one service's destination sidecars counted over `window` (less
/// when less history is kept), and the seconds that covers: 0 before two
/// rounds exist.
pub fn service_totals(
    store: &Store,
    name: &str,
    namespace: &str,
    window: Duration,
) -> (f64, Counters) {
    let mut total = Counters::default();
    let Some((first, last)) = window_rounds(store, window) else {
        return (0.0, total);
    };
    for (_, _, counters) in store.increases(first.number).filter(|(labels, _, _)| {
        labels.service_name == name && labels.service_namespace == namespace
    }) {
        total.add(&counters);
    }
    ((last.at_ms - first.at_ms) as f64 / 1000.0, total)
}

/// The rounds after `after_round`, each with the seconds since the round
/// before it (what its increases are a rate over).
fn steps_after(store: &Store, after_round: u64) -> Vec<(Round, f64)> {
    store
        .rounds()
        .zip(store.rounds().skip(1))
        .filter(|(before, round)| round.number > after_round && round.at_ms > before.at_ms)
        .map(|(before, round)| (*round, (round.at_ms - before.at_ms) as f64 / 1000.0))
        .collect()
}

#[cfg(test)]
#[path = "query_tests.rs"]
mod tests;
