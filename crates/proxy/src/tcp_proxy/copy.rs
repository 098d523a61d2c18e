//! Copying bytes both ways between a downstream and an upstream, passing
//! each side's half-close on, until both are done, either fails, or
//! nothing moves for the idle timeout.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

const COPY_BUFFER: usize = 16 * 1024;

/// Copies until both directions reach end of stream (each passed on as a
/// half-close), either side fails (a reset ends both), or nothing moves
/// for `idle_timeout`. Returns the bytes received from and sent to the
/// downstream, and whether it went idle.
pub(super) async fn copy_both_ways<D, U>(
    downstream: D,
    upstream: U,
    idle_timeout: Option<Duration>,
) -> ((u64, u64), bool)
where
    D: AsyncRead + AsyncWrite + Unpin,
    U: AsyncRead + AsyncWrite + Unpin,
{
    let progress = Progress {
        epoch: Instant::now(),
        last_activity_ms: AtomicU64::new(0),
    };
    let (mut down_read, mut down_write) = tokio::io::split(downstream);
    let (mut up_read, mut up_write) = tokio::io::split(upstream);
    let outbound = pump(&mut down_read, &mut up_write, &progress);
    let inbound = pump(&mut up_read, &mut down_write, &progress);
    tokio::pin!(outbound, inbound);
    let (mut received, mut sent) = (None, None);
    let outcome = loop {
        let quiet_since = progress.last_activity();
        let deadline = idle_timeout.map(|idle| progress.epoch + quiet_since + idle);
        tokio::select! {
            result = &mut outbound, if received.is_none() => match result {
                Ok(bytes) => received = Some(bytes),
                Err(bytes) => break (Some(bytes), sent, false),
            },
            result = &mut inbound, if sent.is_none() => match result {
                Ok(bytes) => sent = Some(bytes),
                Err(bytes) => break (received, Some(bytes), false),
            },
            () = sleep_until(deadline) => {
                if progress.last_activity() == quiet_since {
                    break (received, sent, true);
                }
            }
        }
        if let (Some(r), Some(s)) = (received, sent) {
            break (Some(r), Some(s), false);
        }
    };
    let (received, sent, idle) = outcome;
    ((received.unwrap_or(0), sent.unwrap_or(0)), idle)
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline.into()).await,
        None => std::future::pending().await,
    }
}

/// When bytes last moved either way.
struct Progress {
    epoch: Instant,
    last_activity_ms: AtomicU64,
}

impl Progress {
    fn moved(&self) {
        let now = self.epoch.elapsed().as_millis() as u64;
        self.last_activity_ms.store(now, Ordering::Relaxed);
    }

    fn last_activity(&self) -> Duration {
        Duration::from_millis(self.last_activity_ms.load(Ordering::Relaxed))
    }
}

/// One direction: read, write, and at end of stream shut the writer down
/// (a half-close). `Err` with the bytes copied when either side failed.
async fn pump<R, W>(reader: &mut R, writer: &mut W, progress: &Progress) -> Result<u64, u64>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buffer = vec![0u8; COPY_BUFFER];
    let mut total = 0u64;
    loop {
        let n = match reader.read(&mut buffer).await {
            Ok(0) => break,
            Ok(n) => n,
            Err(_) => return Err(total),
        };
        if writer.write_all(&buffer[..n]).await.is_err() {
            return Err(total);
        }
        total += n as u64;
        progress.moved();
    }
    let _: io::Result<()> = writer.shutdown().await;
    Ok(total)
}
