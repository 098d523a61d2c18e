//! Envoy's cluster circuit breakers (`Cluster.circuit_breakers`, default
//! priority): at most `max_requests` requests in flight; for HTTP/1.1,
//! where a connection carries one request at a time, at most
//! `max_connections` busy connections and `max_pending_requests` requests
//! waiting for one; at most `max_retries` retries in flight. A request
//! beyond them is refused at once (503, response flag UO).
//!
//! A cluster without `circuit_breakers` has no limits. The translator, as
//! Istio, writes every threshold on every outbound cluster (2^32-1 unless a
//! DestinationRule's connection pool sets one). Thresholds a config does
//! list without a value take Envoy's defaults (1024, and 3 retries).
//!
//! Every count is held by a guard, so a request that is cancelled, fails or
//! times out gives its slots back when it is dropped.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use envoy_types::pb::envoy::config::cluster::v3 as xds;
use envoy_types::pb::envoy::config::core::v3::RoutingPriority;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::unsupported::{Unsupported, reject_if};

const ENVOY_DEFAULT_LIMIT: u32 = 1024;
const ENVOY_DEFAULT_RETRIES: u32 = 3;

/// The default-priority thresholds of a cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Thresholds {
    pub max_connections: u32,
    pub max_pending_requests: u32,
    pub max_requests: u32,
    pub max_retries: u32,
}

impl Thresholds {
    pub const UNLIMITED: Thresholds = Thresholds {
        max_connections: u32::MAX,
        max_pending_requests: u32::MAX,
        max_requests: u32::MAX,
        max_retries: u32::MAX,
    };

    pub fn compile(breakers: Option<&xds::CircuitBreakers>) -> Result<Thresholds, Unsupported> {
        let Some(breakers) = breakers else {
            return Ok(Thresholds::UNLIMITED);
        };
        reject_if(
            !breakers.per_host_thresholds.is_empty(),
            "circuit_breakers.per_host_thresholds",
        )?;
        // Routes all run at default priority, so HIGH thresholds never apply.
        let Some(default) = breakers
            .thresholds
            .iter()
            .find(|t| t.priority == RoutingPriority::Default as i32)
        else {
            return Ok(Thresholds::UNLIMITED);
        };
        reject_if(
            default.retry_budget.is_some(),
            "circuit_breakers.thresholds.retry_budget",
        )?;
        reject_if(
            default.max_connection_pools.is_some(),
            "circuit_breakers.thresholds.max_connection_pools",
        )?;
        let limit = |value: Option<&envoy_types::pb::google::protobuf::UInt32Value>, default| {
            value.map_or(default, |v| v.value)
        };
        Ok(Thresholds {
            max_connections: limit(default.max_connections.as_ref(), ENVOY_DEFAULT_LIMIT),
            max_pending_requests: limit(default.max_pending_requests.as_ref(), ENVOY_DEFAULT_LIMIT),
            max_requests: limit(default.max_requests.as_ref(), ENVOY_DEFAULT_LIMIT),
            max_retries: limit(default.max_retries.as_ref(), ENVOY_DEFAULT_RETRIES),
        })
    }
}

/// A threshold was reached: the request is refused, not queued.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("circuit breaker overflow")]
pub struct Overflow;

/// The live counts of one cluster against its thresholds.
#[derive(Debug)]
pub struct CircuitBreakers {
    thresholds: Thresholds,
    requests: Arc<AtomicUsize>,
    pending: Arc<AtomicUsize>,
    retries: Arc<AtomicUsize>,
    /// Busy HTTP/1.1 connections; `None` when unlimited.
    connections: Option<Arc<Semaphore>>,
}

/// One unit of a count, given back on drop.
#[derive(Debug)]
#[must_use]
pub struct Slot(Arc<AtomicUsize>);

impl Slot {
    fn take(count: &Arc<AtomicUsize>, limit: u32) -> Result<Slot, Overflow> {
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        count
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < limit).then_some(n + 1)
            })
            .map(|_| Slot(count.clone()))
            .map_err(|_| Overflow)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// What an admitted request holds until its response is over.
#[derive(Debug)]
pub struct Admission {
    _request: Slot,
    _connection: Option<OwnedSemaphorePermit>,
}

impl CircuitBreakers {
    pub fn new(thresholds: Thresholds) -> CircuitBreakers {
        let connections = (thresholds.max_connections != u32::MAX).then(|| {
            let permits = usize::try_from(thresholds.max_connections)
                .unwrap_or(Semaphore::MAX_PERMITS)
                .min(Semaphore::MAX_PERMITS);
            Arc::new(Semaphore::new(permits))
        });
        CircuitBreakers {
            thresholds,
            requests: Arc::default(),
            pending: Arc::default(),
            retries: Arc::default(),
            connections,
        }
    }

    /// Admits a request, waiting (as a pending request) for an HTTP/1.1
    /// connection when all are busy and a pending slot is free.
    pub async fn admit(&self, http2: bool) -> Result<Admission, Overflow> {
        let request = Slot::take(&self.requests, self.thresholds.max_requests)?;
        let connection = match (&self.connections, http2) {
            (Some(connections), false) => Some(self.connection(connections).await?),
            _ => None,
        };
        Ok(Admission {
            _request: request,
            _connection: connection,
        })
    }

    async fn connection(
        &self,
        connections: &Arc<Semaphore>,
    ) -> Result<OwnedSemaphorePermit, Overflow> {
        if let Ok(permit) = connections.clone().try_acquire_owned() {
            return Ok(permit);
        }
        let _pending = Slot::take(&self.pending, self.thresholds.max_pending_requests)?;
        connections
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| Overflow)
    }

    /// A slot for one retry, or `None` when `max_retries` are in flight.
    pub fn retry(&self) -> Option<Slot> {
        Slot::take(&self.retries, self.thresholds.max_retries).ok()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn breakers(connections: u32, pending: u32) -> CircuitBreakers {
        CircuitBreakers::new(Thresholds {
            max_connections: connections,
            max_pending_requests: pending,
            max_requests: 100,
            max_retries: 1,
        })
    }

    #[tokio::test]
    async fn http1_requests_beyond_connections_and_pending_slots_overflow() {
        let breakers = breakers(1, 1);
        let first = breakers.admit(false).await.expect("a free connection");
        let waiting = breakers.admit(false);
        tokio::pin!(waiting);
        assert!(
            tokio::time::timeout(Duration::from_millis(20), &mut waiting)
                .await
                .is_err(),
            "the second request waits for the connection"
        );
        assert_eq!(breakers.admit(false).await.unwrap_err(), Overflow);
        drop(first);
        let second = waiting.await.expect("the connection was freed");
        drop(second);
        assert_eq!(breakers.pending.load(Ordering::Acquire), 0);
        assert_eq!(breakers.requests.load(Ordering::Acquire), 0);
    }

    #[tokio::test]
    async fn a_cancelled_pending_request_gives_its_slot_back() {
        let breakers = breakers(1, 1);
        let _busy = breakers.admit(false).await.unwrap();
        let cancelled =
            tokio::time::timeout(Duration::from_millis(10), breakers.admit(false)).await;
        assert!(cancelled.is_err());
        assert_eq!(breakers.pending.load(Ordering::Acquire), 0);
        assert_eq!(breakers.requests.load(Ordering::Acquire), 1);
    }

    #[tokio::test]
    async fn http2_requests_count_against_max_requests_only() {
        let breakers = CircuitBreakers::new(Thresholds {
            max_requests: 2,
            ..breakers(1, 0).thresholds
        });
        let held = [
            breakers.admit(true).await.unwrap(),
            breakers.admit(true).await.unwrap(),
        ];
        assert_eq!(breakers.admit(true).await.unwrap_err(), Overflow);
        drop(held);
        assert!(breakers.admit(true).await.is_ok());
    }

    #[test]
    fn retries_beyond_max_retries_are_refused() {
        let breakers = breakers(1, 1);
        let retry = breakers.retry().expect("one retry");
        assert!(breakers.retry().is_none());
        drop(retry);
        assert!(breakers.retry().is_some());
    }

    #[test]
    fn listed_thresholds_without_values_take_envoys_defaults() {
        let breakers = xds::CircuitBreakers {
            thresholds: vec![xds::circuit_breakers::Thresholds::default()],
            ..Default::default()
        };
        let thresholds = Thresholds::compile(Some(&breakers)).unwrap();
        assert_eq!(thresholds.max_connections, 1024);
        assert_eq!(thresholds.max_retries, 3);
        assert_eq!(Thresholds::compile(None).unwrap(), Thresholds::UNLIMITED);
    }
}
