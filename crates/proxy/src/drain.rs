//! Graceful drain: on shutdown, listeners stop accepting, open connections
//! finish their in-flight requests (HTTP/1.1 closes after the current
//! response, HTTP/2 sends GOAWAY), and the proxy waits for them up to a
//! deadline before it exits.

use std::time::Duration;

use tokio::sync::watch;

/// Held by the proxy; every accept loop and connection holds a [`Watch`].
#[derive(Debug)]
pub struct Drain {
    signal: watch::Sender<bool>,
}

/// A connection's (or accept loop's) view of the drain.
#[derive(Clone, Debug)]
pub struct Watch {
    signal: watch::Receiver<bool>,
}

impl Default for Drain {
    fn default() -> Self {
        Drain {
            signal: watch::Sender::new(false),
        }
    }
}

impl Drain {
    pub fn watch(&self) -> Watch {
        Watch {
            signal: self.signal.subscribe(),
        }
    }

    /// Whether draining has started.
    pub fn is_draining(&self) -> bool {
        *self.signal.borrow()
    }

    /// Signals every watcher, then waits until all of them are gone or the
    /// deadline passes. Returns whether everything finished in time.
    pub async fn drain(&self, deadline: Duration) -> bool {
        self.signal.send_replace(true);
        tokio::time::timeout(deadline, self.signal.closed())
            .await
            .is_ok()
    }
}

impl Watch {
    /// Completes once draining has started.
    pub async fn started(&mut self) {
        // An error means the Drain itself is gone: that is a drain too.
        let _ = self.signal.wait_for(|draining| *draining).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn waits_for_watchers_then_gives_up_at_the_deadline() {
        let drain = Drain::default();
        let mut quick = drain.watch();
        tokio::spawn(async move { quick.started().await });
        assert!(
            drain.drain(Duration::from_secs(5)).await,
            "a watcher that leaves lets the drain finish"
        );

        let drain = Drain::default();
        let _stuck = drain.watch();
        assert!(
            !drain.drain(Duration::from_millis(50)).await,
            "a watcher that stays hits the deadline"
        );
    }
}
