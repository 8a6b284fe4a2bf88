//! Time in a simulation: the nodes' clock, and a speed limit on tokio's paused clock.
//!
//! On a paused tokio runtime, time jumps to the next timer whenever no task is ready. A node's
//! store makes writes durable on its own OS thread, which tokio cannot see: while a task waits
//! for a flush, the runtime looks idle and virtual time races from timer to timer (keep-alives,
//! link ticks, deadline checks). Measured on three nodes: one commit of a few milliseconds
//! let 1 to 140 virtual seconds pass. [`SpeedLimit`] bounds that: virtual time may run at most
//! a given factor faster than real time, so a flush of `f` real milliseconds costs at most
//! `factor × f` of virtual time instead of "until the flush ends".

use node::clock::Clock;
use std::time::Duration;
use tokio::runtime::Handle;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Wall time for nodes, following tokio's clock (virtual when paused): `epoch_ms` when made,
/// then advancing with `tokio::time::Instant`. Unlike reading tokio's clock bare, it reads the
/// runtime's clock from any thread: a store's flusher thread, outside the runtime, would
/// otherwise read the real clock and stamp entries with times behind the node's own.
#[derive(Debug, Clone)]
pub struct SimClock {
    epoch_ms: u64,
    start: Instant,
    runtime: Handle,
}

impl SimClock {
    /// Call from inside the runtime whose clock it follows.
    pub fn starting_at(epoch_ms: u64) -> SimClock {
        SimClock { epoch_ms, start: Instant::now(), runtime: Handle::current() }
    }

    /// tokio's now, read on the runtime's clock from whatever thread asks.
    fn tokio_now(&self) -> Instant {
        if Handle::try_current().is_ok() {
            Instant::now()
        } else {
            let _inside = self.runtime.enter();
            Instant::now()
        }
    }
}

impl Clock for SimClock {
    fn now_ms(&self) -> u64 {
        self.epoch_ms + self.tokio_now().saturating_duration_since(self.start).as_millis() as u64
    }
}

/// Keeps a paused runtime's virtual time at most `factor` times faster than real time. Every
/// `slice` of virtual time it compares how far each clock moved; when virtual time used more
/// than its allowance (`factor` × real time, plus one `slice` of credit saved from slower
/// moments), it holds the clock (a blocking task, which stops tokio's auto-advance) while real
/// time catches up. Everything else keeps running meanwhile. Stops when dropped.
pub struct SpeedLimit {
    task: JoinHandle<()>,
}

impl SpeedLimit {
    /// Start on the current (paused) runtime.
    pub fn start(factor: f64, slice: Duration) -> SpeedLimit {
        assert!(factor > 0.0 && !slice.is_zero(), "the factor and the slice must be positive");
        let task = tokio::spawn(async move {
            // Virtual time the allowance has left, in seconds (negative: overspent).
            let mut credit = 0.0f64;
            let (mut virtual_mark, mut real_mark) = (Instant::now(), std::time::Instant::now());
            loop {
                tokio::time::sleep(slice).await;
                let (v, r) = (Instant::now(), std::time::Instant::now());
                credit += (r - real_mark).as_secs_f64() * factor - (v - virtual_mark).as_secs_f64();
                credit = credit.min(slice.as_secs_f64());
                if credit < 0.0 {
                    let wait = Duration::from_secs_f64(-credit / factor);
                    // While this runs, virtual time stands still and real time passes.
                    let _ = tokio::task::spawn_blocking(move || std::thread::sleep(wait)).await;
                    credit = 0.0;
                }
                (virtual_mark, real_mark) = (Instant::now(), std::time::Instant::now());
            }
        });
        SpeedLimit { task }
    }
}

impl Drop for SpeedLimit {
    fn drop(&mut self) {
        self.task.abort();
    }
}
