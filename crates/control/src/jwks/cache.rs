//! The keys of every wanted source, each kept fresh by its own task:
//! fetched at once, then every refresh interval; after a failure, retried
//! sooner with exponential backoff while the last good keys stay in use.
//! Subscribers see the whole map change only when some source's keys did.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;
use tokio::sync::watch;
use tokio::task::AbortHandle;

use super::JwksSource;
use super::fetch::FetchJwks;

/// Canonical JWKS by source, for the sources fetched successfully at least once.
pub type ResolvedKeys = BTreeMap<JwksSource, Arc<str>>;

/// When keys are fetched again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefreshPolicy {
    /// After a success (Istio's `PILOT_JWT_PUB_KEY_REFRESH_INTERVAL`).
    pub interval: Duration,
    /// After a first failure; doubled after each further one, up to `interval`.
    pub first_retry: Duration,
}

impl RefreshPolicy {
    pub fn new(interval: Duration) -> RefreshPolicy {
        RefreshPolicy {
            interval,
            first_retry: Duration::from_secs(1).min(interval),
        }
    }

    /// The wait after `failures` (at least 1) failures in a row.
    pub fn retry_delay(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(31);
        self.first_retry
            .saturating_mul(1 << doublings)
            .min(self.interval)
    }
}

/// Istio's resolver counters, on the control plane's `/metrics`.
#[derive(Clone, Default)]
pub struct JwksMetrics {
    pub fetch_successes: Counter,
    pub fetch_failures: Counter,
}

impl JwksMetrics {
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "pilot_jwks_resolver_network_fetch_success",
            "Total number of successfully fetched JWKS from jwksUri",
            self.fetch_successes.clone(),
        );
        registry.register(
            "pilot_jwks_resolver_network_fetch_fail",
            "Total number of failed fetches of JWKS from jwksUri",
            self.fetch_failures.clone(),
        );
    }
}

pub struct JwksCache<F> {
    shared: Arc<Shared<F>>,
}

struct Shared<F> {
    fetcher: F,
    policy: RefreshPolicy,
    metrics: JwksMetrics,
    keys: watch::Sender<Arc<ResolvedKeys>>,
    refreshers: Mutex<Refreshers>,
}

#[derive(Default)]
struct Refreshers {
    by_source: BTreeMap<JwksSource, Refresher>,
    /// Tells a refresher from its replacement, so a fetch that lands after
    /// its source was dropped or its timeout changed is discarded.
    next_id: u64,
}

struct Refresher {
    id: u64,
    timeout: Duration,
    task: AbortHandle,
}

impl<F: FetchJwks> JwksCache<F> {
    pub fn new(fetcher: F, policy: RefreshPolicy, metrics: JwksMetrics) -> JwksCache<F> {
        let shared = Shared {
            fetcher,
            policy,
            metrics,
            keys: watch::Sender::new(Arc::default()),
            refreshers: Mutex::default(),
        };
        JwksCache {
            shared: Arc::new(shared),
        }
    }

    /// Changes each time some source's keys change.
    pub fn subscribe(&self) -> watch::Receiver<Arc<ResolvedKeys>> {
        self.shared.keys.subscribe()
    }

    /// Keeps exactly `wanted` (source -> fetch timeout) fresh: new sources
    /// are fetched at once, sources no longer wanted are forgotten with their
    /// keys. Must be called within a tokio runtime.
    pub fn want(&self, wanted: &BTreeMap<JwksSource, Duration>) {
        let mut refreshers = self.shared.lock();
        let stale: Vec<JwksSource> = refreshers
            .by_source
            .iter()
            .filter(|(source, refresher)| wanted.get(*source) != Some(&refresher.timeout))
            .map(|(source, _)| source.clone())
            .collect();
        for source in &stale {
            if let Some(refresher) = refreshers.by_source.remove(source) {
                refresher.task.abort();
            }
        }
        self.shared.keys.send_if_modified(|keys| {
            if keys.keys().all(|source| wanted.contains_key(source)) {
                return false;
            }
            let kept = keys
                .iter()
                .filter(|(source, _)| wanted.contains_key(*source))
                .map(|(source, jwks)| (source.clone(), jwks.clone()))
                .collect();
            *keys = Arc::new(kept);
            true
        });
        for (source, &timeout) in wanted {
            if refreshers.by_source.contains_key(source) {
                continue;
            }
            let id = refreshers.next_id;
            refreshers.next_id += 1;
            let task = tokio::spawn(refresh(self.shared.clone(), id, source.clone(), timeout));
            let refresher = Refresher {
                id,
                timeout,
                task: task.abort_handle(),
            };
            refreshers.by_source.insert(source.clone(), refresher);
        }
    }
}

impl<F> Drop for JwksCache<F> {
    fn drop(&mut self) {
        for refresher in self.shared.lock().by_source.values() {
            refresher.task.abort();
        }
    }
}

impl<F> Shared<F> {
    fn lock(&self) -> MutexGuard<'_, Refreshers> {
        // The lock guards no invariant a panicking holder could break.
        self.refreshers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Publishes `jwks` for `source` if refresher `id` is still the one in
    /// charge of it and the keys are new.
    fn store(&self, id: u64, source: &JwksSource, jwks: String) {
        let refreshers = self.lock();
        if refreshers.by_source.get(source).map(|r| r.id) != Some(id) {
            return;
        }
        self.keys.send_if_modified(|keys| {
            if keys.get(source).is_some_and(|old| **old == *jwks) {
                return false;
            }
            tracing::info!(%source, "JWKS fetched (new keys)");
            Arc::make_mut(keys).insert(source.clone(), jwks.into());
            true
        });
    }

    fn has_keys(&self, source: &JwksSource) -> bool {
        self.keys.borrow().contains_key(source)
    }
}

async fn refresh<F: FetchJwks>(
    shared: Arc<Shared<F>>,
    id: u64,
    source: JwksSource,
    timeout: Duration,
) {
    let mut failures = 0u32;
    loop {
        match shared.fetcher.fetch(&source, timeout).await {
            Ok(jwks) => {
                failures = 0;
                shared.metrics.fetch_successes.inc();
                shared.store(id, &source, jwks);
            }
            Err(error) => {
                failures = failures.saturating_add(1);
                shared.metrics.fetch_failures.inc();
                let retry = shared.policy.retry_delay(failures);
                tracing::warn!(
                    %source,
                    %error,
                    failures,
                    retry_in = ?retry,
                    keeping_last_good_keys = shared.has_keys(&source),
                    "fetching JWKS failed"
                );
            }
        }
        let delay = match failures {
            0 => shared.policy.interval,
            n => shared.policy.retry_delay(n),
        };
        tokio::time::sleep(delay).await;
    }
}

#[cfg(test)]
#[path = "cache_tests.rs"]
mod tests;
