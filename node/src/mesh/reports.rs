//! Node reports: how the city comes to see every node. Each node sends its parent a report of
//! itself (lists version enforced, open and overdue events, its links) on a `Control` stream,
//! with the latest reports it holds of the sites below it; so every tier holds its subtree's
//! and the city holds everyone's. The parent that takes a report from the node itself stamps
//! when it saw it and the node's clock offset against its own.
//!
//! Reports are not entries: only the latest of each node matters, so they are kept in memory
//! ([`ReportTable`], bounded by the topology) and never stored. A restarted city learns every
//! node again within a report period.

use super::status::LinkStatus;
use super::{frames, streams, Inner, Relation};
use proto::wire::{ControlMsg, LinkBrief, NodeReport, StreamKind, MAX_REPORTS, MAX_REPORT_LINKS};
use proto::NodeId;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How often a node reports when nothing changes.
pub const REPORT_EVERY: Duration = Duration::from_secs(5);
/// Least time between two reports, however often things change (the lists moving, a report
/// from below to pass on).
pub const REPORT_GAP: Duration = Duration::from_millis(500);

/// Why a report was not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReportRefusal {
    #[error("{count} reports in one message, over the cap of {MAX_REPORTS}")]
    TooMany { count: usize },
    #[error("a report of {node}, which is not the sender or below it")]
    NotBelow { node: NodeId },
    #[error("the first report is of {node}, not of the sender")]
    NotSender { node: NodeId },
    #[error("a report of {node} lists {count} links")]
    TooManyLinks { node: NodeId, count: usize },
}

/// What [`ReportTable::take`] took from one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Taken {
    /// Reports newer than those held.
    pub reports: usize,
    /// The sender's clock minus ours.
    pub clock_offset_ms: Option<i64>,
}

/// The latest report of each node below this one.
#[derive(Default)]
pub struct ReportTable(Mutex<BTreeMap<NodeId, NodeReport>>);

impl ReportTable {
    /// Take a message from child `sender`: its own report first (stamped here with `now_ms`
    /// and the clock offset, `rtt_ms` allowed for), then those it holds of its subtree
    /// (`below`, which includes the sender). A report replaces the one held of its node if it
    /// is newer by that node's clock. Nothing is taken from a message with a bad report.
    pub fn take(
        &self,
        sender: &NodeId,
        below: &BTreeSet<NodeId>,
        now_ms: u64,
        rtt_ms: u64,
        mut reports: Vec<NodeReport>,
    ) -> Result<Taken, ReportRefusal> {
        if reports.len() > MAX_REPORTS {
            return Err(ReportRefusal::TooMany { count: reports.len() });
        }
        if let Some(first) = reports.first().filter(|r| &r.node != sender) {
            return Err(ReportRefusal::NotSender { node: first.node.clone() });
        }
        for r in &reports {
            if !below.contains(&r.node) {
                return Err(ReportRefusal::NotBelow { node: r.node.clone() });
            }
            if r.links.len() > MAX_REPORT_LINKS {
                return Err(ReportRefusal::TooManyLinks { node: r.node.clone(), count: r.links.len() });
            }
        }
        let mut clock_offset_ms = None;
        if let Some(own) = reports.first_mut() {
            own.via = None;
            own.seen_ms = now_ms;
            // The node's clock read `at_ms` about half a round trip before we read `now_ms`.
            let theirs = own.at_ms.saturating_add(rtt_ms / 2);
            own.clock_offset_ms = theirs as i64 - now_ms as i64;
            clock_offset_ms = Some(own.clock_offset_ms);
        }
        let mut table = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let mut taken = 0;
        for (i, mut r) in reports.into_iter().enumerate() {
            if i == 0 {
                r.via = Some(sender.clone());
            }
            let newer = table.get(&r.node).is_none_or(|held| r.at_ms >= held.at_ms);
            if newer {
                table.insert(r.node.clone(), r);
                taken += 1;
            }
        }
        Ok(Taken { reports: taken, clock_offset_ms })
    }

    /// Every report held.
    pub fn snapshot(&self) -> Vec<NodeReport> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).values().cloned().collect()
    }
}

/// A node's report of itself, before its parent stamps it.
pub fn own_report(
    node: NodeId,
    at_ms: u64,
    lists_version: u64,
    (open_events, overdue_events): (u64, u64),
    links: Vec<LinkBrief>,
) -> NodeReport {
    NodeReport {
        node,
        at_ms,
        lists_version,
        open_events,
        overdue_events,
        links,
        via: None,
        seen_ms: 0,
        clock_offset_ms: 0,
    }
}

fn brief(l: &LinkStatus) -> LinkBrief {
    LinkBrief {
        peer: l.peer.clone(),
        parent: l.relation == Relation::Parent.as_str(),
        state: l.state.code() as u8,
        backlog: l.backlog,
    }
}

impl Inner {
    /// This node's report of itself.
    fn own_report(&self) -> NodeReport {
        let links = self.status.snapshot().iter().take(MAX_REPORT_LINKS).map(brief).collect();
        let counts = self.local.events.open_and_overdue();
        own_report(self.me.id.clone(), self.clock.now_ms(), self.local.enforced.version(), counts, links)
    }

    /// What this node would send up now: its own report, then its subtree's.
    pub(crate) fn reports(&self) -> Vec<NodeReport> {
        let mut out = vec![self.own_report()];
        out.extend(self.reports.snapshot());
        out
    }

    /// Report to the parent on `conn` for as long as the connection lives: every
    /// [`REPORT_EVERY`], and soon after the lists move or a report comes from below. A parent
    /// that does not take reports costs the session nothing: this just stops.
    pub(super) async fn report_up(self: Arc<Self>, conn: quinn::Connection, parent: NodeId) {
        let Err(e) = self.report_stream(&conn).await;
        tracing::debug!(%parent, error = %e, "no more reports on this connection");
        std::future::pending::<()>().await;
    }

    /// Open the control stream and report on it until writing fails.
    async fn report_stream(
        &self,
        conn: &quinn::Connection,
    ) -> Result<std::convert::Infallible, Box<dyn std::error::Error + Send + Sync>> {
        let (mut send, _recv) = streams::open(conn, StreamKind::Control).await?;
        let mut lists = self.local.enforced.subscribe();
        loop {
            frames::write(&mut send, &ControlMsg::Reports(self.reports())).await?;
            let wake = self.report_wake.notified();
            tokio::select! {
                _ = tokio::time::sleep(REPORT_EVERY) => {}
                _ = wake => {}
                _ = lists.changed() => {}
            }
            // Coalesce a burst of changes into one report.
            tokio::time::sleep(REPORT_GAP).await;
        }
    }

    /// Take the reports child `peer` sends on its control stream until it ends; a bad
    /// message is refused (counted and audited) and ends the stream.
    pub(super) async fn take_reports(self: Arc<Self>, peer: NodeId, mut recv: quinn::RecvStream) {
        let below = self.topology.subtree(&peer);
        loop {
            let msg: ControlMsg = match frames::read(&mut recv).await {
                Ok(m) => m,
                Err(e) => {
                    tracing::debug!(%peer, error = %e, "control stream ended");
                    return;
                }
            };
            let ControlMsg::Reports(reports) = msg;
            let rtt = self.status.snapshot().iter().find(|l| l.peer == peer).and_then(|l| l.rtt_ms).unwrap_or(0);
            match self.reports.take(&peer, &below, self.clock.now_ms(), rtt, reports) {
                Ok(taken) => {
                    if let Some(offset) = taken.clock_offset_ms {
                        let labels = crate::metrics::PeerLabels { peer: peer.to_string() };
                        self.metrics.peer_clock_offset_seconds.get_or_create(&labels).set(offset as f64 / 1000.0);
                    }
                    // Pass news from below on up without waiting for the next period.
                    if taken.reports > 0 {
                        self.report_wake.notify_one();
                    }
                }
                Err(e) => {
                    let _ = recv.stop(proto::wire::StreamRefusal::Malformed.code().into());
                    self.refuse(peer.as_str(), "bad_report", e.to_string()).await;
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> NodeId {
        NodeId::new(s).unwrap()
    }

    fn report(node: &str, at_ms: u64, version: u64) -> NodeReport {
        own_report(id(node), at_ms, version, (3, 1), Vec::new())
    }

    #[test]
    fn a_parent_stamps_its_childs_report_and_keeps_the_newest_of_each_node() {
        let table = ReportTable::default();
        let below: BTreeSet<NodeId> = ["county-a", "town-1", "town-2"].map(id).into();
        let sender = id("county-a");
        // The child's clock is 2 s ahead of ours; the round trip is 40 ms.
        let msg = vec![report("county-a", 12_000, 7), report("town-1", 9_000, 7)];
        assert_eq!(
            table.take(&sender, &below, 10_000, 40, msg),
            Ok(Taken { reports: 2, clock_offset_ms: Some(2_020) })
        );
        let held = table.snapshot();
        assert_eq!(held[0].node, id("county-a"));
        assert_eq!(held[0].seen_ms, 10_000);
        assert_eq!(held[0].clock_offset_ms, 2_020);
        assert_eq!(held[0].via, Some(sender.clone()));
        // An older report of town-1 (by town-1's clock) changes nothing; a newer one replaces.
        let msg = vec![report("county-a", 13_000, 8), report("town-1", 8_000, 6)];
        assert_eq!(table.take(&sender, &below, 11_000, 40, msg).map(|t| t.reports), Ok(1));
        let msg = vec![report("county-a", 14_000, 8), report("town-1", 9_500, 8)];
        assert_eq!(table.take(&sender, &below, 12_000, 40, msg).map(|t| t.reports), Ok(2));
        let town = table.snapshot().into_iter().find(|r| r.node == id("town-1")).unwrap();
        assert_eq!((town.at_ms, town.lists_version), (9_500, 8));
    }

    #[test]
    fn reports_of_others_than_the_senders_subtree_are_refused_whole() {
        let table = ReportTable::default();
        let below: BTreeSet<NodeId> = ["county-a", "town-1"].map(id).into();
        let sender = id("county-a");
        let foreign = vec![report("county-a", 1, 1), report("town-9", 1, 1)];
        assert_eq!(table.take(&sender, &below, 1, 0, foreign), Err(ReportRefusal::NotBelow { node: id("town-9") }));
        let impostor = vec![report("town-1", 1, 1)];
        assert_eq!(table.take(&sender, &below, 1, 0, impostor), Err(ReportRefusal::NotSender { node: id("town-1") }));
        let flood = vec![report("county-a", 1, 1); MAX_REPORTS + 1];
        assert!(matches!(table.take(&sender, &below, 1, 0, flood), Err(ReportRefusal::TooMany { .. })));
        assert!(table.snapshot().is_empty());
    }
}
