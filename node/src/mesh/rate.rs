//! A token bucket: the per-link byte-rate cap, so a town returning after a day does not flood
//! its county's uplink.

use std::time::Duration;
use tokio::time::Instant;

pub struct Bucket {
    bytes_per_sec: u64,
    tokens: f64,
    last: Instant,
}

impl Bucket {
    /// `0` means unlimited.
    pub fn new(bytes_per_sec: u64) -> Bucket {
        Bucket { bytes_per_sec, tokens: bytes_per_sec as f64, last: Instant::now() }
    }

    /// Wait until `n` bytes may go out. Bursts of up to one second's worth pass at once.
    pub async fn take(&mut self, n: usize) {
        if self.bytes_per_sec == 0 {
            return;
        }
        let rate = self.bytes_per_sec as f64;
        let now = Instant::now();
        self.tokens = (self.tokens + now.duration_since(self.last).as_secs_f64() * rate).min(rate);
        self.last = now;
        self.tokens -= n as f64;
        if self.tokens < 0.0 {
            tokio::time::sleep(Duration::from_secs_f64(-self.tokens / rate)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn holds_the_rate() {
        let mut b = Bucket::new(1000);
        let start = Instant::now();
        for _ in 0..30 {
            b.take(100).await;
        }
        // 3000 bytes at 1000 B/s with a 1000-byte burst: about two seconds.
        let took = start.elapsed().as_secs_f64();
        assert!((1.9..2.2).contains(&took), "{took}");
        let mut free = Bucket::new(0);
        let start = Instant::now();
        free.take(1 << 30).await;
        assert_eq!(start.elapsed(), Duration::ZERO);
    }
}
