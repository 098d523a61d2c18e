//! A bounded in-memory time series store of the request counters every
//! sidecar reports: one ring of points per (proxy, edge) series, one point
//! per scrape round, a cap on the number of series (what does not fit is
//! counted and dropped), and the series of proxies that went away removed.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;

/// What distinguishes one edge of the service graph, as the destination
/// sidecar reports it (Istio's `reporter="destination"`, as Kiali reads).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EdgeLabels {
    pub source_workload: String,
    pub source_namespace: String,
    pub destination_workload: String,
    pub destination_namespace: String,
    pub destination_version: String,
    pub service_name: String,
    pub service_namespace: String,
    /// Istio's `connection_security_policy`: `mutual_tls`, `none`, `unknown`.
    pub security_policy: String,
}

/// Cumulative counters of one series at one scrape.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Counters {
    pub requests: f64,
    /// Requests answered 5xx.
    pub server_errors: f64,
    /// Requests an AuthorizationPolicy refused: response flag `RBAC`.
    pub rbac_denied: f64,
    /// Requests an external authorizer refused: response flag `UAEX`.
    pub ext_authz_denied: f64,
    /// Cumulative histogram buckets of request duration (ms), by upper
    /// bound, ascending; the last is `+Inf`.
    pub buckets: Vec<(f64, f64)>,
}

impl Counters {
    /// What was counted since `previous`. Counters only go down when the
    /// proxy restarted, and then everything counted so far is new.
    pub fn since(&self, previous: &Counters) -> Counters {
        let same_buckets = self.buckets.len() == previous.buckets.len()
            && self.buckets.iter().zip(&previous.buckets).all(|(a, b)| {
                a.0 == b.0 && a.1 >= b.1 // same bound, not reset
            });
        let reset = self.requests < previous.requests
            || self.server_errors < previous.server_errors
            || self.rbac_denied < previous.rbac_denied
            || self.ext_authz_denied < previous.ext_authz_denied
            || !same_buckets;
        if reset {
            return self.clone();
        }
        Counters {
            requests: self.requests - previous.requests,
            server_errors: self.server_errors - previous.server_errors,
            rbac_denied: self.rbac_denied - previous.rbac_denied,
            ext_authz_denied: self.ext_authz_denied - previous.ext_authz_denied,
            buckets: self
                .buckets
                .iter()
                .zip(&previous.buckets)
                .map(|(now, before)| (now.0, now.1 - before.1))
                .collect(),
        }
    }

    /// Adds `other` (the same edge seen in another series, or another step).
    pub fn add(&mut self, other: &Counters) {
        self.requests += other.requests;
        self.server_errors += other.server_errors;
        self.rbac_denied += other.rbac_denied;
        self.ext_authz_denied += other.ext_authz_denied;
        if self.buckets.is_empty() {
            self.buckets = other.buckets.clone();
        } else if self
            .buckets
            .iter()
            .map(|b| b.0)
            .eq(other.buckets.iter().map(|b| b.0))
        {
            for (mine, theirs) in self.buckets.iter_mut().zip(&other.buckets) {
                mine.1 += theirs.1;
            }
        }
    }
}

/// One scrape round: every proxy scraped at about the same time.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Round {
    pub number: u64,
    /// Milliseconds since the Unix epoch.
    pub at_ms: u64,
}

#[derive(Debug)]
struct Point {
    round: u64,
    counters: Counters,
}

/// What the store reports about itself on the monitoring port.
#[derive(Clone, Debug, Default)]
pub struct StoreMetrics {
    /// Series not kept because the cap was reached.
    pub dropped: Counter,
    /// Series kept.
    pub series: Gauge,
}

/// What a proxy answered in one round: its counters by edge.
pub type ProxyScrape = HashMap<EdgeLabels, Counters>;

#[derive(Debug)]
pub struct Store {
    rounds: VecDeque<Round>,
    capacity: usize,
    max_series: usize,
    series: HashMap<(String, EdgeLabels), VecDeque<Point>>,
    /// The first round each live proxy was scraped in.
    proxies: HashMap<String, u64>,
    metrics: StoreMetrics,
}

impl Store {
    /// Keeps `retention / interval` rounds and at most `max_series` series;
    /// series refused for the cap are counted in `metrics`.
    pub fn new(
        retention: Duration,
        interval: Duration,
        max_series: usize,
        metrics: StoreMetrics,
    ) -> Self {
        let capacity = (retention.as_millis() / interval.as_millis().max(1)).max(2) as usize;
        Store {
            rounds: VecDeque::with_capacity(capacity),
            capacity,
            max_series,
            series: HashMap::new(),
            proxies: HashMap::new(),
            metrics,
        }
    }

    /// Records one round: `scrapes` of the proxies that answered, by node
    /// id; `connected` are all proxies still connected (those that did not
    /// answer this time keep their history; the others' is dropped).
    pub fn record(
        &mut self,
        at_ms: u64,
        scrapes: Vec<(String, ProxyScrape)>,
        connected: &BTreeSet<String>,
    ) {
        let number = self.rounds.back().map_or(0, |r| r.number + 1);
        self.rounds.push_back(Round { number, at_ms });
        while self.rounds.len() > self.capacity {
            self.rounds.pop_front();
        }
        let oldest = self.rounds.front().map_or(0, |r| r.number);
        self.proxies.retain(|proxy, _| connected.contains(proxy));
        self.series.retain(|(proxy, _), points| {
            while points.front().is_some_and(|p| p.round < oldest) {
                points.pop_front();
            }
            connected.contains(proxy) && !points.is_empty()
        });
        for (proxy, scrape) in scrapes {
            self.record_proxy(number, proxy, scrape);
        }
        self.metrics.series.set(self.series.len() as i64);
    }

    fn record_proxy(&mut self, round: u64, proxy: String, scrape: ProxyScrape) {
        let first_round = *self.proxies.entry(proxy.clone()).or_insert(round);
        for (labels, counters) in scrape {
            let key = (proxy.clone(), labels);
            if !self.series.contains_key(&key) && self.series.len() >= self.max_series {
                self.metrics.dropped.inc();
                continue;
            }
            let points = self.series.entry(key).or_default();
            if points.is_empty() && first_round < round {
                // A series that appeared while its proxy was being watched
                // started from zero since the last round: count all of it.
                points.push_back(Point {
                    round: round - 1,
                    counters: Counters::default(),
                });
            }
            points.push_back(Point { round, counters });
        }
    }

    pub fn rounds(&self) -> impl DoubleEndedIterator<Item = &Round> + ExactSizeIterator {
        self.rounds.iter()
    }

    /// Connected proxies scraped at least once: counters a proxy had at
    /// its first scrape are history, not a rate, so traffic shows from
    /// the round after.
    pub fn proxies_watched(&self) -> usize {
        self.proxies.len()
    }

    #[cfg(test)]
    pub fn series_count(&self) -> usize {
        self.series.len()
    }

    /// What each series counted in each round after `after_round`, by the
    /// round it was seen in (a round a proxy missed folds into the next).
    pub fn increases(
        &self,
        after_round: u64,
    ) -> impl Iterator<Item = (&EdgeLabels, u64, Counters)> {
        self.series.iter().flat_map(move |((_, labels), points)| {
            let pairs = points.iter().zip(points.iter().skip(1));
            pairs
                .filter(move |(_, now)| now.round > after_round)
                .map(move |(before, now)| (labels, now.round, now.counters.since(&before.counters)))
        })
    }
}

#[cfg(test)]
#[path = "store_tests.rs"]
pub(super) mod tests;
