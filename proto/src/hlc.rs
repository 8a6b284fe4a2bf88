//! Hybrid logical clocks (Kulkarni et al., 2014): timestamps that follow wall time closely, never
//! go backwards on one node, and order every cause before its effect across nodes.
//!
//! The clock holds no time source of its own: callers pass the physical time in milliseconds
//! since the Unix epoch, so a simulator can drive it from virtual time.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A hybrid logical timestamp: wall-clock milliseconds since the Unix epoch, then a counter that
/// orders events within one millisecond (or while the physical clock lags the logical one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
pub struct Hlc {
    pub wall_ms: u64,
    pub logical: u32,
}

impl Hlc {
    pub const ZERO: Hlc = Hlc { wall_ms: 0, logical: 0 };

    pub fn new(wall_ms: u64, logical: u32) -> Self {
        Hlc { wall_ms, logical }
    }

    /// Big-endian bytes that sort in the same order as the timestamps, for store keys.
    pub fn to_sortable_bytes(self) -> [u8; 12] {
        let mut out = [0u8; 12];
        out[..8].copy_from_slice(&self.wall_ms.to_be_bytes());
        out[8..].copy_from_slice(&self.logical.to_be_bytes());
        out
    }
}

impl fmt::Display for Hlc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.wall_ms, self.logical)
    }
}

/// Reads what [`fmt::Display`] writes: `<wall_ms>.<logical>`.
impl std::str::FromStr for Hlc {
    type Err = String;
    fn from_str(s: &str) -> Result<Hlc, String> {
        let bad = || format!("{s:?} is not a stamp (<wall ms>.<logical>)");
        let (wall, logical) = s.split_once('.').ok_or_else(bad)?;
        Ok(Hlc::new(wall.parse().map_err(|_| bad())?, logical.parse().map_err(|_| bad())?))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HlcError {
    /// A peer's timestamp is further ahead of our physical clock than we tolerate. The caller
    /// decides whether to refuse the message or keep it flagged; it is never dropped silently.
    #[error("remote timestamp {remote} is {ahead_ms} ms ahead of local physical time (limit {limit_ms} ms)")]
    TooFarAhead { remote: Hlc, ahead_ms: u64, limit_ms: u64 },
    /// The logical counter would overflow: more than 4 billion events inside one millisecond
    /// while the physical clock stood still.
    #[error("logical counter exhausted at wall time {0} ms")]
    CounterExhausted(u64),
}

/// The per-node clock state. One owner (the node's entry writer) calls it.
#[derive(Debug, Clone)]
pub struct HlcClock {
    last: Hlc,
    max_ahead_ms: u64,
}

impl HlcClock {
    /// `max_ahead_ms` bounds how far a remote timestamp may lead our physical clock before
    /// `observe` refuses it; without a bound one bad peer could drag every clock into the future.
    pub fn new(max_ahead_ms: u64) -> Self {
        HlcClock { last: Hlc::ZERO, max_ahead_ms }
    }

    /// Resume after a restart from the highest timestamp this node ever issued, so no timestamp
    /// repeats even if the physical clock went back while the node was down.
    pub fn resume_after(&mut self, issued: Hlc) {
        self.last = self.last.max(issued);
    }

    pub fn last(&self) -> Hlc {
        self.last
    }

    /// A timestamp for a local event at physical time `now_ms`; strictly greater than every
    /// timestamp issued or observed before.
    pub fn now(&mut self, now_ms: u64) -> Result<Hlc, HlcError> {
        let next = if now_ms > self.last.wall_ms {
            Hlc::new(now_ms, 0)
        } else {
            let logical = self.last.logical.checked_add(1).ok_or(HlcError::CounterExhausted(self.last.wall_ms))?;
            Hlc::new(self.last.wall_ms, logical)
        };
        self.last = next;
        Ok(next)
    }

    /// Take in a timestamp received from another node at physical time `now_ms` and return the
    /// local timestamp of the receive event. Refuses (and leaves the clock unchanged) when the
    /// remote clock leads ours by more than the configured bound.
    pub fn observe(&mut self, remote: Hlc, now_ms: u64) -> Result<Hlc, HlcError> {
        if remote.wall_ms > now_ms.saturating_add(self.max_ahead_ms) {
            return Err(HlcError::TooFarAhead {
                remote,
                ahead_ms: remote.wall_ms - now_ms,
                limit_ms: self.max_ahead_ms,
            });
        }
        let wall = now_ms.max(self.last.wall_ms).max(remote.wall_ms);
        let logical = if wall == self.last.wall_ms && wall == remote.wall_ms {
            self.last.logical.max(remote.logical).checked_add(1)
        } else if wall == self.last.wall_ms {
            self.last.logical.checked_add(1)
        } else if wall == remote.wall_ms {
            remote.logical.checked_add(1)
        } else {
            Some(0)
        }
        .ok_or(HlcError::CounterExhausted(wall))?;
        self.last = Hlc::new(wall, logical);
        Ok(self.last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn stamps_read_back_as_they_print() {
        let h = Hlc::new(1_764_000_000_123, 7);
        assert_eq!(h.to_string().parse::<Hlc>(), Ok(h));
        assert!("12".parse::<Hlc>().is_err() && "a.1".parse::<Hlc>().is_err() && "1.-1".parse::<Hlc>().is_err());
    }

    #[test]
    fn follows_wall_time_and_orders_within_a_millisecond() {
        let mut c = HlcClock::new(1_000);
        assert_eq!(c.now(100).unwrap(), Hlc::new(100, 0));
        assert_eq!(c.now(100).unwrap(), Hlc::new(100, 1));
        // The physical clock stepped back: the HLC does not.
        assert_eq!(c.now(90).unwrap(), Hlc::new(100, 2));
        assert_eq!(c.now(101).unwrap(), Hlc::new(101, 0));
    }

    #[test]
    fn receive_orders_after_the_sender() {
        let mut c = HlcClock::new(1_000);
        c.now(100).unwrap();
        let got = c.observe(Hlc::new(500, 7), 200).unwrap();
        assert_eq!(got, Hlc::new(500, 8));
        assert!(c.now(200).unwrap() > got);
    }

    #[test]
    fn refuses_timestamps_too_far_ahead() {
        let mut c = HlcClock::new(1_000);
        let before = c.now(100).unwrap();
        let err = c.observe(Hlc::new(5_000, 0), 100).unwrap_err();
        assert!(matches!(err, HlcError::TooFarAhead { ahead_ms: 4_900, .. }));
        assert_eq!(c.last(), before, "a refused timestamp must not move the clock");
    }

    #[test]
    fn resumes_without_repeating() {
        let mut c = HlcClock::new(1_000);
        c.resume_after(Hlc::new(1_000, 3));
        assert_eq!(c.now(10).unwrap(), Hlc::new(1_000, 4));
    }

    proptest! {
        #[test]
        fn timestamps_strictly_increase(steps in proptest::collection::vec((any::<bool>(), 0u64..10_000, 0u64..10_000, 0u32..4), 1..200)) {
            let mut c = HlcClock::new(20_000);
            let mut prev = Hlc::ZERO;
            for (remote, now, rwall, rlog) in steps {
                let t = if remote { c.observe(Hlc::new(rwall, rlog), now) } else { c.now(now) }.unwrap();
                prop_assert!(t > prev);
                if remote { prop_assert!(t > Hlc::new(rwall, rlog)); }
                prop_assert!(t.wall_ms >= now);
                prev = t;
            }
        }
    }
}
