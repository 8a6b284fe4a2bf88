//! Where a node instance reads the time. Logic never calls `SystemTime::now()` itself: the
//! binary hands in [`SystemClock`], the simulator a clock of its own per node that follows
//! tokio's (paused) virtual time, skewed as its scenario says.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// Wall-clock milliseconds since the Unix epoch.
pub trait Clock: Send + Sync + 'static {
    fn now_ms(&self) -> u64;
}

pub type SharedClock = Arc<dyn Clock>;

/// The operating system's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
    }
}

/// A clock set by hand, for tests of time-driven logic.
#[derive(Debug, Default)]
pub struct ManualClock(std::sync::atomic::AtomicU64);

impl ManualClock {
    pub fn new(ms: u64) -> Self {
        ManualClock(ms.into())
    }
    pub fn set(&self, ms: u64) {
        self.0.store(ms, std::sync::atomic::Ordering::SeqCst);
    }
    pub fn advance(&self, ms: u64) {
        self.0.fetch_add(ms, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// Now on tokio's clock (virtual time on a paused runtime), as the sans-IO state machines
/// (`mesh::uplink`, `feeds::onvif::subscription`) take it: a `std` instant, never read from the
/// wall.
pub fn machine_now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}

/// Sleep on tokio's clock until a state machine's next timeout; forever when it has none.
pub async fn sleep_until_timeout(at: Option<std::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
        None => std::future::pending().await,
    }
}
