//! Receive quotas: how many entries of each kind travelling up one origin may have a node take
//! per second, summed over all its links, so a child (or anything below it) cannot push alerts,
//! escalations, summaries or audit without bound.
//!
//! A quota is backpressure, never loss: a link whose batch took an origin past its quota reads
//! its next batch only once the debt is paid back, so the sender's window fills and it waits.
//! Nothing is refused (a refused entry would leave a gap that stops its origin's later entries
//! for good), and entries of every other origin and kind keep flowing on other links. Within a
//! batch the sender puts the most urgent kinds first, so alerts go ahead of an audit backlog.
//!
//! Sans-IO: the caller passes the time (the node's clock) and sleeps until the instant returned.

use proto::{Kind, NodeId};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// A quota's burst: this many seconds of its rate pass at once, so a site back from a short
/// partition catches up without waiting.
pub const BURST_SECS: f64 = 10.0;

/// Entries per second per origin, by kind; 0 for no quota. The kinds that travel down (lists,
/// commands) come from the tiers above and have none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReceiveQuota {
    pub alert: u64,
    pub escalation: u64,
    pub summary: u64,
    pub audit: u64,
}

impl Default for ReceiveQuota {
    /// Far above a site's own rates (SEED.md: a city's whole sensor feed is about 5,800
    /// records a second), well below what one flooding child could write.
    fn default() -> Self {
        ReceiveQuota { alert: 5_000, escalation: 1_000, summary: 1_000, audit: 20_000 }
    }
}

impl ReceiveQuota {
    /// The rate for `kind`, if it has one.
    pub fn rate(&self, kind: Kind) -> Option<u64> {
        let rate = match kind {
            Kind::Alert => self.alert,
            Kind::Escalation => self.escalation,
            Kind::Summary => self.summary,
            Kind::Audit => self.audit,
            _ => 0,
        };
        (rate > 0).then_some(rate)
    }
}

/// One origin's allowance of one kind.
#[derive(Debug, Clone, Copy)]
struct Allowance {
    tokens: f64,
    at: Instant,
}

/// The allowances of every (origin, kind) a node has taken entries of. Bounded by the
/// topology: only the sites below a node send it these kinds.
#[derive(Debug)]
pub struct ReceiveQuotas {
    quota: ReceiveQuota,
    allowances: BTreeMap<(NodeId, Kind), Allowance>,
}

impl ReceiveQuotas {
    pub fn new(quota: ReceiveQuota) -> ReceiveQuotas {
        ReceiveQuotas { quota, allowances: BTreeMap::new() }
    }

    /// Charge `n` entries of `kind` from `origin` taken at `now`. Returns when the origin is
    /// back within its quota, if it is past it now.
    pub fn charge(&mut self, origin: &NodeId, kind: Kind, n: u64, now: Instant) -> Option<Instant> {
        let rate = self.quota.rate(kind)? as f64;
        let burst = rate * BURST_SECS;
        let a = self.allowances.entry((origin.clone(), kind)).or_insert(Allowance { tokens: burst, at: now });
        let refilled = now.saturating_duration_since(a.at).as_secs_f64() * rate;
        a.tokens = (a.tokens + refilled).min(burst) - n as f64;
        a.at = now;
        (a.tokens < 0.0).then(|| now + Duration::from_secs_f64(-a.tokens / rate))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_is_held_to_the_rate_after_its_burst_and_others_are_not() {
        let quota = ReceiveQuota { audit: 100, ..ReceiveQuota::default() };
        let mut q = ReceiveQuotas::new(quota);
        let town = NodeId::new("town-a").unwrap();
        let t0 = Instant::now();
        // The burst: ten seconds' worth passes at once.
        assert_eq!(q.charge(&town, Kind::Audit, 1000, t0), None);
        // Then a batch of 1024 waits about ten seconds for the rate to pay it back.
        let until = q.charge(&town, Kind::Audit, 1024, t0).expect("past the quota");
        let wait = until.duration_since(t0).as_secs_f64();
        assert!((10.0..10.5).contains(&wait), "{wait}");
        // Keeping to the rate from then on never waits; going over it does.
        let mut at = until;
        for _ in 0..50 {
            at += Duration::from_secs(1);
            assert_eq!(q.charge(&town, Kind::Audit, 100, at), None);
        }
        assert!(q.charge(&town, Kind::Audit, 200, at).is_some());
        // Another origin, and another kind of the same origin, have allowances of their own;
        // kinds without a quota never wait.
        assert_eq!(q.charge(&NodeId::new("town-b").unwrap(), Kind::Audit, 1000, at), None);
        assert_eq!(q.charge(&town, Kind::Alert, 1000, at), None);
        assert_eq!(q.charge(&town, Kind::Watchlist, 1_000_000, at), None);
        let mut free = ReceiveQuotas::new(ReceiveQuota { alert: 0, escalation: 0, summary: 0, audit: 0 });
        assert_eq!(free.charge(&town, Kind::Audit, u64::MAX / 2, t0), None);
    }
}
