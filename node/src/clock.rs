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

/// How far the wall clock may run ahead of the time elapsed on the machine's monotonic clock
/// before [`GuardedClock`] holds it back; and how far a stamp on disk may lead the wall clock
/// at start before the store refuses to resume from it. One definition for both.
pub const MAX_CLOCK_JUMP_MS: u64 = 60_000;

/// Milliseconds in an hour and in a day, for retention, expiries and counts.
pub const HOUR_MS: u64 = 3_600_000;
pub const DAY_MS: u64 = 24 * HOUR_MS;

/// What [`JumpGuard::read`] makes of a wall-clock reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reading {
    /// The reading is in line with the time elapsed; use it.
    InLine(u64),
    /// The wall clock jumped ahead by more than [`MAX_CLOCK_JUMP_MS`] since the last reading
    /// in line: use `ms` (the last good reading plus the monotonic time since), not the wall.
    Held { ms: u64, wall_ahead_ms: u64 },
}

/// Sans-IO: judges wall-clock readings against the monotonic time elapsed since the furthest
/// ahead reading it trusted. A jump back is taken as it is (the HLC never goes back anyway),
/// and so is its correction up to where the clock was; a jump ahead beyond that is held back,
/// so a wrong clock does not stamp entries far into the future, where the HLC would keep every
/// later stamp. The guard trusts the wall clock again once the two agree; a legitimate step
/// ahead beyond where the clock ever was (an NTP correction of a clock that was behind since
/// the node started) is taken at the node's next start.
#[derive(Debug, Default)]
pub struct JumpGuard {
    /// The trusted reading furthest ahead of the monotonic clock, and when it was taken.
    anchor: Option<(u64, std::time::Instant)>,
}

impl JumpGuard {
    pub fn read(&mut self, wall_ms: u64, mono: std::time::Instant) -> Reading {
        if let Some((at_ms, at)) = self.anchor {
            let expected = at_ms.saturating_add(mono.saturating_duration_since(at).as_millis() as u64);
            if wall_ms > expected.saturating_add(MAX_CLOCK_JUMP_MS) {
                return Reading::Held { ms: expected, wall_ahead_ms: wall_ms - expected };
            }
            if wall_ms < expected {
                // Behind where the clock was: taken, but the anchor stays, so the clock may
                // come back up to it.
                return Reading::InLine(wall_ms);
            }
        }
        self.anchor = Some((wall_ms, mono));
        Reading::InLine(wall_ms)
    }
}

/// A wall clock guarded by a [`JumpGuard`] on tokio's clock, with an alarm: an error logged when
/// a jump is first held back, `yiwang_clock_held_back` counting readings held back, and
/// `yiwang_clock_wall_ahead_seconds` how far the wall clock is ahead of the time in use.
pub struct GuardedClock<C> {
    wall: C,
    guard: std::sync::Mutex<JumpGuard>,
    metrics: crate::metrics::Metrics,
}

impl<C: Clock> GuardedClock<C> {
    pub fn new(wall: C, metrics: crate::metrics::Metrics) -> Self {
        GuardedClock { wall, guard: std::sync::Mutex::new(JumpGuard::default()), metrics }
    }
}

impl<C: Clock> Clock for GuardedClock<C> {
    fn now_ms(&self) -> u64 {
        let wall = self.wall.now_ms();
        let reading = self.guard.lock().unwrap_or_else(|p| p.into_inner()).read(wall, machine_now());
        match reading {
            Reading::InLine(ms) => {
                if self.metrics.clock_wall_ahead_seconds.get() != 0.0 {
                    tracing::warn!("the wall clock is back in line with the time elapsed");
                    self.metrics.clock_wall_ahead_seconds.set(0.0);
                }
                ms
            }
            Reading::Held { ms, wall_ahead_ms } => {
                if self.metrics.clock_wall_ahead_seconds.get() == 0.0 {
                    tracing::error!(
                        wall_ahead_ms,
                        "the wall clock jumped ahead of the time elapsed; stamping with the time elapsed instead \
                         (restart the node to accept the new time if it is right)"
                    );
                }
                self.metrics.clock_held_back.inc();
                self.metrics.clock_wall_ahead_seconds.set(wall_ahead_ms as f64 / 1000.0);
                ms
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn a_jump_ahead_is_held_back_until_the_wall_clock_is_in_line_again() {
        let t0 = Instant::now();
        let mut g = JumpGuard::default();
        let day = 86_400_000;
        assert_eq!(g.read(1_000_000, t0), Reading::InLine(1_000_000));
        assert_eq!(g.read(1_001_000, t0 + Duration::from_secs(1)), Reading::InLine(1_001_000));
        // A second later on the machine, the wall clock reads a day later.
        assert_eq!(
            g.read(1_002_000 + day, t0 + Duration::from_secs(2)),
            Reading::Held { ms: 1_002_000, wall_ahead_ms: day }
        );
        assert_eq!(
            g.read(1_003_000 + day, t0 + Duration::from_secs(3)),
            Reading::Held { ms: 1_003_000, wall_ahead_ms: day },
            "held for as long as it stays ahead"
        );
        // Drift within the tolerance is taken; so is the wall clock coming back.
        assert_eq!(g.read(1_050_000, t0 + Duration::from_secs(4)), Reading::InLine(1_050_000));
        assert_eq!(g.read(900_000, t0 + Duration::from_secs(5)), Reading::InLine(900_000), "a jump back is taken");
        // ...and so is its correction, back to where the clock was.
        assert_eq!(g.read(1_052_000, t0 + Duration::from_secs(6)), Reading::InLine(1_052_000));
        assert_eq!(
            g.read(1_053_000 + day, t0 + Duration::from_secs(7)),
            Reading::Held { ms: 1_053_000, wall_ahead_ms: day },
            "but not a day beyond it"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_guarded_clock_raises_the_alarm_and_clears_it() {
        let wall = Arc::new(ManualClock::new(5_000_000));
        struct Shared(Arc<ManualClock>);
        impl Clock for Shared {
            fn now_ms(&self) -> u64 {
                self.0.now_ms()
            }
        }
        let metrics = crate::metrics::Metrics::unregistered();
        let clock = GuardedClock::new(Shared(wall.clone()), metrics.clone());
        assert_eq!(clock.now_ms(), 5_000_000);
        tokio::time::advance(Duration::from_secs(10)).await;
        wall.set(5_010_000 + 3_600_000);
        assert_eq!(clock.now_ms(), 5_010_000, "an hour's jump in ten seconds is held back");
        assert_eq!(metrics.clock_wall_ahead_seconds.get(), 3_600.0);
        assert_eq!(metrics.clock_held_back.get(), 1);
        wall.set(5_010_500);
        assert_eq!(clock.now_ms(), 5_010_500);
        assert_eq!(metrics.clock_wall_ahead_seconds.get(), 0.0);
    }
}
