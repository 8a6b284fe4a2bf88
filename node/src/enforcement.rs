//! The sanctions lists this node enforces: the `Sanctions` entries it holds (published by the
//! voting sites and carried down the mesh, see [`crate::sanctions::feed`]) taken in order by
//! one [`Applier`], and the result published to whoever checks against it (ingest, the mesh's
//! handshakes, the API) through an [`Enforced`] handle.
//!
//! The entries are durable before they are taken, and a start takes every stored one again
//! before the node accepts any input, so a restarted node enforces at least the version it
//! enforced before: it never goes back. Through a partition it keeps the version it has.

use crate::metrics::Metrics;
use crate::sanctions::feed::{Applier, Step};
use crate::sanctions::Lists;
use crate::store::{Store, StoreError};
use proto::{Kind, NodeId};
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::sync::watch;

/// Entries read from the store at a time, between yields to the runtime.
const READ_BATCH: usize = 256;

/// The lists in force, shared. Readers take an `Arc` per use, so an update never waits for
/// them and they never see half a version. Cheap to clone.
#[derive(Clone)]
pub struct Enforced(Arc<watch::Sender<Arc<Lists>>>);

impl Default for Enforced {
    fn default() -> Self {
        Enforced(Arc::new(watch::Sender::new(Arc::new(Lists::new()))))
    }
}

impl Enforced {
    pub fn current(&self) -> Arc<Lists> {
        self.0.borrow().clone()
    }

    pub fn version(&self) -> u64 {
        self.0.borrow().version()
    }

    /// A receiver that changes at every new version (for closing revoked connections).
    pub fn subscribe(&self) -> watch::Receiver<Arc<Lists>> {
        self.0.subscribe()
    }

    fn publish(&self, lists: Lists) {
        self.0.send_replace(Arc::new(lists));
    }
}

/// Takes this node's stored `Sanctions` entries into its lists and publishes each new version.
pub struct Enforcer {
    store: Store,
    applier: Applier,
    enforced: Enforced,
    metrics: Metrics,
    /// Under the simulator's `list_out_of_order` bug only: an applier per stream, and the
    /// stream that moved last, whose lists are then enforced.
    per_stream: BTreeMap<NodeId, Applier>,
    last_moved: Option<NodeId>,
}

impl Enforcer {
    /// Take every stored entry, and publish the lists they make. Run before the node accepts
    /// input, so it starts enforcing what it enforced when it stopped.
    pub async fn open(store: Store, enforced: Enforced, metrics: Metrics) -> Result<Enforcer, StoreError> {
        let mut e = Enforcer {
            store,
            applier: Applier::new(),
            enforced,
            metrics,
            per_stream: BTreeMap::new(),
            last_moved: None,
        };
        e.take().await?;
        tracing::info!(version = e.applier.version(), entries = e.applier.lists().len(), "sanctions lists in force");
        Ok(e)
    }

    /// Follow the store: take new entries whenever some become durable.
    pub async fn follow(mut self) {
        let mut changes = self.store.changes();
        let mut seen = *changes.borrow_and_update();
        loop {
            if changes.changed().await.is_err() {
                return;
            }
            let now = *changes.borrow_and_update();
            if !now.moved_since(&seen, &[Kind::Sanctions]) {
                continue;
            }
            seen = now;
            if let Err(e) = self.take().await {
                tracing::error!(error = %e, "sanctions entries not taken; retrying at the next one");
            }
        }
    }

    /// Offer every origin's entries in order until none moves (a stream blocked behind a gap
    /// may be unblocked by another), then publish if the version moved.
    async fn take(&mut self) -> Result<(), StoreError> {
        if self.store.bugs().list_out_of_order {
            return self.take_out_of_order();
        }
        let before = self.applier.version();
        loop {
            let mut moved = false;
            let heads = self.store.heads(Kind::Sanctions);
            for (origin, head) in heads.iter() {
                moved |= self.take_stream(origin, head).await?;
            }
            if !moved {
                break;
            }
        }
        let after = self.applier.version();
        if after != before {
            let lists = self.applier.lists();
            tracing::info!(from = before, to = after, entries = lists.len(), "sanctions lists moved");
            self.metrics.sanctions_version.set(after as i64);
            self.metrics.sanctions_entries.set(lists.len() as i64);
            self.enforced.publish(lists.clone());
        }
        Ok(())
    }

    /// The simulator's `list_out_of_order` bug: each stream on its own, one entry per stream
    /// each time entries arrive, and the lists of the stream that moved last enforced, so a
    /// stream that lags (a backlog after a partition) sets the version back.
    fn take_out_of_order(&mut self) -> Result<(), StoreError> {
        let heads = self.store.heads(Kind::Sanctions);
        for (origin, head) in heads.iter() {
            let own = self.per_stream.entry(origin.clone()).or_default();
            let next = own.next_seq(origin);
            if next > head {
                continue;
            }
            if let Some(entry) = self.store.entries(Kind::Sanctions, origin, next).next().transpose()? {
                if matches!(own.offer(origin, entry.seq, &entry.payload), Step::Advanced { .. }) {
                    self.last_moved = Some(origin.clone());
                }
            }
        }
        if let Some(lists) = self.last_moved.take().and_then(|o| self.per_stream.get(&o)).map(|a| a.lists().clone()) {
            self.enforced.publish(lists);
        }
        Ok(())
    }

    /// Offer `origin`'s entries up to `head`; true if its cursor moved.
    async fn take_stream(&mut self, origin: &NodeId, head: u64) -> Result<bool, StoreError> {
        let start = self.applier.next_seq(origin);
        while self.applier.next_seq(origin) <= head {
            let from = self.applier.next_seq(origin);
            let entries: Vec<_> =
                self.store.entries(Kind::Sanctions, origin, from).take(READ_BATCH).collect::<Result<_, _>>()?;
            for entry in entries.iter().take_while(|e| e.seq <= head) {
                match self.applier.offer(origin, entry.seq, &entry.payload) {
                    Step::Blocked { prev } => {
                        tracing::debug!(%origin, seq = entry.seq, prev, have = self.applier.version(), "sanctions stream waits for versions from another");
                        return Ok(self.applier.next_seq(origin) != start);
                    }
                    Step::Malformed(why) => {
                        self.metrics.sanctions_malformed.inc();
                        tracing::warn!(%origin, seq = entry.seq, why, "sanctions entry skipped");
                    }
                    Step::Advanced { .. } | Step::Piece | Step::Behind => {}
                }
            }
            if entries.is_empty() {
                break;
            }
            // A start may take a long history: let the runtime serve others between batches.
            tokio::task::yield_now().await;
        }
        Ok(self.applier.next_seq(origin) != start)
    }
}
