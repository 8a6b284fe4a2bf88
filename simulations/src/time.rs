//! The nodes' clocks in a simulation.
//!
//! Every node reads its own [`SimClock`]: wall time that starts at the run's epoch and advances
//! with tokio's clock, which on the simulator's paused runtime is virtual and jumps from one
//! timer to the next when nothing is ready to run. A clock can be skewed (set ahead or behind
//! by any amount, at any moment: a clock jump) without touching any other node's.
//!
//! Nothing in a simulated node runs on a thread of its own (stores flush in virtual time on the
//! runtime), so no clock is read from outside the runtime and virtual time never races ahead of
//! work still under way: there is no speed limit to keep.

use node::clock::Clock;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use tokio::time::Instant;

/// A node's wall clock: `epoch_ms` at `start`, then tokio's (virtual) time, plus a skew.
#[derive(Debug, Clone)]
pub struct SimClock {
    epoch_ms: u64,
    start: Instant,
    skew_ms: Arc<AtomicI64>,
}

impl SimClock {
    /// A clock reading `epoch_ms` at tokio's `start`.
    pub fn new(epoch_ms: u64, start: Instant) -> SimClock {
        SimClock { epoch_ms, start, skew_ms: Arc::new(AtomicI64::new(0)) }
    }

    /// Set how far this clock runs ahead (positive) or behind (negative) the run's true time.
    /// Clones share the skew.
    pub fn set_skew_ms(&self, skew_ms: i64) {
        self.skew_ms.store(skew_ms, Ordering::Relaxed);
    }

    pub fn skew_ms(&self) -> i64 {
        self.skew_ms.load(Ordering::Relaxed)
    }

    /// The run's true time, without this clock's skew.
    pub fn true_ms(&self) -> u64 {
        self.epoch_ms + Instant::now().saturating_duration_since(self.start).as_millis() as u64
    }
}

impl Clock for SimClock {
    fn now_ms(&self) -> u64 {
        self.true_ms().saturating_add_signed(self.skew_ms())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn follows_virtual_time_and_skews_alone() {
        let start = Instant::now();
        let a = SimClock::new(1_000_000, start);
        let b = SimClock::new(1_000_000, start);
        tokio::time::sleep(Duration::from_secs(90)).await;
        assert_eq!(a.now_ms(), 1_090_000);
        a.set_skew_ms(-600_000);
        assert_eq!(a.now_ms(), 490_000);
        assert_eq!(a.true_ms(), 1_090_000);
        assert_eq!(b.now_ms(), 1_090_000, "another node's clock is untouched");
        a.clone().set_skew_ms(5);
        assert_eq!(a.skew_ms(), 5, "clones share the skew");
    }
}
