//! Audit of refused handshakes, sampled and aggregated per source address.
//!
//! A peer refused before it proved who it is (its handshake failed, it showed no identity, or
//! too many handshakes were under way) can be anyone who can send a UDP packet. Writing one
//! durable audit entry per refusal, replicated up every tier, let an outsider fill the disks
//! of the whole chain with a flood of bare handshakes. So per source address the first refusal
//! of an interval is audited at once, the rest of the interval's are counted, and when the
//! interval ends one record says how many there were and why: at most one record per address
//! per interval, and every refusal counted in one. Past [`MAX_SOURCES`] addresses in their
//! interval, further addresses share one window. (Refusals of peers with a valid certificate
//! are audited one by one, in `link.rs`: those are mesh members misbehaving.)
//!
//! Sans-IO: the accept loop feeds refusals in and wakes at [`RefusalAudit::next_deadline`] to
//! collect what is due.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Addresses with a window open at once; past this, new addresses are aggregated together.
pub const MAX_SOURCES: usize = 1024;

/// Where refusals came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Source {
    Addr(IpAddr),
    /// Any address that found every window taken.
    Others,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Addr(a) => write!(f, "{a}"),
            Source::Others => f.write_str("other addresses"),
        }
    }
}

/// One audit record's worth of refusals from one source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub source: Source,
    /// Refusals by reason, in reason order.
    pub counts: BTreeMap<&'static str, u64>,
    /// The last refusal's detail.
    pub detail: String,
    /// The time the refusals span: zero for the first refusal (audited at once), the interval
    /// for an aggregate.
    pub over: Duration,
}

impl Report {
    pub fn total(&self) -> u64 {
        self.counts.values().sum()
    }

    /// The record's `why`: starts with the most frequent reason, so a reader sees at a glance
    /// what it was, then every reason with its count.
    pub fn why(&self) -> String {
        let first = self.counts.iter().max_by_key(|(_, n)| **n).map_or("refused", |(r, _)| *r);
        let counts: Vec<String> = self.counts.iter().map(|(r, n)| format!("{r} x{n}")).collect();
        if self.over.is_zero() {
            format!("{first}: {}", self.detail)
        } else {
            format!(
                "{first}: {} refusals in {} s ({}); last: {}",
                self.total(),
                self.over.as_secs(),
                counts.join(", "),
                self.detail
            )
        }
    }
}

struct Window {
    opened: Instant,
    counts: BTreeMap<&'static str, u64>,
    detail: String,
}

/// The sampler. Owned by the mesh; every method is quick and does no I/O.
pub struct RefusalAudit {
    every: Duration,
    windows: BTreeMap<Source, Window>,
}

impl RefusalAudit {
    pub fn new(every: Duration) -> RefusalAudit {
        RefusalAudit { every, windows: BTreeMap::new() }
    }

    /// A refusal from `addr` at `now`. Returns what to audit now: the aggregates that were due,
    /// and this refusal if it opens its address's window.
    pub fn refused(&mut self, now: Instant, addr: IpAddr, reason: &'static str, detail: &str) -> Vec<Report> {
        let mut out = self.due(now);
        let source = if self.windows.contains_key(&Source::Addr(addr)) || self.windows.len() < MAX_SOURCES {
            Source::Addr(addr)
        } else {
            Source::Others
        };
        match self.windows.get_mut(&source) {
            Some(w) => {
                *w.counts.entry(reason).or_default() += 1;
                w.detail = detail.to_string();
            }
            None => {
                self.windows.insert(source, Window { opened: now, counts: BTreeMap::new(), detail: String::new() });
                out.push(Report {
                    source,
                    counts: BTreeMap::from([(reason, 1)]),
                    detail: detail.to_string(),
                    over: Duration::ZERO,
                });
            }
        }
        out
    }

    /// The aggregates of every window that has ended by `now`. A window that counted refusals
    /// is followed by a fresh one, so a steady flood is audited once per interval; one that
    /// counted none is closed, and that address's next refusal is audited at once.
    pub fn due(&mut self, now: Instant) -> Vec<Report> {
        let mut out = Vec::new();
        let mut closed = Vec::new();
        for (source, w) in self.windows.iter_mut() {
            if now < w.opened + self.every {
                continue;
            }
            if w.counts.is_empty() {
                closed.push(*source);
                continue;
            }
            out.push(Report {
                source: *source,
                counts: std::mem::take(&mut w.counts),
                detail: std::mem::take(&mut w.detail),
                over: self.every,
            });
            w.opened = now;
        }
        for source in closed {
            self.windows.remove(&source);
        }
        out
    }

    /// When the next window ends.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.windows.values().map(|w| w.opened + self.every).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([192, 0, 2, last])
    }

    #[test]
    fn a_flood_from_one_address_is_one_record_per_interval_and_every_refusal_is_counted() {
        let t0 = Instant::now();
        let mut audit = RefusalAudit::new(Duration::from_secs(60));
        let mut reports = Vec::new();
        // 500 refusals over 150 s, from one address.
        for i in 0..500u64 {
            let now = t0 + Duration::from_millis(i * 300);
            let reason = if i % 5 == 0 { "handshake_limit" } else { "handshake" };
            reports.extend(audit.refused(now, ip(7), reason, &format!("attempt {i}")));
        }
        reports.extend(audit.due(t0 + Duration::from_secs(400)));
        assert_eq!(reports.iter().map(Report::total).sum::<u64>(), 500, "{reports:?}");
        // The first at once, then one per 60 s: at 60 and 120 s, and the rest when next asked.
        assert_eq!(reports.len(), 4, "{reports:?}");
        assert_eq!(reports[0].why(), "handshake_limit: attempt 0");
        assert!(
            reports[1].why().starts_with(
                "handshake: 199 refusals in 60 s (handshake x160, handshake_limit x39); last: attempt 199"
            ),
            "{}",
            reports[1].why()
        );
        // Quiet for an interval: the window closes and the next refusal is audited at once.
        assert_eq!(audit.next_deadline(), Some(t0 + Duration::from_secs(460)));
        assert!(audit.due(t0 + Duration::from_secs(1000)).is_empty());
        assert_eq!(audit.next_deadline(), None);
        let again = audit.refused(t0 + Duration::from_secs(1001), ip(7), "handshake", "back");
        assert_eq!(again.len(), 1);
    }

    #[test]
    fn addresses_are_audited_apart_and_past_the_cap_together() {
        let t0 = Instant::now();
        let mut audit = RefusalAudit::new(Duration::from_secs(60));
        assert_eq!(audit.refused(t0, ip(1), "handshake", "a").len(), 1);
        assert_eq!(audit.refused(t0, ip(2), "handshake", "b").len(), 1, "another address, its own record");
        for i in 0..MAX_SOURCES as u32 + 10 {
            let addr = IpAddr::from((10u32 << 24 | i).to_be_bytes());
            audit.refused(t0, addr, "no_identity", "spray");
        }
        let due = audit.due(t0 + Duration::from_secs(60));
        let others: Vec<&Report> = due.iter().filter(|r| r.source == Source::Others).collect();
        assert_eq!(others.len(), 1);
        assert_eq!(others[0].total(), 11, "the first of the others opened the window; 11 more counted");
        assert_eq!(audit.windows.len(), 1, "only the window that counted stays open");
    }
}
