//! Where access log lines go: a file (usually `/dev/stdout`) written by a
//! dedicated thread behind a bounded queue, so that a slow reader never
//! blocks a request. Under pressure lines are dropped and counted.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};

use prometheus_client::metrics::counter::Counter;

/// Lines waiting for the writer; beyond this, new lines are dropped.
const QUEUE_LINES: usize = 4096;

pub struct LogSink {
    lines: SyncSender<String>,
    dropped: Counter,
}

impl std::fmt::Debug for LogSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogSink").finish_non_exhaustive()
    }
}

impl LogSink {
    /// Opens `path` for appending and starts its writer thread, which ends
    /// when the last sender is dropped.
    pub fn open(path: &str, dropped: Counter) -> std::io::Result<LogSink> {
        let file = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(path)?;
        let (lines, queue) = sync_channel(QUEUE_LINES);
        std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || write_lines(queue, BufWriter::new(file)))?;
        Ok(LogSink { lines, dropped })
    }

    /// Queues a line without waiting; drops it if the writer is behind.
    pub fn write(&self, line: String) {
        match self.lines.try_send(line) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.dropped.inc();
            }
        }
    }
}

/// Writes lines as they come, flushing whenever the queue runs empty so
/// that lines appear promptly yet bursts share one write.
fn write_lines(queue: Receiver<String>, mut out: BufWriter<File>) {
    while let Ok(line) = queue.recv() {
        let mut result = out.write_all(line.as_bytes());
        while let (Ok(()), Ok(line)) = (&result, queue.try_recv()) {
            result = out.write_all(line.as_bytes());
        }
        if let Err(error) = result.and_then(|()| out.flush()) {
            tracing::warn!(%error, "cannot write the access log; lines are lost");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_reach_the_file_in_order() {
        let dir = std::env::temp_dir().join(format!("trellis-sink-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("access.log");
        let sink = LogSink::open(path.to_str().unwrap(), Counter::default()).unwrap();
        for n in 0..100 {
            sink.write(format!("line {n}\n"));
        }
        let expected: String = (0..100).map(|n| format!("line {n}\n")).collect();
        let mut written = String::new();
        for _ in 0..200 {
            written = std::fs::read_to_string(&path).unwrap();
            if written.len() >= expected.len() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(written, expected);
        assert_eq!(sink.dropped.get(), 0);
    }
}
