//! The refresh schedule under paused tokio time: sleeps advance the clock
//! at once, so the tests are exact and fast.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use super::*;
use crate::jwks::JwksSource;
use crate::jwks::fetch::FetchError;

const URI: &str = "https://issuer.example/jwks";
const INTERVAL: Duration = Duration::from_secs(20 * 60);
const FIRST_KEYS: &str = r#"{"keys":[{"kid":"1"}]}"#;
const SECOND_KEYS: &str = r#"{"keys":[{"kid":"2"}]}"#;

/// Answers every fetch with the current `answer`, and records when it was asked.
#[derive(Clone, Default)]
struct FakeServer {
    state: Arc<Mutex<FakeState>>,
}

#[derive(Default)]
struct FakeState {
    answer: Option<&'static str>,
    fetched_at: Vec<Instant>,
}

impl FakeServer {
    fn serving(keys: Option<&'static str>) -> FakeServer {
        let server = FakeServer::default();
        server.serve(keys);
        server
    }

    /// `None`: the server is down.
    fn serve(&self, keys: Option<&'static str>) {
        self.state.lock().unwrap().answer = keys;
    }

    fn fetches(&self) -> Vec<Instant> {
        self.state.lock().unwrap().fetched_at.clone()
    }
}

impl FetchJwks for FakeServer {
    async fn fetch(&self, source: &JwksSource, timeout: Duration) -> Result<String, FetchError> {
        assert_eq!(*source, source_at(URI));
        let mut state = self.state.lock().unwrap();
        state.fetched_at.push(Instant::now());
        state
            .answer
            .map(str::to_string)
            .ok_or(FetchError::Timeout(timeout))
    }
}

fn cache(server: &FakeServer) -> (JwksCache<FakeServer>, JwksMetrics) {
    let metrics = JwksMetrics::default();
    let cache = JwksCache::new(
        server.clone(),
        RefreshPolicy::new(INTERVAL),
        metrics.clone(),
    );
    (cache, metrics)
}

fn source_at(uri: &str) -> JwksSource {
    JwksSource::Uri(uri.into())
}

fn wanted(uris: &[&str]) -> BTreeMap<JwksSource, Duration> {
    uris.iter()
        .map(|uri| (source_at(uri), Duration::from_secs(5)))
        .collect()
}

fn keys_at(cache: &JwksCache<FakeServer>, uri: &str) -> Option<String> {
    cache
        .subscribe()
        .borrow()
        .get(&source_at(uri))
        .map(|k| k.to_string())
}

fn gaps(instants: &[Instant]) -> Vec<Duration> {
    instants.windows(2).map(|w| w[1] - w[0]).collect()
}

#[tokio::test(start_paused = true)]
async fn fetches_at_once_then_every_interval() {
    let server = FakeServer::serving(Some(FIRST_KEYS));
    let (cache, metrics) = cache(&server);
    let mut changes = cache.subscribe();
    cache.want(&wanted(&[URI]));
    changes.changed().await.unwrap();
    assert_eq!(keys_at(&cache, URI).as_deref(), Some(FIRST_KEYS));

    server.serve(Some(SECOND_KEYS));
    changes.changed().await.unwrap();
    assert_eq!(keys_at(&cache, URI).as_deref(), Some(SECOND_KEYS));
    assert_eq!(gaps(&server.fetches()), [INTERVAL]);

    tokio::time::sleep(INTERVAL * 3 + Duration::from_secs(1)).await;
    assert!(
        !changes.has_changed().unwrap(),
        "the same keys again are no change"
    );
    assert_eq!(server.fetches().len(), 5);
    assert_eq!(metrics.fetch_successes.get(), 5);
    assert_eq!(metrics.fetch_failures.get(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_failing_server_is_retried_with_backoff_and_the_last_keys_stay() {
    let server = FakeServer::serving(Some(FIRST_KEYS));
    let (cache, metrics) = cache(&server);
    let mut changes = cache.subscribe();
    cache.want(&wanted(&[URI]));
    changes.changed().await.unwrap();

    server.serve(None);
    tokio::time::sleep(INTERVAL + Duration::from_secs(10)).await;
    assert_eq!(keys_at(&cache, URI).as_deref(), Some(FIRST_KEYS));
    let secs = Duration::from_secs;
    // Refresh at INTERVAL fails; retries 1 s, 2 s, 4 s later, then 8 s
    // later (past the sleep).
    assert_eq!(
        gaps(&server.fetches()),
        [INTERVAL, secs(1), secs(2), secs(4)]
    );
    assert_eq!(metrics.fetch_failures.get(), 4);
    assert!(!changes.has_changed().unwrap());

    server.serve(Some(SECOND_KEYS));
    changes.changed().await.unwrap();
    assert_eq!(keys_at(&cache, URI).as_deref(), Some(SECOND_KEYS));
    let fetches = server.fetches();
    assert_eq!(gaps(&fetches).last(), Some(&secs(8)));
    tokio::time::sleep(INTERVAL + Duration::from_secs(1)).await;
    assert_eq!(
        gaps(&server.fetches()).last(),
        Some(&INTERVAL),
        "back to the normal interval after a success"
    );
}

#[tokio::test(start_paused = true)]
async fn keys_never_fetched_stay_absent_until_the_server_answers() {
    let server = FakeServer::serving(None);
    let (cache, metrics) = cache(&server);
    let mut changes = cache.subscribe();
    cache.want(&wanted(&[URI]));
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(keys_at(&cache, URI), None, "fail closed: no keys");
    assert_eq!(metrics.fetch_failures.get(), 2);

    server.serve(Some(FIRST_KEYS));
    changes.changed().await.unwrap();
    assert_eq!(keys_at(&cache, URI).as_deref(), Some(FIRST_KEYS));
}

#[tokio::test(start_paused = true)]
async fn uris_no_longer_wanted_are_forgotten_and_not_fetched() {
    let server = FakeServer::serving(Some(FIRST_KEYS));
    let (cache, _) = cache(&server);
    let mut changes = cache.subscribe();
    cache.want(&wanted(&[URI]));
    changes.changed().await.unwrap();

    cache.want(&wanted(&[]));
    assert!(changes.has_changed().unwrap());
    assert!(changes.borrow_and_update().is_empty());
    tokio::time::sleep(INTERVAL * 2).await;
    assert_eq!(server.fetches().len(), 1);

    cache.want(&wanted(&[URI]));
    changes.changed().await.unwrap();
    assert_eq!(keys_at(&cache, URI).as_deref(), Some(FIRST_KEYS));
    assert_eq!(server.fetches().len(), 2, "wanted again: fetched at once");
}

#[tokio::test(start_paused = true)]
async fn wanting_the_same_uris_again_fetches_nothing_new() {
    let server = FakeServer::serving(Some(FIRST_KEYS));
    let (cache, _) = cache(&server);
    let mut changes = cache.subscribe();
    cache.want(&wanted(&[URI]));
    changes.changed().await.unwrap();
    cache.want(&wanted(&[URI]));
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(server.fetches().len(), 1);
    assert!(!changes.has_changed().unwrap());
}

#[test]
fn retry_delays_double_up_to_the_refresh_interval() {
    let policy = RefreshPolicy::new(Duration::from_secs(20));
    let delays: Vec<u64> = (1..=7)
        .map(|failures| policy.retry_delay(failures).as_secs())
        .collect();
    assert_eq!(delays, [1, 2, 4, 8, 16, 20, 20]);
    assert_eq!(policy.retry_delay(u32::MAX), Duration::from_secs(20));
    let short = RefreshPolicy::new(Duration::from_millis(300));
    assert_eq!(short.retry_delay(1), Duration::from_millis(300));
}
