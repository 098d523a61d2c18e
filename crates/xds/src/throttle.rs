//! Bounds the pushes in flight across all streams (Istio's
//! `PILOT_PUSH_THROTTLE`, 100 by default). When a change reaches 10,000
//! proxies at once, each response is the proxy's whole config encoded:
//! without a bound, every stream would build, encode and buffer its own
//! long before the proxies read them, and memory would grow with the
//! number of proxies.
//!
//! A push is in flight from the moment its stream takes a permit, before
//! it builds the response, until the proxy answers it (ACK or NACK): only
//! then has the proxy read it out of the transport's buffers. A stream
//! holds one permit at most, its last response's: it gives it back before
//! waiting for the next, so that no stream waits while holding one (and a
//! proxy that reads its responses in order has read the earlier ones). A
//! proxy that does not answer within [`ANSWER_DEADLINE`] has its permit
//! taken back, so silent proxies cannot stall the others.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::Stream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};

/// Istio's default for `PILOT_PUSH_THROTTLE`.
pub const DEFAULT_PUSH_THROTTLE: usize = 100;

/// How long a push counts against the bound without an answer.
pub const ANSWER_DEADLINE: Duration = Duration::from_secs(5);

/// The sending half of one stream's response queue.
pub(crate) struct Sender<T> {
    queue: mpsc::Sender<T>,
    pushes: Arc<Semaphore>,
    in_flight: Option<InFlight>,
}

/// Room for one response: this stream's queue slot and a push permit.
pub(crate) struct Slot<T> {
    queue: mpsc::OwnedPermit<T>,
    push: OwnedSemaphorePermit,
}

/// A sent push awaiting its answer; dropping it returns the permit.
struct InFlight {
    nonce: String,
    _answered: oneshot::Sender<()>,
}

/// The proxy has gone: its stream was dropped.
#[derive(Debug)]
pub(crate) struct Closed;

impl<T: Send + 'static> Sender<T> {
    /// Waits for this stream's queue first, so that a stream never holds a
    /// shared permit while it waits on its own slow proxy's queue.
    pub(crate) async fn reserve(&mut self) -> Result<Slot<T>, Closed> {
        self.in_flight = None;
        let queue = self
            .queue
            .clone()
            .reserve_owned()
            .await
            .map_err(|_| Closed)?;
        let push = self
            .pushes
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| Closed)?;
        Ok(Slot { queue, push })
    }

    /// Queues `item`, the response with `nonce`; its permit is held until
    /// [`Sender::answered`] names that nonce, or for [`ANSWER_DEADLINE`].
    pub(crate) fn send(&mut self, slot: Slot<T>, item: T, nonce: String) {
        slot.queue.send(item);
        let (answered, answer) = oneshot::channel::<()>();
        let push = slot.push;
        tokio::spawn(async move {
            // Either outcome (answered, or the stream dropped the sender)
            // ends the push; the deadline ends it too.
            let _ = tokio::time::timeout(ANSWER_DEADLINE, answer).await;
            drop(push);
        });
        self.in_flight = Some(InFlight {
            nonce,
            _answered: answered,
        });
    }

    /// The proxy answered the response with `nonce` (ACK or NACK).
    pub(crate) fn answered(&mut self, nonce: &str) {
        if self.in_flight.as_ref().is_some_and(|f| f.nonce == nonce) {
            self.in_flight = None;
        }
    }

    /// Sends a last message (a stream error) outside the throttle.
    pub(crate) async fn send_unthrottled(&mut self, item: T) -> Result<(), Closed> {
        self.in_flight = None;
        self.queue.send(item).await.map_err(|_| Closed)
    }
}

/// The receiving half, handed to tonic as the response stream.
pub(crate) struct Responses<T> {
    queue: mpsc::Receiver<T>,
}

impl<T> Stream for Responses<T> {
    type Item = T;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        self.queue.poll_recv(cx)
    }
}

/// One stream's queue (a single response deep: the throttle, not the
/// queue, is what lets pushes overlap) under the shared `pushes` bound.
pub(crate) fn channel<T>(pushes: &Arc<Semaphore>) -> (Sender<T>, Responses<T>) {
    let (queue, receiver) = mpsc::channel(1);
    (
        Sender {
            queue,
            pushes: pushes.clone(),
            in_flight: None,
        },
        Responses { queue: receiver },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_stream::StreamExt;

    /// Lets the permit-holding tasks run.
    async fn settle() {
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn a_permit_is_held_until_the_proxy_answers() {
        let pushes = Arc::new(Semaphore::new(2));
        let (mut sender, mut responses) = channel::<u32>(&pushes);
        let slot = sender.reserve().await.unwrap();
        sender.send(slot, 1, "1".into());
        assert_eq!(responses.next().await, Some(1));
        settle().await;
        // Read by the transport but not answered: still in flight.
        assert_eq!(pushes.available_permits(), 1);
        sender.answered("0"); // an older response's answer
        settle().await;
        assert_eq!(pushes.available_permits(), 1);
        sender.answered("1");
        settle().await;
        assert_eq!(pushes.available_permits(), 2);
    }

    #[tokio::test]
    async fn a_stream_holds_one_permit_and_gives_it_back_before_waiting() {
        let pushes = Arc::new(Semaphore::new(1));
        let (mut sender, mut responses) = channel::<u32>(&pushes);
        for n in 1..=3 {
            let slot = sender.reserve().await.unwrap();
            sender.send(slot, n, n.to_string());
            assert_eq!(responses.next().await, Some(n));
        }
    }

    #[tokio::test]
    async fn other_streams_wait_while_the_bound_is_reached() {
        let pushes = Arc::new(Semaphore::new(1));
        let (mut first, mut first_responses) = channel::<u32>(&pushes);
        let (mut second, mut second_responses) = channel::<u32>(&pushes);
        let slot = first.reserve().await.unwrap();
        first.send(slot, 1, "1".into());
        let blocked = tokio::time::timeout(Duration::from_millis(50), second.reserve());
        assert!(blocked.await.is_err(), "the second stream must wait");
        assert_eq!(first_responses.next().await, Some(1));
        first.answered("1");
        let slot = second.reserve().await.unwrap();
        second.send(slot, 2, "1".into());
        assert_eq!(second_responses.next().await, Some(2));
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_proxy_loses_its_permit_at_the_deadline() {
        let pushes = Arc::new(Semaphore::new(1));
        let (mut silent, _unread) = channel::<u32>(&pushes);
        let slot = silent.reserve().await.unwrap();
        silent.send(slot, 1, "1".into());
        let (mut other, mut other_responses) = channel::<u32>(&pushes);
        // Paused time jumps to the deadline once everything else waits.
        let slot = other.reserve().await.unwrap();
        other.send(slot, 2, "1".into());
        assert_eq!(other_responses.next().await, Some(2));
    }

    #[tokio::test]
    async fn a_dropped_stream_releases_its_permits() {
        let pushes = Arc::new(Semaphore::new(1));
        let (mut sender, responses) = channel::<u32>(&pushes);
        let slot = sender.reserve().await.unwrap();
        sender.send(slot, 1, "1".into());
        drop(responses);
        assert!(sender.reserve().await.is_err());
        drop(sender);
        settle().await;
        assert_eq!(pushes.available_permits(), 1);
    }
}
