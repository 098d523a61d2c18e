//! Counts gRPC messages in a body as it streams by (for
//! `istio_request_messages_total` / `istio_response_messages_total`): each
//! message is a 5-byte prefix (compressed flag, 4-byte big-endian length)
//! and that many bytes, split across data frames however the peer likes.

/// Where the counter is in the stream of length-prefixed messages.
#[derive(Debug, Default)]
pub struct MessageCounter {
    messages: u64,
    /// Bytes of the current prefix seen so far.
    prefix: [u8; 5],
    prefix_len: usize,
    /// Bytes of the current message's payload still to come.
    remaining: u64,
}

impl MessageCounter {
    pub fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            if self.remaining > 0 {
                let skip = (self.remaining).min(data.len() as u64) as usize;
                self.remaining -= skip as u64;
                data = &data[skip..];
                continue;
            }
            let take = (5 - self.prefix_len).min(data.len());
            self.prefix[self.prefix_len..self.prefix_len + take].copy_from_slice(&data[..take]);
            self.prefix_len += take;
            data = &data[take..];
            if self.prefix_len == 5 {
                self.messages += 1;
                let length = [
                    self.prefix[1],
                    self.prefix[2],
                    self.prefix[3],
                    self.prefix[4],
                ];
                self.remaining = u64::from(u32::from_be_bytes(length));
                self.prefix_len = 0;
            }
        }
    }

    /// Messages whose prefix has been seen.
    pub fn messages(&self) -> u64 {
        self.messages
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(payload: &[u8]) -> Vec<u8> {
        let mut framed = vec![0];
        framed.extend((payload.len() as u32).to_be_bytes());
        framed.extend(payload);
        framed
    }

    #[test]
    fn counts_messages_however_the_frames_split_them() {
        let mut stream = message(b"hello");
        stream.extend(message(b""));
        stream.extend(message(&[7; 300]));
        for chunk in [1, 2, 3, 5, 7, 64, stream.len()] {
            let mut counter = MessageCounter::default();
            stream.chunks(chunk).for_each(|c| counter.feed(c));
            assert_eq!(counter.messages(), 3, "chunks of {chunk}");
        }
        let mut counter = MessageCounter::default();
        counter.feed(&[]);
        assert_eq!(counter.messages(), 0);
    }
}
