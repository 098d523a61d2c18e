//! Bounds the responses in flight across all streams (Istio's
//! `PILOT_PUSH_THROTTLE`, 100 by default). When a change reaches 10,000
//! proxies at once, each response is the proxy's whole config encoded:
//! without a bound, every stream would clone and encode its own before
//! any is written, and memory would grow with the number of proxies.
//!
//! A stream takes a push permit before it builds a response; the permit
//! travels with the response and is released when the transport asks for
//! the stream's next message, i.e. once h2 has written the previous one
//! out within its flow-control window.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::Stream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

/// Istio's default for `PILOT_PUSH_THROTTLE`.
pub const DEFAULT_PUSH_THROTTLE: usize = 100;

type Item<T> = (T, Option<OwnedSemaphorePermit>);

/// The sending half of one stream's response queue.
pub(crate) struct Sender<T> {
    queue: mpsc::Sender<Item<T>>,
    pushes: Arc<Semaphore>,
}

/// Room for one response: this stream's queue slot and a push permit.
pub(crate) struct Slot<T> {
    queue: mpsc::OwnedPermit<Item<T>>,
    push: OwnedSemaphorePermit,
}

/// The proxy has gone: its stream was dropped.
#[derive(Debug)]
pub(crate) struct Closed;

impl<T: Send + 'static> Sender<T> {
    /// Waits for this stream's queue first, so that a stream never holds a
    /// shared permit while it waits on its own slow proxy's queue.
    pub(crate) async fn reserve(&self) -> Result<Slot<T>, Closed> {
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

    /// Sends a last message (a stream error) outside the throttle.
    pub(crate) async fn send_unthrottled(&self, item: T) -> Result<(), Closed> {
        self.queue.send((item, None)).await.map_err(|_| Closed)
    }
}

impl<T> Slot<T> {
    pub(crate) fn send(self, item: T) {
        self.queue.send((item, Some(self.push)));
    }
}

/// The receiving half, handed to tonic as the response stream.
pub(crate) struct Responses<T> {
    queue: mpsc::Receiver<Item<T>>,
    /// The permit of the message last handed to the transport.
    in_flight: Option<OwnedSemaphorePermit>,
}

impl<T> Stream for Responses<T> {
    type Item = T;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        // Asked for the next message: the previous one is on its way.
        self.in_flight = None;
        match self.queue.poll_recv(cx) {
            Poll::Ready(Some((item, permit))) => {
                self.in_flight = permit;
                Poll::Ready(Some(item))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
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
        },
        Responses {
            queue: receiver,
            in_flight: None,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_stream::StreamExt;

    #[tokio::test]
    async fn a_permit_is_held_until_the_next_message_is_asked_for() {
        let pushes = Arc::new(Semaphore::new(1));
        let (sender, mut responses) = channel::<u32>(&pushes);
        sender.reserve().await.unwrap().send(1);
        assert_eq!(pushes.available_permits(), 0);
        assert_eq!(responses.next().await, Some(1));
        // Handed over but not yet written: still counted.
        assert_eq!(pushes.available_permits(), 0);
        let second = tokio::spawn(async move {
            sender.reserve().await.unwrap().send(2);
            sender
        });
        assert_eq!(responses.next().await, Some(2));
        let sender = second.await.unwrap();
        drop(sender);
        assert_eq!(responses.next().await, None);
        assert_eq!(pushes.available_permits(), 1);
    }

    #[tokio::test]
    async fn other_streams_wait_while_the_bound_is_reached() {
        let pushes = Arc::new(Semaphore::new(1));
        let (first, mut first_responses) = channel::<u32>(&pushes);
        let (second, mut second_responses) = channel::<u32>(&pushes);
        first.reserve().await.unwrap().send(1);
        let blocked = tokio::time::timeout(std::time::Duration::from_millis(50), second.reserve());
        assert!(blocked.await.is_err(), "the second stream must wait");
        assert_eq!(first_responses.next().await, Some(1));
        drop(first);
        assert_eq!(first_responses.next().await, None); // releases the permit
        second.reserve().await.unwrap().send(2);
        assert_eq!(second_responses.next().await, Some(2));
    }

    #[tokio::test]
    async fn a_dropped_stream_releases_its_permits() {
        let pushes = Arc::new(Semaphore::new(1));
        let (sender, responses) = channel::<u32>(&pushes);
        sender.reserve().await.unwrap().send(1);
        drop(responses);
        assert!(sender.reserve().await.is_err());
        assert_eq!(pushes.available_permits(), 1);
    }
}
