//! Where access log lines go: a file (usually `/dev/stdout`) written by a
//! dedicated thread. Requests append their lines to a shared buffer and
//! never wait for the file: the writer takes the buffer when it holds
//! `FLUSH_BYTES`, or every `FLUSH_INTERVAL` otherwise, as Envoy's file
//! access log does. Waking a thread per line cost more than the rest of
//! the request's telemetry together. Lines beyond `MAX_BUFFERED` (a writer
//! that cannot keep up) are dropped and counted.

use std::cell::RefCell;
use std::fs::File;
use std::io::Write;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;

/// Bytes that make the writer flush at once rather than at its interval.
const FLUSH_BYTES: usize = 64 * 1024;
/// The longest a line waits in the buffer.
const FLUSH_INTERVAL: Duration = Duration::from_secs(1);
/// Bytes waiting for the writer beyond which new lines are dropped.
const MAX_BUFFERED: usize = 16 * 1024 * 1024;

pub struct LogSink {
    shared: Arc<Shared>,
    dropped: Counter,
    writer: Mutex<Option<JoinHandle<()>>>,
}

#[derive(Default)]
struct Shared {
    pending: Mutex<Pending>,
    /// Signalled when the buffer reaches `FLUSH_BYTES` or the sink closes.
    flush: Condvar,
}

#[derive(Default)]
struct Pending {
    bytes: Vec<u8>,
    closed: bool,
}

impl std::fmt::Debug for LogSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogSink").finish_non_exhaustive()
    }
}

thread_local! {
    /// Each thread renders its lines here, outside the buffer's lock.
    static LINE: RefCell<String> = RefCell::new(String::with_capacity(512));
}

impl LogSink {
    /// Opens `path` for appending and starts its writer thread, which
    /// writes what is left and ends when the sink is dropped.
    pub fn open(path: &str, dropped: Counter) -> std::io::Result<LogSink> {
        let file = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(path)?;
        let shared = Arc::new(Shared::default());
        let batches = shared.clone();
        let writer = std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || write_batches(&batches, file))?;
        Ok(LogSink {
            shared,
            dropped,
            writer: Mutex::new(Some(writer)),
        })
    }

    /// Renders a line with `render` and queues it without waiting for the
    /// file; drops it if the writer is too far behind.
    pub fn write(&self, render: impl FnOnce(&mut String)) {
        LINE.with(|line| {
            let mut line = line.borrow_mut();
            line.clear();
            render(&mut line);
            self.append(line.as_bytes());
        });
    }

    fn append(&self, line: &[u8]) {
        let mut pending = self.shared.lock();
        if pending.bytes.len() + line.len() > MAX_BUFFERED {
            drop(pending);
            self.dropped.inc();
            return;
        }
        let was_below = pending.bytes.len() < FLUSH_BYTES;
        pending.bytes.extend_from_slice(line);
        let crossed = was_below && pending.bytes.len() >= FLUSH_BYTES;
        drop(pending);
        if crossed {
            self.shared.flush.notify_one();
        }
    }
}

impl LogSink {
    /// Writes every line queued so far and stops the writer: for a proxy
    /// that is exiting, whose last second of lines would be lost.
    pub fn finish(&self) {
        self.close();
        let writer = self.writer.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(writer) = writer {
            let _ = writer.join();
        }
    }

    fn close(&self) {
        self.shared.lock().closed = true;
        self.shared.flush.notify_one();
    }
}

impl Drop for LogSink {
    fn drop(&mut self) {
        self.close();
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Takes the buffer whenever it is full enough or the interval passes,
/// and writes it outside the lock; swapping two buffers keeps both
/// allocated.
fn write_batches(shared: &Shared, mut file: File) {
    let mut batch = Vec::new();
    loop {
        let closed = {
            let mut pending = shared.lock();
            if pending.bytes.len() < FLUSH_BYTES && !pending.closed {
                pending = shared
                    .flush
                    .wait_timeout(pending, FLUSH_INTERVAL)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
            std::mem::swap(&mut batch, &mut pending.bytes);
            pending.closed
        };
        if !batch.is_empty() {
            if let Err(error) = file.write_all(&batch) {
                tracing::warn!(%error, "cannot write the access log; lines are lost");
            }
            batch.clear();
        }
        if closed {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_until(path: &std::path::Path, len: usize) -> String {
        let mut written = String::new();
        for _ in 0..300 {
            written = std::fs::read_to_string(path).unwrap();
            if written.len() >= len {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        written
    }

    #[test]
    fn lines_reach_the_file_in_order_within_the_interval() {
        let dir = std::env::temp_dir().join(format!("trellis-sink-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("access.log");
        let sink = LogSink::open(path.to_str().unwrap(), Counter::default()).unwrap();
        for n in 0..100 {
            sink.write(|line| line.push_str(&format!("line {n}\n")));
        }
        let expected: String = (0..100).map(|n| format!("line {n}\n")).collect();
        // Far below FLUSH_BYTES: the interval writes them.
        let written = read_until(&path, expected.len());
        assert_eq!(written, expected);

        // A burst past FLUSH_BYTES, then closing: everything lands.
        let long = "x".repeat(1000);
        for _ in 0..200 {
            sink.write(|line| {
                line.push_str(&long);
                line.push('\n');
            });
        }
        sink.finish();
        let written = std::fs::read_to_string(&path).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(written.len(), expected.len() + 200 * 1001);
        assert_eq!(sink.dropped.get(), 0);
    }

    #[test]
    fn a_writer_that_falls_behind_drops_and_counts_lines() {
        let sink = LogSink {
            shared: Arc::new(Shared::default()),
            dropped: Counter::default(),
            writer: Mutex::new(None),
        };
        // No writer thread: nothing drains the buffer.
        let line = vec![b'x'; 1024 * 1024];
        for _ in 0..20 {
            sink.append(&line);
        }
        assert_eq!(sink.shared.lock().bytes.len(), MAX_BUFFERED);
        assert_eq!(sink.dropped.get(), 4);
    }
}
