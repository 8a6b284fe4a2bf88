//! The state of each link, for metrics and the API: up, catching up, degraded or partitioned.

use proto::{NodeId, Role};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Mutex;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkState {
    /// Connected, nothing waiting to be sent.
    Up,
    /// Connected, draining a backlog.
    CatchingUp,
    /// Connected, but slow or lossy.
    Degraded,
    /// Not connected.
    Partitioned,
}

impl LinkState {
    /// The metric value: 0 up, 1 catching up, 2 degraded, 3 partitioned.
    pub fn code(self) -> i64 {
        match self {
            LinkState::Up => 0,
            LinkState::CatchingUp => 1,
            LinkState::Degraded => 2,
            LinkState::Partitioned => 3,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct LinkStatus {
    pub peer: NodeId,
    pub role: Role,
    /// `parent` or `child`: which way the link goes from here.
    pub relation: &'static str,
    pub state: LinkState,
    /// Entries this node holds that the peer has not acknowledged.
    pub backlog: u64,
    pub rtt_ms: Option<u64>,
    pub entries_sent: u64,
    pub entries_received: u64,
    pub refused: u64,
    /// When the state last changed, ms since the epoch.
    pub since_ms: u64,
    pub last_error: Option<String>,
}

/// Every link's status; the mesh's tasks are its only writers.
#[derive(Default)]
pub struct StatusTable(Mutex<BTreeMap<NodeId, LinkStatus>>);

impl StatusTable {
    pub fn snapshot(&self) -> Vec<LinkStatus> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).values().cloned().collect()
    }

    /// Change one link's status, creating it if new; `now_ms` stamps state changes.
    pub fn update(
        &self,
        peer: &NodeId,
        role: Role,
        relation: &'static str,
        now_ms: u64,
        f: impl FnOnce(&mut LinkStatus),
    ) -> LinkState {
        let mut table = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let s = table.entry(peer.clone()).or_insert_with(|| LinkStatus {
            peer: peer.clone(),
            role,
            relation,
            state: LinkState::Partitioned,
            backlog: 0,
            rtt_ms: None,
            entries_sent: 0,
            entries_received: 0,
            refused: 0,
            since_ms: now_ms,
            last_error: None,
        });
        let before = s.state;
        s.relation = relation;
        f(s);
        if s.state != before {
            s.since_ms = now_ms;
        }
        s.state
    }
}
