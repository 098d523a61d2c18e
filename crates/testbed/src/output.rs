//! A child process's output: echoed line by line to the test's own output
//! (captured by the test harness, shown when a test fails) and kept so that
//! tests can wait for a line, e.g. a config error the control plane prints.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, mpsc};

/// Enough for any test's output; older lines are dropped beyond it.
const KEPT_LINES: usize = 100_000;

/// The lines written so far, shared with the reader threads.
#[derive(Clone, Default)]
pub struct Lines {
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    lines: Mutex<VecDeque<String>>,
    added: Notify,
}

impl Lines {
    fn push(&self, line: String) {
        let mut lines = self.lock();
        if lines.len() == KEPT_LINES {
            lines.pop_front();
        }
        lines.push_back(line);
        drop(lines);
        self.shared.added.notify_waiters();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<String>> {
        // A panicking reader thread cannot leave the deque inconsistent.
        self.shared
            .lines
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Every line kept so far.
    pub fn snapshot(&self) -> Vec<String> {
        self.lock().iter().cloned().collect()
    }

    /// The last `count` lines, joined, for failure messages.
    pub fn tail(&self, count: usize) -> String {
        let lines = self.lock();
        let skip = lines.len().saturating_sub(count);
        lines
            .iter()
            .skip(skip)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The first line containing `needle`, waiting up to `timeout` for it.
    pub async fn wait_for(&self, needle: &str, timeout: Duration) -> Option<String> {
        let search = async {
            loop {
                let added = self.shared.added.notified();
                tokio::pin!(added);
                // Register before looking, so no line slips in unnoticed.
                added.as_mut().enable();
                if let Some(line) = self.lock().iter().find(|line| line.contains(needle)) {
                    return line.clone();
                }
                added.await;
            }
        };
        tokio::time::timeout(timeout, search).await.ok()
    }
}

/// Reads `pipe` on its own thread until EOF: each line is echoed with
/// `label`, kept in `lines`, and sent to `forward` when given.
pub fn spawn_reader(
    pipe: impl Read + Send + 'static,
    label: String,
    lines: Lines,
    forward: Option<mpsc::UnboundedSender<String>>,
) {
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { return };
            eprintln!("{label}{line}");
            if let Some(forward) = &forward {
                let _ = forward.send(line.clone());
            }
            lines.push(line);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn waits_for_a_line_written_later() {
        let lines = Lines::default();
        let writer = lines.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            writer.push("error: vs.yaml:3:5: spec.http: bad".into());
        });
        let found = lines.wait_for("vs.yaml:3:5", Duration::from_secs(5)).await;
        assert_eq!(found.as_deref(), Some("error: vs.yaml:3:5: spec.http: bad"));
        assert_eq!(
            lines.wait_for("never", Duration::from_millis(50)).await,
            None
        );
        assert_eq!(lines.tail(1), "error: vs.yaml:3:5: spec.http: bad");
    }

    #[tokio::test]
    async fn reads_a_pipe_to_its_end() {
        let lines = Lines::default();
        let (sender, mut receiver) = mpsc::unbounded_channel();
        spawn_reader(
            &b"one\ntwo\n"[..],
            "[t] ".into(),
            lines.clone(),
            Some(sender),
        );
        assert_eq!(receiver.recv().await.as_deref(), Some("one"));
        assert_eq!(receiver.recv().await.as_deref(), Some("two"));
        assert_eq!(receiver.recv().await, None);
        assert_eq!(lines.snapshot(), ["one", "two"]);
    }
}
