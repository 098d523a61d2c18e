//! What the simulated proxies observe, shared by all of them: per proxy,
//! when it first heard from the control plane after the last mark and
//! when it last ACKed; globally, bytes and responses received.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// Times are nanoseconds since `start`; 0 means "not yet".
pub struct Recorder {
    start: Instant,
    mark: AtomicU64,
    proxies: Vec<ProxyRecord>,
    bytes: AtomicU64,
    responses: AtomicU64,
    last_response: AtomicU64,
}

#[derive(Default)]
struct ProxyRecord {
    first_response: AtomicU64,
    last_ack: AtomicU64,
    /// Resource types ACKed at least once (bit per type), for readiness.
    acked_types: AtomicU64,
}

/// Time-to-ACK figures over the proxies that received something since a mark.
#[derive(Debug, serde::Serialize)]
pub struct Window {
    pub affected: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// From the first response any proxy received to the last ACK: the
    /// push's own duration, without the config watch and debounce.
    pub push_spread_ms: f64,
    pub bytes: u64,
    pub responses: u64,
}

impl Recorder {
    pub fn new(proxies: usize) -> Self {
        Recorder {
            start: Instant::now(),
            mark: AtomicU64::new(1),
            proxies: (0..proxies).map(|_| ProxyRecord::default()).collect(),
            bytes: AtomicU64::new(0),
            responses: AtomicU64::new(0),
            last_response: AtomicU64::new(0),
        }
    }

    fn now(&self) -> u64 {
        (self.start.elapsed().as_nanos() as u64).max(1)
    }

    pub fn received(&self, proxy: usize, bytes: u64) {
        let now = self.now();
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        self.responses.fetch_add(1, Ordering::Relaxed);
        self.last_response.store(now, Ordering::Relaxed);
        let record = &self.proxies[proxy];
        let _ =
            record
                .first_response
                .compare_exchange(0, now, Ordering::Relaxed, Ordering::Relaxed);
    }

    pub fn acked(&self, proxy: usize, type_bit: u64) {
        let record = &self.proxies[proxy];
        record.last_ack.store(self.now(), Ordering::Relaxed);
        record.acked_types.fetch_or(type_bit, Ordering::Relaxed);
    }

    /// Proxies that ACKed every type in `all_types` at least once.
    pub fn ready(&self, all_types: u64) -> usize {
        self.proxies
            .iter()
            .filter(|p| p.acked_types.load(Ordering::Relaxed) & all_types == all_types)
            .count()
    }

    /// Milliseconds since the last response reached any proxy.
    pub fn quiet_ms(&self) -> f64 {
        let last = self.last_response.load(Ordering::Relaxed);
        (self.now().saturating_sub(last)) as f64 / 1e6
    }

    /// Bytes of resources received so far, by every proxy together.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Starts a new measurement window: a config change is about to happen.
    pub fn mark(&self) -> (u64, u64) {
        for record in &self.proxies {
            record.first_response.store(0, Ordering::Relaxed);
            record.last_ack.store(0, Ordering::Relaxed);
        }
        self.mark.store(self.now(), Ordering::Relaxed);
        (
            self.bytes.load(Ordering::Relaxed),
            self.responses.load(Ordering::Relaxed),
        )
    }

    pub fn window(&self, since: (u64, u64)) -> Window {
        let mark = self.mark.load(Ordering::Relaxed);
        let mut to_ack: Vec<u64> = Vec::new();
        let mut first_push = u64::MAX;
        for record in &self.proxies {
            let first = record.first_response.load(Ordering::Relaxed);
            let ack = record.last_ack.load(Ordering::Relaxed);
            if first == 0 || ack == 0 {
                continue;
            }
            first_push = first_push.min(first);
            to_ack.push(ack.saturating_sub(mark));
        }
        to_ack.sort_unstable();
        let ms = |nanos: u64| nanos as f64 / 1e6;
        let at = |q: f64| {
            to_ack
                .get(((to_ack.len() as f64 * q).ceil() as usize).saturating_sub(1))
                .copied()
                .map_or(0.0, ms)
        };
        let last = to_ack.last().copied().unwrap_or(0);
        Window {
            affected: to_ack.len(),
            p50_ms: at(0.5),
            p99_ms: at(0.99),
            max_ms: ms(last),
            push_spread_ms: if to_ack.is_empty() {
                0.0
            } else {
                ms((mark + last).saturating_sub(first_push))
            },
            bytes: self.bytes.load(Ordering::Relaxed) - since.0,
            responses: self.responses.load(Ordering::Relaxed) - since.1,
        }
    }
}

/// This process's CPU time (user + system), in seconds, from /proc.
pub fn own_cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the parenthesised command name; utime and stime are
    // the 14th and 15th fields, in clock ticks (100 per second on Linux).
    let Some(rest) = stat.rsplit_once(')').map(|(_, rest)| rest) else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_counts_only_proxies_that_heard_and_acked() {
        let recorder = Recorder::new(3);
        let since = recorder.mark();
        recorder.received(0, 100);
        recorder.acked(0, 1);
        recorder.received(1, 50); // never ACKs
        let window = recorder.window(since);
        assert_eq!(window.affected, 1);
        assert_eq!(window.bytes, 150);
        assert_eq!(window.responses, 2);
        assert!(window.max_ms >= window.p50_ms);
        assert_eq!(recorder.ready(1), 1);
        assert_eq!(recorder.ready(3), 0);
    }

    #[test]
    fn reads_own_cpu() {
        let spent = (0..200_000u64).fold(0u64, |a, b| a.wrapping_mul(31).wrapping_add(b));
        assert!(spent > 0);
        assert!(own_cpu_seconds() >= 0.0);
    }
}
