//! Cutting a byte stream into request lines, bounded by [`MAX_REQUEST`].

use std::collections::VecDeque;

use crate::proto::MAX_REQUEST;

/// What [`LineBuffer::next_frame`] yields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    /// A complete request line, without its `\n`.
    Line(Vec<u8>),
    /// A line exceeded the limit; answer it with
    /// [`too_large_reply`](crate::serve::too_large_reply). Its bytes are
    /// dropped up to and including its newline, and it yields this once.
    TooLarge,
}

/// Accumulates bytes read from a stream and yields complete lines.
///
/// Memory is bounded: the partial line kept between reads never exceeds the
/// limit (bytes of an oversized line are dropped as they arrive), and the
/// frames queued by one [`push`](LineBuffer::push) are at most the bytes
/// pushed. A server that pushes one read at a time and drains
/// [`next_frame`](LineBuffer::next_frame) before the next read holds at most
/// `limit + read size` bytes per connection.
#[derive(Clone, Debug)]
pub struct LineBuffer {
    limit: usize,
    partial: Vec<u8>,
    discarding: bool,
    ready: VecDeque<Frame>,
}

impl Default for LineBuffer {
    fn default() -> Self {
        Self::new()
    }
}

impl LineBuffer {
    /// A buffer enforcing [`MAX_REQUEST`].
    pub fn new() -> LineBuffer {
        LineBuffer::with_limit(MAX_REQUEST)
    }

    /// A buffer whose lines hold at most `limit` bytes (without `\n`).
    pub fn with_limit(limit: usize) -> LineBuffer {
        LineBuffer {
            limit,
            partial: Vec::new(),
            discarding: false,
            ready: VecDeque::new(),
        }
    }

    /// Takes the bytes of one read. Bound: O(`bytes.len()`).
    pub fn push(&mut self, bytes: &[u8]) {
        let mut rest = bytes;
        while !rest.is_empty() {
            let (chunk, complete) = match rest.iter().position(|&b| b == b'\n') {
                Some(i) => (&rest[..i], true),
                None => (rest, false),
            };
            rest = if complete {
                &rest[chunk.len() + 1..]
            } else {
                &[]
            };
            self.take(chunk, complete);
        }
    }

    /// Adds a piece of a line; `complete` when a newline ended it.
    fn take(&mut self, chunk: &[u8], complete: bool) {
        if self.discarding {
            self.discarding = !complete;
            return;
        }
        if self.partial.len() + chunk.len() > self.limit {
            self.partial = Vec::new();
            self.ready.push_back(Frame::TooLarge);
            self.discarding = !complete;
            return;
        }
        self.partial.extend_from_slice(chunk);
        if complete {
            let line = std::mem::take(&mut self.partial);
            self.ready.push_back(Frame::Line(line));
        }
    }

    /// The next complete frame, oldest first.
    pub fn next_frame(&mut self) -> Option<Frame> {
        self.ready.pop_front()
    }

    /// At end of stream: the last line if it had no newline and is not
    /// empty (after the frames still queued, which the caller drains first).
    pub fn finish(&mut self) -> Option<Frame> {
        self.discarding = false;
        let line = std::mem::take(&mut self.partial);
        (!line.is_empty()).then_some(Frame::Line(line))
    }

    /// Bytes of the incomplete line held so far (never above the limit).
    pub fn partial_len(&self) -> usize {
        self.partial.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(buf: &mut LineBuffer) -> Vec<Frame> {
        std::iter::from_fn(|| buf.next_frame()).collect()
    }

    fn line(s: &str) -> Frame {
        Frame::Line(s.as_bytes().to_vec())
    }

    #[test]
    fn line_split_across_reads() {
        let mut buf = LineBuffer::new();
        buf.push(b"{\"v\":1,");
        assert_eq!(drain(&mut buf), []);
        assert_eq!(buf.partial_len(), 7);
        buf.push(b"\"op\":\"get\"");
        buf.push(b",\"name\":\"\"}\n{\"v");
        assert_eq!(
            drain(&mut buf),
            [line("{\"v\":1,\"op\":\"get\",\"name\":\"\"}")]
        );
        buf.push(b"\":1}\n");
        assert_eq!(drain(&mut buf), [line("{\"v\":1}")]);
        assert_eq!(buf.partial_len(), 0);
    }

    #[test]
    fn many_lines_in_one_read() {
        let mut buf = LineBuffer::new();
        buf.push(b"a\nbb\n\nccc\nd");
        assert_eq!(
            drain(&mut buf),
            [line("a"), line("bb"), line(""), line("ccc")]
        );
        assert_eq!(buf.finish(), Some(line("d")));
        assert_eq!(buf.finish(), None);
    }

    #[test]
    fn oversized_line_in_one_read() {
        let mut buf = LineBuffer::with_limit(4);
        buf.push(b"abcd\nabcde\nok\n");
        assert_eq!(drain(&mut buf), [line("abcd"), Frame::TooLarge, line("ok")]);
    }

    #[test]
    fn oversized_line_across_reads_yields_once_and_stays_bounded() {
        let mut buf = LineBuffer::with_limit(8);
        buf.push(b"12345");
        buf.push(b"6789");
        assert_eq!(drain(&mut buf), [Frame::TooLarge]);
        for _ in 0..1000 {
            buf.push(b"xxxxxxxxxxxxxxxx");
            assert_eq!(buf.partial_len(), 0);
        }
        assert_eq!(drain(&mut buf), []);
        buf.push(b"yyy\nnext\n");
        assert_eq!(drain(&mut buf), [line("next")]);
    }

    #[test]
    fn max_request_exactly_is_accepted() {
        let mut buf = LineBuffer::new();
        let mut data = vec![b'x'; MAX_REQUEST];
        data.push(b'\n');
        buf.push(&data);
        assert!(matches!(buf.next_frame(), Some(Frame::Line(l)) if l.len() == MAX_REQUEST));
        data.insert(0, b'x');
        buf.push(&data);
        assert_eq!(drain(&mut buf), [Frame::TooLarge]);
    }

    #[test]
    fn oversized_one_mebibyte_then_valid() {
        let mut buf = LineBuffer::new();
        for _ in 0..256 {
            buf.push(&[0xffu8; 4096]);
        }
        buf.push(b"\n{}\n");
        assert_eq!(drain(&mut buf), [Frame::TooLarge, line("{}")]);
    }

    #[test]
    fn finish_after_oversized_tail_gives_nothing() {
        let mut buf = LineBuffer::with_limit(2);
        buf.push(b"abc");
        assert_eq!(drain(&mut buf), [Frame::TooLarge]);
        assert_eq!(buf.finish(), None);
    }
}
