//! Bounded line reading for the TCP feeds (NMEA and JSON lines).
//!
//! A peer that never sends a newline must not grow our buffer without limit: a line longer than
//! the cap is discarded up to its newline and reported as too long, and reading goes on.

use tokio::io::{AsyncBufRead, AsyncBufReadExt};

#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    /// A complete line without its line ending.
    Text(String),
    /// A line over the cap (its length so far), discarded.
    TooLong(usize),
    /// A line that is not UTF-8, discarded.
    NotUtf8,
}

pub struct LineReader<R> {
    inner: R,
    cap: usize,
    buf: Vec<u8>,
}

impl<R: AsyncBufRead + Unpin> LineReader<R> {
    pub fn new(inner: R, cap: usize) -> Self {
        LineReader { inner, cap, buf: Vec::new() }
    }

    /// The next line, or `None` at end of stream.
    pub async fn next_line(&mut self) -> std::io::Result<Option<Line>> {
        self.buf.clear();
        let mut discarding = 0usize;
        loop {
            let available = self.inner.fill_buf().await?;
            if available.is_empty() {
                // End of stream: a final unterminated line still counts.
                return Ok(match (discarding, self.buf.is_empty()) {
                    (0, true) => None,
                    (0, false) => Some(self.finish()),
                    (n, _) => Some(Line::TooLong(n)),
                });
            }
            let (chunk, found) = match available.iter().position(|&b| b == b'\n') {
                Some(i) => (&available[..i], Some(i + 1)),
                None => (available, None),
            };
            if discarding > 0 || self.buf.len() + chunk.len() > self.cap {
                discarding += self.buf.len() + chunk.len();
                self.buf.clear();
            } else {
                self.buf.extend_from_slice(chunk);
            }
            let used = found.unwrap_or(available.len());
            self.inner.consume(used);
            if found.is_some() {
                return Ok(Some(if discarding > 0 { Line::TooLong(discarding) } else { self.finish() }));
            }
        }
    }

    fn finish(&mut self) -> Line {
        if self.buf.last() == Some(&b'\r') {
            self.buf.pop();
        }
        match String::from_utf8(std::mem::take(&mut self.buf)) {
            Ok(s) => Line::Text(s),
            Err(_) => Line::NotUtf8,
        }
    }

    pub fn into_inner(self) -> R {
        self.inner
    }

    pub fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    async fn all_lines(input: &[u8], cap: usize) -> Vec<Line> {
        let reader = tokio::io::BufReader::with_capacity(7, input);
        let mut lines = LineReader::new(reader, cap);
        let mut out = Vec::new();
        while let Some(l) = lines.next_line().await.unwrap() {
            out.push(l);
        }
        out
    }

    #[tokio::test]
    async fn splits_caps_and_recovers() {
        let input = b"short\r\nthis line is far too long for the cap\nok\n\xff\xfe\nlast";
        let got = all_lines(input, 10).await;
        assert_eq!(
            got,
            vec![
                Line::Text("short".into()),
                Line::TooLong(37),
                Line::Text("ok".into()),
                Line::NotUtf8,
                Line::Text("last".into()),
            ]
        );
    }

    proptest! {
        #[test]
        fn every_line_is_accounted_for(lines in proptest::collection::vec("[a-z]{0,30}", 0..20), cap in 1usize..25) {
            let input = lines.iter().map(|l| format!("{l}\n")).collect::<String>();
            let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
            let got = rt.block_on(all_lines(input.as_bytes(), cap));
            prop_assert_eq!(got.len(), lines.len());
            for (g, l) in got.iter().zip(&lines) {
                if l.len() <= cap { prop_assert_eq!(g, &Line::Text(l.clone())); } else { prop_assert_eq!(g, &Line::TooLong(l.len())); }
            }
        }
    }
}
